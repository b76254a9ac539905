"""Real nodes of the local cluster: a kubelet and a containerd per node, CNI bridges, one kube-proxy.

Each real node gets, on this host:

- a cgroup ``/rt-<cluster>/<node>`` in every cgroup v1 hierarchy: the kubelet's
  ``cgroupRoot`` (pods land in ``.../kubepods``) and, in ``.../system``, the
  kubelet, containerd and the containerd shims. Freezing the node is one write
  to the freezer hierarchy; tearing it down kills exactly the processes found in
  that tree, all started by us;
- an address ``10.241.0.<i>`` on the host bridge ``rt0`` (the node IP: the
  kubelet refuses loopback addresses), a CNI bridge ``rtbr<i>`` and the pod
  subnet ``10.244.<i>.0/24``;
- its own containerd (root, state and socket under the node's directory) with
  the pause and demo images imported, and every registry pull sent to
  127.0.0.1:1, so a missing image fails fast and nothing leaves the machine.

One kube-proxy (iptables mode) serves ClusterIP and NodePort Services, with
NodePorts answering on 127.0.0.1. Address plan (nothing routes off the host):
Services 10.96.0.0/16 (routed to ``rt0``, where only kube-proxy's DNAT makes
them go anywhere), real pods 10.244.0.0/16, simulated pods 10.200.0.0/16
(unreachable route: a request to a simulated pod fails at once), node IPs
10.241.0.0/24. Packets from real pods to anything outside these ranges are
rejected in the ``RT-GUARD`` chain.

Only one cluster on a machine can have real nodes (the bridges, routes and
iptables chains are per host).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from resilience_tests.errors import TestbedError, WaitTimeoutError
from resilience_tests.labels import NODE_KIND_LABEL, REGION_LABEL, ZONE_LABEL
from resilience_tests.net import free_port
from resilience_tests.testbed import procs, storage
from resilience_tests.testbed.kwokctl import SERVICE_CIDR
from resilience_tests.testbed.pki import Authority
from resilience_tests.testbed.topology import REGION, SIM_POD_CIDR
from resilience_tests.waiting import wait_until

REAL_POD_CIDR = "10.244.0.0/16"
# Real nodes run only pods that tolerate this taint (and select them by the node-kind label):
# workloads written for simulated nodes, with images that exist nowhere, never land on a kubelet.
REAL_NODE_TAINT = "resilience-tests.io/real-node"
NODE_IP_PREFIX = "10.241.0."
NODE_IP_CIDR = "10.241.0.0/24"
HOST_BRIDGE = "rt0"
GUARD_CHAIN = "RT-GUARD"
# Pods may answer the host (probes, load through NodePorts) but open no connection to it: not to the
# kubelets' ports on the node IPs, nor to anything else listening on this machine.
HOST_GUARD_CHAIN = "RT-HOST-GUARD"
FREEZE_CHAIN = "RT-FREEZE"
CNI_BIN = Path("/usr/lib/cni")
# Host settings the real nodes need on.
SYSCTLS = ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables", "net/ipv4/conf/all/route_localnet")
# Every host setting that is changed while real nodes run: ours, the kubelet's kernel tunables
# (it sets them at start unless protectKernelDefaults) and kube-proxy's (route_localnet for
# NodePorts on 127.0.0.1). Recorded before the first change and restored at teardown.
RECORDED_SYSCTLS = (
    *SYSCTLS, "vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
    "net/netfilter/nf_conntrack_max", "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait", "net/netfilter/nf_conntrack_tcp_be_liberal",
    "net/ipv4/conf/default/route_localnet", "net/ipv4/conf/all/forwarding", "net/ipv4/conf/default/forwarding",
)
HIERARCHIES = ("cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "blkio", "devices", "systemd", "hugetlb")
KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT", "KUBE-PROXY-CANARY")
# Debian package providing each command or file the real nodes need.
REQUIREMENTS = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "ip6tables": "iptables",
    "conntrack": "conntrack",
    "ip": "iproute2",
    str(CNI_BIN / "bridge"): "containernetworking-plugins",
    str(CNI_BIN / "host-local"): "containernetworking-plugins",
    str(CNI_BIN / "portmap"): "containernetworking-plugins",
    str(CNI_BIN / "loopback"): "containernetworking-plugins",
}
_Say = Callable[[str], None]


@dataclass(frozen=True)
class RealNode:
    """One real node: its name, zone and index (1-based), from which addresses derive."""

    name: str
    zone: str
    index: int

    @property
    def ip(self) -> str:
        """The node's InternalIP (on the host bridge ``rt0``)."""
        return f"{NODE_IP_PREFIX}{self.index}"

    @property
    def subnet(self) -> str:
        """The node's pod subnet."""
        return f"10.244.{self.index}.0/24"

    @property
    def bridge(self) -> str:
        """The node's CNI bridge."""
        return f"rtbr{self.index}"


def plan(names: list[str], zone_of: Callable[[str], str]) -> list[RealNode]:
    """The real nodes for ``names`` (indexes 1..n)."""
    return [RealNode(name, zone_of(name), i) for i, name in enumerate(names, start=1)]


def missing_requirements() -> list[str]:
    """Commands, files and kernel features the real nodes need but this machine lacks (one line each)."""
    missing = []
    packages = sorted({pkg for need, pkg in REQUIREMENTS.items()
                       if not (Path(need).exists() if need.startswith("/") else shutil.which(need))})
    if packages:
        missing.append(f"Debian packages {' '.join(packages)} (apt-get install -y {' '.join(packages)})")
    if os.geteuid() != 0:
        missing.append("root (kubelet, containerd and iptables need it)")
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        missing.append("bridge netfilter (/proc/sys/net/bridge/bridge-nf-call-iptables; modprobe br_netfilter)")
    if not (Path("/proc/net/nf_conntrack").exists() or Path("/proc/sys/net/netfilter/nf_conntrack_max").exists()):
        missing.append("conntrack in the kernel (modprobe nf_conntrack)")
    for hierarchy in ("freezer", "cpu", "memory", "cpuset", "pids"):
        if not Path(f"/sys/fs/cgroup/{hierarchy}/cgroup.procs").exists():
            missing.append(f"the cgroup v1 {hierarchy} hierarchy (/sys/fs/cgroup/{hierarchy})")
    return missing


def _run(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise TestbedError(f"`{' '.join(argv[:4])}` failed: {(proc.stderr or proc.stdout).strip()[:400]}")
    return proc


class RealNodes:
    """The real nodes of one local cluster.

    Args:
        cluster: the cluster name (cgroup and file names derive from it).
        run_dir: the cluster's run directory; real nodes live in ``run_dir/real``.
        binaries: directory with kubelet and kube-proxy.
        kubeconfig: admin kubeconfig of the cluster.
    """

    def __init__(self, cluster: str, run_dir: Path, binaries: Path, kubeconfig: Path) -> None:
        self.cluster = cluster
        self.dir = run_dir / "real"
        self.run_dir = run_dir
        self.binaries = binaries
        self.kubeconfig = kubeconfig
        self.cgroup_root = f"rt-{cluster}"
        self.pki = kubeconfig.parent / "pki"

    # ------------------------------------------------------------------ bookkeeping
    @property
    def _state_file(self) -> Path:
        return self.dir / "state.json"

    def recorded(self) -> list[RealNode]:
        """The real nodes recorded for this cluster (also those of a crashed run)."""
        try:
            data = json.loads(self._state_file.read_text())
            return [RealNode(**n) for n in data["nodes"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _record(self, nodes: list[RealNode], host: dict[str, str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._state_file.write_text(json.dumps({"nodes": [n.__dict__ for n in nodes], "host": host}))

    @property
    def _images_file(self) -> Path:
        return self.dir / "images.json"

    def imported_images(self) -> dict[str, str]:
        """Image tag -> the archive last imported for it into every real node."""
        try:
            return {str(k): str(v) for k, v in json.loads(self._images_file.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def refresh_images(self, images: dict[str, Path]) -> list[str]:
        """Import the archives that changed since the nodes got theirs (a rebuilt demo app); return their tags.

        Running pods keep the image they started with; pods created from now on get the new one.
        """
        saved = self.imported_images()
        changed = [tag for tag, archive in images.items() if saved.get(tag) != str(archive)]
        for tag in changed:
            for node in self.recorded():
                self.import_image(node, images[tag], tag)
        if changed:
            self._record_images(images)
        return changed

    def _record_images(self, images: dict[str, Path]) -> None:
        self._images_file.write_text(json.dumps({tag: str(path) for tag, path in images.items()}))

    def _saved_host(self) -> dict[str, str]:
        try:
            return dict(json.loads(self._state_file.read_text())["host"])
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def node_dir(self, node: RealNode) -> Path:
        """Directory of one node (containerd, kubelet, CNI state and logs)."""
        return self.dir / node.name

    def socket(self, node: RealNode) -> Path:
        """containerd's socket of one node."""
        return self.node_dir(node) / "containerd.sock"

    def cgroup(self, node: RealNode, hierarchy: str, *parts: str) -> Path:
        """The node's cgroup directory in ``hierarchy``."""
        return Path("/sys/fs/cgroup", hierarchy, self.cgroup_root, node.name, *parts)

    def running(self) -> dict[str, int]:
        """Processes of the real nodes that run now, by name."""
        return {r.name: r.pid for r in procs.records(self.dir) if procs.is_running(r)}

    # ------------------------------------------------------------------ start
    def start(self, nodes: list[RealNode], images: dict[str, Path], say: _Say, *, timeout: float = 120) -> None:
        """Set up the host, start every node and kube-proxy, wait until the nodes are Ready.

        The caller has checked :func:`missing_requirements`.
        """
        provisioner = storage.provisioner_binary()  # built before anything changes (minutes the first time)
        host = {key: _read_sysctl(key) for key in RECORDED_SYSCTLS}
        self._record(nodes, host)  # before any change to the host, so a crash is cleaned up
        self.dir.chmod(0o700)
        self._issue_identities(nodes)
        self._setup_host(nodes)
        for node in nodes:
            say(f"starting real node {node.name} ({node.zone}, pods {node.subnet}, node IP {node.ip})")
            self._start_containerd(node)
        for node in nodes:
            self._wait_socket(node)
            for tag, archive in images.items():
                self.import_image(node, archive, tag)
            self._start_kubelet(node)
        self._record_images(images)
        say("starting kube-proxy (iptables mode, NodePorts on 127.0.0.1)")
        self._start_kube_proxy(nodes[0])
        say(f"starting the storage provisioner (default StorageClass {storage.STORAGE_CLASS})")
        storage.start(self.dir, Authority(self.pki), self._api_server(), provisioner, self._kubectl)
        self._wait_ready(nodes, timeout)

    def _kubectl(self, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run([str(self.binaries / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
                              input=stdin, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            raise TestbedError(f"kubectl {' '.join(args[:3])} failed: {proc.stderr.strip()[:400]}")
        return proc.stdout

    def _api_server(self) -> str:
        try:
            document = yaml.safe_load(self.kubeconfig.read_text())
            return str(document["clusters"][0]["cluster"]["server"])
        except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
            raise TestbedError(f"cannot read the API server address from {self.kubeconfig}: {exc}") from None

    def _issue_identities(self, nodes: list[RealNode]) -> None:
        """Serving and client certificates per kubelet, a client certificate for kube-proxy (see ``pki.py``)."""
        authority = Authority(self.pki)
        server = self._api_server()
        for node in nodes:
            folder = self.node_dir(node) / "pki"
            authority.issue(folder, "kubelet-server", common_name=f"system:node:{node.name}",
                            groups=("system:nodes",), ips=(node.ip,), dns=(node.name,), server=True)
            client = authority.issue(folder, "kubelet-client", common_name=f"system:node:{node.name}",
                                     groups=("system:nodes",))
            authority.kubeconfig(self.node_dir(node) / "kubeconfig", server, f"system:node:{node.name}", client)
        proxy = authority.issue(self.dir / "kube-proxy", "client", common_name="system:kube-proxy")
        authority.kubeconfig(self.dir / "kube-proxy" / "kubeconfig", server, "system:kube-proxy", proxy)

    def _setup_host(self, nodes: list[RealNode]) -> None:
        for key in SYSCTLS:
            _write_sysctl(key, "1")
        if _run("ip", "link", "show", HOST_BRIDGE, check=False).returncode != 0:
            _run("ip", "link", "add", HOST_BRIDGE, "type", "bridge")
        _run("ip", "link", "set", HOST_BRIDGE, "up")
        for node in nodes:
            _run("ip", "addr", "replace", f"{node.ip}/32", "dev", HOST_BRIDGE)
        _run("ip", "route", "replace", SERVICE_CIDR, "dev", HOST_BRIDGE)
        _run("ip", "route", "replace", "unreachable", SIM_POD_CIDR)
        _run("ip", "route", "replace", "unreachable", REAL_POD_CIDR)
        # Real pods may talk to each other, to Services (already DNATed here) and to the host; nothing else.
        _ensure_chain("filter", GUARD_CHAIN, [
            ["-d", REAL_POD_CIDR, "-j", "RETURN"],
            ["-d", NODE_IP_CIDR, "-j", "RETURN"],
            ["-s", REAL_POD_CIDR, "-j", "REJECT"],
        ], jumps=["FORWARD"])
        _ensure_chain("filter", HOST_GUARD_CHAIN, [
            ["-s", REAL_POD_CIDR, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"],
            ["-s", REAL_POD_CIDR, "-j", "REJECT"],
        ], jumps=["INPUT"])
        _ensure_chain("filter", FREEZE_CHAIN, [], jumps=["FORWARD", "OUTPUT"])
        for hierarchy in self._hierarchies():
            for node in nodes:
                for path in (self.cgroup(node, hierarchy).parent, self.cgroup(node, hierarchy),
                             self.cgroup(node, hierarchy, "system")):
                    path.mkdir(exist_ok=True)
                    if hierarchy == "cpuset":
                        for name in ("cpuset.cpus", "cpuset.mems"):
                            (path / name).write_text((path.parent / name).read_text())

    @staticmethod
    def _hierarchies() -> list[str]:
        return [h for h in HIERARCHIES if Path(f"/sys/fs/cgroup/{h}/cgroup.procs").exists()]

    def _start_in_cgroup(self, name: str, node: RealNode, argv: list[str]) -> procs.ProcessRecord:
        """Start ``argv`` inside the node's system cgroup (joined before exec, so children follow)."""
        targets = " ".join(str(self.cgroup(node, h, "system", "cgroup.procs")) for h in self._hierarchies())
        script = f'for f in {targets}; do echo $$ > "$f"; done; exec "$@"'
        record = procs.start(name, ["/bin/sh", "-c", script, name, *argv], run_dir=self.dir,
                             marker=str(self.node_dir(node)))
        if not procs.survived_start(record):
            raise TestbedError(f"{name} exited at start:\n{procs.log_tail(record.log)}")
        return record

    def _start_containerd(self, node: RealNode) -> None:
        folder = self.node_dir(node)
        for sub in ("root", "state", "cni-conf", "cni-ipam", "certs.d/_default", "kubelet", "pod-logs"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / "certs.d/_default/hosts.toml").write_text(
            'server = "http://127.0.0.1:1"\n[host."http://127.0.0.1:1"]\n  capabilities = ["pull", "resolve"]\n')
        (folder / "cni-conf/10-rt.conflist").write_text(json.dumps(cni_config(node, folder / "cni-ipam"), indent=1))
        config = folder / "containerd.toml"
        config.write_text(containerd_config(folder, self.socket(node)))
        self.socket(node).unlink(missing_ok=True)  # a stale socket of a crashed run
        self._start_in_cgroup(f"containerd-{node.name}", node, ["containerd", "--config", str(config)])

    def _wait_socket(self, node: RealNode) -> None:
        sock = self.socket(node)
        try:
            wait_until(f"containerd of {node.name} answering", lambda: self._ctr(node, "version", check=False)
                       .returncode == 0, timeout=30, interval=0.2)
        except WaitTimeoutError:
            log = self.dir / "logs" / f"containerd-{node.name}.log"
            raise TestbedError(f"containerd of {node.name} did not answer on {sock}:\n{procs.log_tail(log)}") from None

    def _ctr(self, node: RealNode, *args: str, check: bool = True,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return _run("ctr", "-a", str(self.socket(node)), "-n", "k8s.io", *args, check=check, timeout=timeout)

    def import_image(self, node: RealNode, archive: Path, tag: str = "") -> None:
        """Import an image archive (docker-archive or OCI layout) into the node's containerd."""
        self._ctr(node, "images", "import", str(archive))
        if tag and tag not in self._ctr(node, "images", "ls", "-q").stdout.split():
            raise TestbedError(f"image {tag} is not in {archive} (imported into {node.name})")

    def _start_kubelet(self, node: RealNode) -> None:
        folder = self.node_dir(node)
        config = folder / "kubelet.yaml"
        config.write_text(json.dumps(kubelet_config(node, folder, self.socket(node),
                                                    f"/{self.cgroup_root}/{node.name}", self.pki / "ca.crt"),
                                     indent=1))
        labels = {ZONE_LABEL: node.zone, REGION_LABEL: REGION, NODE_KIND_LABEL: "real",
                  "node.kubernetes.io/instance-type": "real"}
        argv = [str(self.binaries / "kubelet"), f"--config={config}", f"--kubeconfig={folder / 'kubeconfig'}",
                f"--root-dir={folder / 'kubelet'}", f"--hostname-override={node.name}", f"--node-ip={node.ip}",
                "--node-labels=" + ",".join(f"{k}={v}" for k, v in labels.items()), "--v=1"]
        self._start_in_cgroup(f"kubelet-{node.name}", node, argv)

    def _start_kube_proxy(self, node: RealNode) -> None:
        config = self.dir / "kube-proxy.yaml"
        ports = (free_port(), free_port())
        config.write_text(json.dumps(kube_proxy_config(node.name, self.dir / "kube-proxy" / "kubeconfig", ports),
                                     indent=1))
        record = procs.start("kube-proxy", [str(self.binaries / "kube-proxy"), f"--config={config}", "--v=1"],
                             run_dir=self.dir, marker=str(config))
        if not procs.survived_start(record):
            raise TestbedError(f"kube-proxy exited at start:\n{procs.log_tail(record.log)}")

    def _wait_ready(self, nodes: list[RealNode], timeout: float) -> None:
        left = [n.name for n in nodes]

        def probe() -> bool:
            for name in list(left):
                proc = _run(str(self.binaries / "kubectl"), f"--kubeconfig={self.kubeconfig}", "get", "node", name,
                            "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False)
                if proc.stdout.strip() == "True":
                    left.remove(name)
            dead = [n for n in self._expected(nodes) if n not in self.running()]
            if dead:
                log = self.dir / "logs" / f"{dead[0]}.log"
                raise TestbedError(f"{dead[0]} exited:\n{procs.log_tail(log)}")
            return not left

        try:
            wait_until("real nodes becoming Ready", probe, timeout=timeout, interval=0.5,
                       pending=lambda: ", ".join(left))
        except WaitTimeoutError as exc:
            log = self.dir / "logs" / f"kubelet-{left[0]}.log" if left else None
            raise TestbedError(f"{exc}\n{procs.log_tail(log) if log else ''}") from None

    @staticmethod
    def _expected(nodes: list[RealNode]) -> list[str]:
        return [f"{p}-{n.name}" for n in nodes for p in ("containerd", "kubelet")] + ["kube-proxy", storage.PROCESS]

    def expected_processes(self) -> list[str]:
        """Names of the processes the recorded nodes should have."""
        nodes = self.recorded()
        return self._expected(nodes) if nodes else []

    def healthy(self) -> bool:
        """True if every recorded node has its kubelet and containerd, and kube-proxy runs."""
        nodes = self.recorded()
        return bool(nodes) and set(self._expected(nodes)) <= set(self.running())

    # ------------------------------------------------------------------ failure
    def freeze(self, nodes: list[RealNode]) -> None:
        """Freeze kubelet, containerd and containers of ``nodes``; their pod subnets stop answering.

        The network goes first and at once, as a machine that dies does: the drops are in place and first in
        line before any process is frozen, so no request is answered by a node half-way through its freeze.
        """
        for node in nodes:
            _iptables("filter", "-A", FREEZE_CHAIN, "-d", node.subnet, "-j", "DROP",
                      "-m", "comment", "--comment", f"frozen {node.name}")
        # First in line, ahead of kube-proxy's ACCEPT of established flows: those stop answering too.
        for parent in ("FORWARD", "OUTPUT"):
            _first_in_line(parent, FREEZE_CHAIN)
        states = [self.cgroup(node, "freezer") / "freezer.state" for node in nodes]
        for state in states:
            state.write_text("FROZEN")
        for node, state in zip(nodes, states, strict=True):
            wait_until(f"{node.name} frozen", functools.partial(_reads, state, "FROZEN"), timeout=10, interval=0.05)

    def thaw(self, nodes: list[RealNode]) -> None:
        """Undo :meth:`freeze` (no-op for nodes that are not frozen)."""
        for node in nodes:
            state = self.cgroup(node, "freezer") / "freezer.state"
            with contextlib.suppress(OSError):
                state.write_text("THAWED")
            _iptables("filter", "-D", FREEZE_CHAIN, "-d", node.subnet, "-j", "DROP",
                      "-m", "comment", "--comment", f"frozen {node.name}", check=False)

    def frozen(self, node: RealNode) -> bool:
        """Whether ``node`` is frozen now."""
        try:
            return (self.cgroup(node, "freezer") / "freezer.state").read_text().strip() != "THAWED"
        except OSError:
            return False

    # ------------------------------------------------------------------ memory
    def pids(self) -> list[int]:
        """Every process of the real nodes (kubelets, containerds, shims, containers) and kube-proxy."""
        found = set(self.running().values())
        for node in self.recorded():
            found.update(_cgroup_pids(self.cgroup(node, "freezer")))
        return sorted(found)

    # ------------------------------------------------------------------ teardown
    def teardown(self) -> list[str]:
        """Stop everything of the real nodes and undo every host change. Returns problems left (if any)."""
        nodes = self.recorded()
        if not nodes and not self.dir.exists():
            return []
        problems: list[str] = []
        self.thaw(nodes)
        for record in procs.records(self.dir):
            if record.name.startswith("kubelet-") or record.name in ("kube-proxy", storage.PROCESS):
                procs.stop(record, self.dir, grace=3)
        for node in nodes:
            self._kill_node(node)
        for record in procs.records(self.dir):
            procs.stop(record, self.dir, grace=1)
        self._unmount_under(self.dir)
        if nodes:
            _run(str(self.binaries / "kube-proxy"), "--cleanup", check=False, timeout=60)
            self._undo_host(nodes)
        for node in nodes:
            for hierarchy in self._hierarchies():
                _remove_cgroup_tree(self.cgroup(node, hierarchy))
        for hierarchy in self._hierarchies():
            with contextlib.suppress(OSError):
                Path("/sys/fs/cgroup", hierarchy, self.cgroup_root).rmdir()
        left = [p for n in nodes for p in _cgroup_pids(self.cgroup(n, "freezer"))]
        if left:
            problems.append(f"processes still in the real nodes' cgroups: {left[:10]}")
        shutil.rmtree(self.dir, ignore_errors=True)
        return problems

    def _kill_node(self, node: RealNode) -> None:
        """SIGKILL every process in the node's cgroup tree, releasing the pods' network namespaces."""
        root = self.cgroup(node, "freezer")
        netns = {_netns_inode(pid) for pid in _cgroup_pids(root)} - {_netns_inode(os.getpid()), 0}
        for _ in range(20):
            pids = _cgroup_pids(root)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        netns_dir = Path("/var/run/netns")
        for entry in netns_dir.glob("cni-*") if netns_dir.is_dir() else []:
            with contextlib.suppress(OSError):
                if entry.stat().st_ino in netns:
                    _run("umount", "-l", str(entry), check=False)
                    entry.unlink()
        _run("ip", "link", "del", node.bridge, check=False)

    @staticmethod
    def _unmount_under(folder: Path) -> None:
        prefix = str(folder.resolve()) + "/"
        mounts = []
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/mountinfo").read_text().splitlines():
                point = line.split()[4].replace("\\040", " ")
                if point.startswith(prefix):
                    mounts.append(point)
        for point in sorted(mounts, key=len, reverse=True):
            _run("umount", "-l", point, check=False)

    def _undo_host(self, nodes: list[RealNode]) -> None:
        for chain, jumps in ((GUARD_CHAIN, ["FORWARD"]), (HOST_GUARD_CHAIN, ["INPUT"]),
                             (FREEZE_CHAIN, ["FORWARD", "OUTPUT"])):
            _drop_chain("iptables", "filter", chain, jumps)
        for tool in ("iptables", "ip6tables"):
            for table in ("filter", "nat", "mangle"):
                for chain in KUBELET_CHAINS:
                    _drop_chain(tool, table, chain, ["INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"])
        for route in (["unreachable", SIM_POD_CIDR], ["unreachable", REAL_POD_CIDR], [SERVICE_CIDR]):
            _run("ip", "route", "del", *route, check=False)
        _run("ip", "link", "del", HOST_BRIDGE, check=False)
        for node in nodes:
            _run("ip", "link", "del", node.bridge, check=False)
        for key, value in self._saved_host().items():
            with contextlib.suppress(OSError):
                _write_sysctl(key, value)


# ---------------------------------------------------------------------- configuration documents
def containerd_config(folder: Path, sock: Path) -> str:
    """containerd 1.6 configuration of one node: own root, state and socket; CRI with our pause image."""
    from resilience_tests.testbed.images import PAUSE_IMAGE

    return f"""version = 2
root = "{folder / 'root'}"
state = "{folder / 'state'}"
oom_score = 0

[grpc]
  address = "{sock}"

[debug]
  level = "warn"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{folder / 'cni-conf'}"
  max_conf_num = 1

[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "{folder / 'certs.d'}"
"""


def cni_config(node: RealNode, ipam_dir: Path) -> dict[str, Any]:
    """CNI conflist of one node: a bridge with the node's pod subnet, and portmap."""
    return {
        "cniVersion": "1.0.0",
        "name": f"rt-{node.name}",
        "plugins": [
            {"type": "bridge", "bridge": node.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(ipam_dir), "ranges": [[{"subnet": node.subnet}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(node: RealNode, folder: Path, sock: Path, cgroup_root: str, ca: Path) -> dict[str, Any]:
    """KubeletConfiguration of one node (cgroup v1, cgroupfs, ports on the node IP).

    Its API (port 10250) serves the certificate issued for the node and answers only
    clients with a certificate of the cluster CA or a token the API server accepts,
    for what the API server authorizes (``Webhook``): nobody anonymous.
    """
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "cgroupRoot": cgroup_root,
        "containerRuntimeEndpoint": f"unix://{sock}",
        "address": node.ip,
        "port": 10250,
        "healthzBindAddress": node.ip,
        "healthzPort": 10248,
        "readOnlyPort": 0,
        "tlsCertFile": str(folder / "pki" / "kubelet-server.crt"),
        "tlsPrivateKeyFile": str(folder / "pki" / "kubelet-server.key"),
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca)}},
        "authorization": {"mode": "Webhook"},
        "enforceNodeAllocatable": [],
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "localStorageCapacityIsolation": False,
        "resolvConf": "",
        "podLogsDir": str(folder / "pod-logs"),
        "nodeStatusUpdateFrequency": "5s",
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "serializeImagePulls": False,
        "maxPods": 40,
        "registerWithTaints": [{"key": REAL_NODE_TAINT, "value": "true", "effect": "NoSchedule"}],
        "containerLogMaxSize": "1Mi",
    }


def kube_proxy_config(hostname: str, kubeconfig: Path, ports: tuple[int, int]) -> dict[str, Any]:
    """KubeProxyConfiguration: iptables mode, NodePorts on 127.0.0.1, no host-wide conntrack tuning."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clusterCIDR": REAL_POD_CIDR,
        "hostnameOverride": hostname,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": f"127.0.0.1:{ports[0]}",
        "metricsBindAddress": f"127.0.0.1:{ports[1]}",
        "nodePortAddresses": ["127.0.0.0/8"],
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        # Zero: leave the host's conntrack table size and timeouts as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"syncPeriod": "10s", "minSyncPeriod": "0s"},
    }


# ---------------------------------------------------------------------- host helpers
def _read_sysctl(key: str) -> str:
    try:
        return Path("/proc/sys", key).read_text().strip()
    except OSError:
        return ""


def _write_sysctl(key: str, value: str) -> None:
    if value:
        Path("/proc/sys", key).write_text(value)


def _iptables(table: str, *args: str, tool: str = "iptables", check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(tool, "-w", "5", "-t", table, *args, check=check)


def _first_in_line(parent: str, chain: str) -> None:
    """Make the jump to ``chain`` the first rule of ``parent`` (filter table), without a moment where it is
    missing: a new jump goes in first, then any later one is deleted by its number."""
    def numbers() -> list[int]:
        listed = _iptables("filter", "-S", parent).stdout.splitlines()[1:]  # the first line is the policy
        return [i for i, rule in enumerate(listed, 1) if rule.split() == ["-A", parent, "-j", chain]]

    if numbers()[:1] == [1]:
        return
    _iptables("filter", "-I", parent, "1", "-j", chain)
    for number in reversed(numbers()[1:]):
        _iptables("filter", "-D", parent, str(number))


def _ensure_chain(table: str, chain: str, rules: list[list[str]], *, jumps: list[str]) -> None:
    if _iptables(table, "-n", "-L", chain, check=False).returncode != 0:
        _iptables(table, "-N", chain)
    _iptables(table, "-F", chain)
    for rule in rules:
        _iptables(table, "-A", chain, *rule)
    for parent in jumps:
        if _iptables(table, "-C", parent, "-j", chain, check=False).returncode != 0:
            _iptables(table, "-I", parent, "1", "-j", chain)


def _drop_chain(tool: str, table: str, chain: str, parents: list[str]) -> None:
    listing = _iptables(table, "-S", tool=tool, check=False).stdout
    if f"-N {chain}" not in listing:
        return
    for line in listing.splitlines():
        words = line.split()
        if len(words) > 2 and words[0] == "-A" and words[1] in parents and f"-j {chain}" in line:
            _iptables(table, "-D", *words[1:], tool=tool, check=False)
    _iptables(table, "-F", chain, tool=tool, check=False)
    _iptables(table, "-X", chain, tool=tool, check=False)


def _reads(path: Path, value: str) -> bool:
    return path.read_text().strip() == value


def _cgroup_pids(root: Path) -> list[int]:
    pids: list[int] = []
    if not root.is_dir():
        return pids
    for procs_file in root.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids.extend(int(p) for p in procs_file.read_text().split())
    return pids


def _remove_cgroup_tree(root: Path) -> None:
    if not root.is_dir():
        return
    for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            path.rmdir()
    with contextlib.suppress(OSError):
        root.rmdir()


def _netns_inode(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return 0

