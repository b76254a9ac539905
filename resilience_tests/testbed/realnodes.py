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

This module starts and stops the nodes' processes; what a node is and the
documents its processes read are in :mod:`~resilience_tests.testbed.nodeconfigs`,
the host's network in :mod:`~resilience_tests.testbed.hostnet`, the cgroup trees
in :mod:`~resilience_tests.testbed.cgroups`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from resilience_tests import procs
from resilience_tests.errors import TestbedError, WaitTimeoutError
from resilience_tests.labels import NODE_KIND_LABEL, REGION_LABEL, ZONE_LABEL
from resilience_tests.net import free_port
from resilience_tests.testbed import cgroups, hostnet, storage
from resilience_tests.testbed.hostnet import RECORDED_SYSCTLS, run
from resilience_tests.testbed.nodeconfigs import (
    CNI_BIN,
    RealNode,
    cni_config,
    containerd_config,
    kube_proxy_config,
    kubelet_config,
)
from resilience_tests.testbed.pki import Authority
from resilience_tests.testbed.topology import REGION
from resilience_tests.waiting import wait_until

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
        host = {key: hostnet.read_sysctl(key) for key in RECORDED_SYSCTLS}
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
        return Authority.server_of(self.kubeconfig)

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
        hostnet.setup(nodes)
        for hierarchy in cgroups.hierarchies():
            node_groups = [self.cgroup(node, hierarchy) for node in nodes]
            cgroups.make([node_groups[0].parent, *[p for g in node_groups for p in (g, g / "system")]])

    def _start_in_cgroup(self, name: str, node: RealNode, argv: list[str]) -> procs.ProcessRecord:
        """Start ``argv`` inside the node's system cgroup (joined before exec, so children follow)."""
        script = cgroups.join_script([self.cgroup(node, h, "system") for h in cgroups.hierarchies()])
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
        return run("ctr", "-a", str(self.socket(node)), "-n", "k8s.io", *args, check=check, timeout=timeout)

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
                proc = run(str(self.binaries / "kubectl"), f"--kubeconfig={self.kubeconfig}", "get", "node", name,
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
        hostnet.cut(nodes)
        cgroups.freeze([self.cgroup(node, "freezer") for node in nodes])

    def thaw(self, nodes: list[RealNode]) -> None:
        """Undo :meth:`freeze` (no-op for nodes that are not frozen)."""
        cgroups.thaw([self.cgroup(node, "freezer") for node in nodes])
        hostnet.reconnect(nodes)

    def frozen(self, node: RealNode) -> bool:
        """Whether ``node`` is frozen now."""
        return cgroups.frozen(self.cgroup(node, "freezer"))

    # ------------------------------------------------------------------ memory
    def pids(self) -> list[int]:
        """Every process of the real nodes (kubelets, containerds, shims, containers) and kube-proxy."""
        found = set(self.running().values())
        for node in self.recorded():
            found.update(cgroups.pids(self.cgroup(node, "freezer")))
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
            run(str(self.binaries / "kube-proxy"), "--cleanup", check=False, timeout=60)
            hostnet.undo(nodes, self._saved_host())
        for node in nodes:
            for hierarchy in cgroups.hierarchies():
                cgroups.remove_tree(self.cgroup(node, hierarchy))
        for hierarchy in cgroups.hierarchies():
            with contextlib.suppress(OSError):
                (cgroups.ROOT / hierarchy / self.cgroup_root).rmdir()
        left = [p for n in nodes for p in cgroups.pids(self.cgroup(n, "freezer"))]
        if left:
            problems.append(f"processes still in the real nodes' cgroups: {left[:10]}")
        shutil.rmtree(self.dir, ignore_errors=True)
        return problems

    def _kill_node(self, node: RealNode) -> None:
        """SIGKILL every process in the node's cgroup tree, releasing the pods' network namespaces."""
        root = self.cgroup(node, "freezer")
        netns = {hostnet.netns_inode(pid) for pid in cgroups.pids(root)} - {hostnet.netns_inode(os.getpid()), 0}
        cgroups.kill_tree(root)
        netns_dir = Path("/var/run/netns")
        for entry in netns_dir.glob("cni-*") if netns_dir.is_dir() else []:
            with contextlib.suppress(OSError):
                if entry.stat().st_ino in netns:
                    run("umount", "-l", str(entry), check=False)
                    entry.unlink()
        run("ip", "link", "del", node.bridge, check=False)

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
            run("umount", "-l", point, check=False)
