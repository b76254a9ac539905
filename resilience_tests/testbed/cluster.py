"""The local cluster: launch, inspect, fail and restore nodes, tear down.

A façade over its parts: the control plane (``controlplane.py``: kwokctl's components and the kwok
controller), the simulated nodes (``simnodes.py``), the real nodes (``realnodes.py``), Velero
(``velero.py``) and KEDA (``keda.py``). It holds what joins them: the topology, one lock per cluster name,
leftover detection and the failure hooks faults use.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from resilience_tests import procs
from resilience_tests.errors import BinariesMissingError, ResilienceError, TestbedError, UsageError
from resilience_tests.testbed import DEFAULT_CLUSTER_NAME, build, simnodes
from resilience_tests.testbed.controlplane import ControlPlane
from resilience_tests.testbed.kwokctl import Kwokctl, Timings
from resilience_tests.testbed.nodeconfigs import RealNode, plan
from resilience_tests.testbed.realnodes import RealNodes
from resilience_tests.testbed.simnodes import NodeState
from resilience_tests.testbed.topology import Topology

DEFAULT_NAME = DEFAULT_CLUSTER_NAME
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")

_Say = Callable[[str], None]

__all__ = ["DEFAULT_NAME", "ClusterStatus", "LocalCluster", "NodeState"]


@dataclass(frozen=True)
class ClusterStatus:
    """What ``resilience cluster status`` reports."""

    name: str
    state: str  # "absent", "running" or "stale"
    kubeconfig: str = ""
    topology: Topology | None = None
    processes: dict[str, int] = field(default_factory=dict)
    nodes: tuple[NodeState, ...] = ()
    problem: str = ""


class LocalCluster:
    """A named local cluster under the cache directory.

    Args:
        name: cluster name; its kube context is ``kwok-<name>``.
        binaries: directory with the built binaries (default: the build cache).
        root: state root (default: the cache root).
    """

    def __init__(self, name: str = DEFAULT_NAME, *, binaries: Path | None = None, root: Path | None = None):
        if not NAME_RE.match(name):
            raise UsageError(
                f"invalid cluster name {name!r}",
                hint="use 1-32 lower-case letters, digits and dashes",
            )
        self.name = name
        self.binaries = binaries or build.bin_dir()
        self.root = root or build.cache_root()
        self.run_dir = self.root / "clusters" / name
        self.control = ControlPlane(name, self.binaries, self.root, self.run_dir)
        self.real = RealNodes(name, self.run_dir, self.binaries, self.kubeconfig)

    # ------------------------------------------------------------------ paths
    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig of the cluster."""
        return self.control.kubeconfig

    @property
    def kwokctl(self) -> Kwokctl:
        """kwokctl of this cluster."""
        return self.control.kwokctl

    @property
    def audit_log(self) -> Path:
        """The API server's audit log (JSON lines, every write request at Metadata level)."""
        return self.kwokctl.audit_log

    @property
    def context(self) -> str:
        """Kube context name inside the kubeconfig."""
        return f"kwok-{self.name}"

    @property
    def _topology_file(self) -> Path:
        return self.run_dir / "topology.json"

    def _saved_topology(self) -> Topology | None:
        try:
            data = json.loads(self._topology_file.read_text())
            return Topology(zones=data["zones"], nodes_per_zone=data["nodes_per_zone"],
                            real_nodes=data.get("real_nodes", 0))
        except (OSError, ValueError, KeyError, ResilienceError):
            return None

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        lock_path = self.root / "clusters" / f".{self.name}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise TestbedError(
                    f"another command is changing cluster {self.name!r} right now",
                    hint="wait for it to finish and retry",
                ) from None
            yield

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        """Run kubectl against this cluster and return its stdout."""
        return self.control.kubectl(*args, stdin=stdin, timeout=timeout)

    # ------------------------------------------------------------------ state
    def state(self) -> str:
        """``absent``, ``running`` (healthy) or ``stale`` (leftovers of a crashed run).

        While every process is alive, a slow API server (a busy machine) gets up to
        20 s to answer before the cluster counts as stale: ``up`` tears stale clusters down
        (or, when only real nodes lost a process, restarts just those).
        """
        if not self.control.exists() and not self.run_dir.exists():
            return "absent"
        topology = self._saved_topology()
        if not self._control_plane_healthy() or (topology and topology.real_nodes and not self.real.healthy()):
            return "stale"
        return "running"

    def _control_plane_healthy(self) -> bool:
        return self._saved_topology() is not None and self.control.healthy()

    # ------------------------------------------------------------------ up / down
    def up(self, topology: Topology, *, port: int = 0, timeout: float = 120, log: bool = True) -> Path:
        """Start the cluster (idempotent) and return its kubeconfig path.

        Raises:
            UsageError: the port is taken, or a cluster of this name runs with another shape.
            BinariesMissingError: the binaries are not built.
            TestbedError: a component failed to start (the message has its log tail).
        """
        say = _printer(log)
        with self._lock():
            current = self.state()
            if current == "running":
                saved = self._saved_topology()
                if saved != topology:
                    raise UsageError(
                        f"cluster {self.name!r} already runs with {saved.describe() if saved else '?'}",
                        hint=f"run `resilience cluster down --name {self.name}` first, or pick another --name",
                    )
                say(f"cluster {self.name!r} already running ({topology.describe()})")
                if topology.real_nodes:
                    from resilience_tests.testbed.images import image_archives

                    changed = self.real.refresh_images(image_archives())
                    if changed:
                        say(f"re-imported {', '.join(changed)} into the real nodes (rebuilt since they got it; "
                            "running pods keep the old image until they are replaced)")
                return self.kubeconfig
            if port:
                _check_port_free(port)
            missing = build.missing_binaries(self.binaries)
            if missing:
                raise BinariesMissingError(missing, str(self.binaries))
            if topology.real_nodes:
                self._check_real_nodes_possible()
            if current == "stale" and self._saved_topology() == topology and topology.real_nodes \
                    and self._control_plane_healthy():
                self._repair_real_nodes(topology, timeout, say)
                return self.kubeconfig
            if current == "stale":
                say(f"cleaning leftovers of an earlier run of cluster {self.name!r}")
                self._teardown()
            started = time.monotonic()
            try:
                self._start(topology, port, timeout, say)
            except BaseException as exc:
                detail = self._failure_logs()
                try:
                    self._teardown()
                except TestbedError as cleanup:
                    detail += f"\nand cleaning up failed: {cleanup}"
                if isinstance(exc, ResilienceError) and detail:
                    raise TestbedError(f"{exc}\n{detail}") from exc
                raise
            say(f"cluster {self.name!r} up in {time.monotonic() - started:.1f} s ({topology.describe()})")
            return self.kubeconfig

    def _start(self, topology: Topology, port: int, timeout: float, say: _Say) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o700)  # logs, pid files and the real nodes' keys
        timings = Timings.for_nodes(len(topology.node_names()))
        say("starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler (kwokctl) and the kwok "
            f"controller ({timings.name} heartbeat timings)")
        self.control.start(port, timeout, timings)
        say(f"registering {len(topology.node_names())} simulated nodes in {topology.zones} zones")
        simnodes.register(self.kubectl, topology)
        self._topology_file.write_text(json.dumps(topology.to_json()))
        self.wait_nodes_ready(topology.node_names(), timeout=max(60.0, len(topology.node_names()) / 10))
        if topology.real_nodes:
            from resilience_tests.testbed.images import image_archives

            say("building the pause and demo images (cached)")
            images = image_archives()
            started = time.monotonic()
            self.real.start(self._real_plan(topology), images, say, timeout=timeout)
            say(f"{topology.real_nodes} real nodes Ready in {time.monotonic() - started:.1f} s")

    def _repair_real_nodes(self, topology: Topology, timeout: float, say: _Say) -> None:
        """The control plane is fine but a real node lost a process: restart the real nodes only."""
        from resilience_tests.testbed.images import image_archives

        gone = sorted(set(self.real.expected_processes()) - set(self.real.running()))
        say(f"real nodes lost {', '.join(gone) or 'their state'}: restarting them (the control plane keeps running)")
        problems = self.real.teardown()
        if problems:
            raise TestbedError(f"could not clean up the real nodes: {'; '.join(problems)}",
                               hint=f"run `resilience cluster down --name {self.name}` and `up` again")
        started = time.monotonic()
        self.real.start(self._real_plan(topology), image_archives(), say, timeout=timeout)
        say(f"{topology.real_nodes} real nodes Ready again in {time.monotonic() - started:.1f} s")

    def _real_plan(self, topology: Topology) -> list[RealNode]:
        return plan(topology.real_node_names(), topology.zone_of)

    def _check_real_nodes_possible(self) -> None:
        from resilience_tests.testbed.realnodes import missing_requirements

        missing = missing_requirements()
        if missing:
            raise TestbedError("real nodes need " + "; ".join(missing),
                               hint="install what is named (scripts/setup does), or pass --real-nodes 0")
        for other in sorted((self.root / "clusters").glob("*/real/state.json")):
            name = other.parent.parent.name
            if name != self.name:
                raise UsageError(f"cluster {name!r} already has real nodes (one cluster per machine can)",
                                 hint=f"run `resilience cluster down --name {name}` first, or pass --real-nodes 0")

    def start_velero(self) -> None:
        """Run Velero and its object store as host processes (:mod:`resilience_tests.testbed.velero`); stopped
        by :meth:`stop_velero` or with the cluster."""
        from resilience_tests.testbed import velero

        self._require_running()
        velero.start(self.run_dir, self.kubeconfig, self.kubectl)

    def stop_velero(self) -> None:
        """Stop Velero's processes and remove its namespace and CRDs."""
        from resilience_tests.testbed import velero

        velero.stop(self.run_dir, self.kubectl if self.state() == "running" else None)

    def start_keda(self) -> None:
        """Run KEDA's operator and metrics adapter as host processes (:mod:`resilience_tests.testbed.keda`);
        stopped by :meth:`stop_keda` or with the cluster."""
        from resilience_tests.testbed import keda

        self._require_running()
        keda.start(self.run_dir, self.control.authority(), self.control.server(), self.kubectl)

    def stop_keda(self) -> None:
        """Stop KEDA's processes and remove its objects (CRDs, APIService, roles, namespace)."""
        from resilience_tests.testbed import keda

        keda.stop(self.run_dir, self.kubectl if self.state() == "running" else None)

    def down(self, *, log: bool = True) -> bool:
        """Stop every process of the cluster and delete its state. Returns False if nothing was there."""
        say = _printer(log)
        with self._lock():
            if self.state() == "absent":
                say(f"cluster {self.name!r} is not running; nothing to do")
                return False
            self._teardown()
            say(f"cluster {self.name!r} stopped and removed")
            return True

    def _teardown(self) -> None:
        errors = self.real.teardown()
        errors += self.control.teardown()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if errors:
            raise TestbedError(f"could not stop every process of cluster {self.name!r}: {'; '.join(errors)}")

    def _failure_logs(self) -> str:
        chunks = []
        for path in [*self.control.logs(), *(Path(r.log) for r in procs.records(self.real.dir))]:
            tail = procs.log_tail(path, 6)
            if tail:
                chunks.append(f"--- {path} (last lines)\n{tail}")
        return "\n".join(chunks[-5:])

    # ------------------------------------------------------------------ status
    def status(self) -> ClusterStatus:
        """Report processes and nodes of the cluster."""
        state = self.state()
        if state == "absent":
            return ClusterStatus(name=self.name, state=state)
        processes = {**self.control.running(), **self.real.running()}
        nodes: tuple[NodeState, ...] = ()
        problem = ""
        if self.control.api_ready():
            nodes = tuple(self.nodes())
        else:
            problem = "the API server does not answer"
        if state == "stale" and not problem:
            missing = [*self.control.missing(), *sorted(set(self.real.expected_processes()) - set(processes))]
            problem = "some processes are missing: " + ", ".join(missing)
        return ClusterStatus(
            name=self.name, state=state, kubeconfig=str(self.kubeconfig), topology=self._saved_topology(),
            processes=processes, nodes=nodes, problem=problem,
        )

    def nodes(self) -> list[NodeState]:
        """Current nodes with zone, Ready condition, heartbeat label and taints."""
        return simnodes.nodes(self.kubectl)

    def wait_nodes_ready(self, names: list[str], *, timeout: float = 60, ready: bool = True) -> None:
        """Wait until every node in ``names`` is Ready (or, with ready=False, not Ready)."""
        simnodes.wait_ready(self.kubectl, names, timeout=timeout, ready=ready)

    # ------------------------------------------------------------------ failure hooks
    def _require_running(self) -> Topology:
        topology = self._saved_topology()
        if self.state() != "running" or topology is None:
            raise TestbedError(f"cluster {self.name!r} is not running", hint="run `resilience cluster up` first")
        return topology

    def zone_nodes(self, zone: str) -> list[str]:
        """Every node (simulated or real) labelled with ``zone``."""
        topology = self._require_running()
        if zone not in topology.zone_names:
            raise UsageError(f"unknown zone {zone!r}", hint=f"known zones: {', '.join(topology.zone_names)}")
        return [n.name for n in self.nodes() if n.zone == zone]

    def fail_nodes(self, names: list[str]) -> None:
        """Fail ``names`` as a dead machine would.

        Simulated nodes lose their heartbeat (kwok stops renewing their leases). Real
        nodes freeze: kubelet, containerd and every container stop in the cgroup
        freezer, and their pod subnet stops answering. Either way the control plane
        sees missed heartbeats and reacts. Real nodes go first: they carry the
        traffic, and their pods stop answering the moment this is called.
        """
        real, simulated = self._split(names)
        self.real.freeze(real)
        simnodes.set_heartbeat(self.kubectl, simulated, "off")

    def restore_nodes(self, names: list[str], *, timeout: float = 60) -> None:
        """Resume the heartbeat of ``names`` and wait until they are Ready.

        kwok does not replay changes made to pods while it did not manage their
        node, so once the nodes are back every pod on them is nudged (annotation
        ``resilience-tests.io/resync``): terminating pods then finish and pods
        marked not-ready during the outage turn ready again.
        """
        real, simulated = self._split(names)
        simnodes.set_heartbeat(self.kubectl, simulated, "on")
        self.real.thaw(real)
        self.wait_nodes_ready(names, timeout=timeout)
        simnodes.resync_pods(self.kubectl, names)

    def _split(self, names: list[str]) -> tuple[list[RealNode], list[str]]:
        """Split ``names`` into real nodes and the rest (unknown names are rejected)."""
        self._require_running()
        known = {n.name for n in self.nodes()}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UsageError(f"unknown node(s): {', '.join(unknown)}",
                             hint=f"known nodes: {', '.join(sorted(known)[:12])}")
        real = {n.name: n for n in self.real.recorded()}
        return [real[n] for n in names if n in real], [n for n in names if n not in real]

    def load_image(self, archive: Path) -> list[str]:
        """Import an image archive into every real node; returns the node names."""
        self._require_running()
        nodes = self.real.recorded()
        if not nodes:
            raise UsageError(f"cluster {self.name!r} has no real nodes",
                             hint="images matter only on real nodes: `resilience cluster up --real-nodes 2`")
        if not archive.is_file():
            raise UsageError(f"no image archive at {archive}", hint="write one with `docker save` or similar")
        for node in nodes:
            self.real.import_image(node, archive)
        return [n.name for n in nodes]

    # ------------------------------------------------------------------ measurement
    def memory_rss_bytes(self) -> int:
        """Resident memory of every process of the cluster, summed."""
        return procs.rss_bytes([*self.control.running().values(), *self.real.pids()])


def _printer(enabled: bool) -> _Say:
    def say(msg: str) -> None:
        if enabled:
            print(f"[cluster {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    return say


def _check_port_free(port: int) -> None:
    if not 1 <= port <= 65535:
        raise UsageError(f"--port must be between 1 and 65535, got {port}")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise UsageError(f"port {port} is already in use",
                             hint="pick another --port or leave it out to choose a free one") from None
