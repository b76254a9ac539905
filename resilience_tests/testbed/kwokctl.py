"""The control plane of the local cluster, run by kwokctl's binary runtime.

kwokctl creates the PKI and kubeconfig and supervises etcd, kube-apiserver,
kube-controller-manager and kube-scheduler as local processes built by
:mod:`resilience_tests.testbed.build`. Its own kwok controller is disabled: the
launcher runs one with the project's stages and a label selector, which is how
simulated nodes lose their heartbeat for real (see ``cluster.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from resilience_tests.errors import TestbedError
from resilience_tests.net import free_port
from resilience_tests.testbed.pki import lock_down

SERVICE_CIDR = "10.96.0.0/16"


@dataclass(frozen=True)
class Timings:
    """Heartbeat and eviction timings of the control plane and the kwok controller.

    ``fast`` (test-sized clusters): a node missing heartbeats for 16 s becomes
    NotReady/Unknown, its pods tolerate that for 20 s, then taint-based eviction
    deletes them; eviction keeps going when a whole zone is down.
    ``scale`` (more than 100 nodes): Kubernetes' own defaults, so that a busy
    2-core machine renewing thousands of leases does not declare nodes dead.
    """

    name: str
    node_monitor_period_ms: int
    node_monitor_grace_ms: int
    toleration_seconds: int
    lease_seconds: int
    aggressive_eviction: bool

    @classmethod
    def for_nodes(cls, nodes: int) -> Timings:
        """The profile for a cluster of ``nodes`` simulated nodes."""
        if nodes > 100:
            return cls("scale", 5000, 50000, 300, 40, False)
        return cls("fast", 2000, 16000, 20, 20, True)

    def apiserver_args(self) -> dict[str, str]:
        """Extra kube-apiserver flags."""
        return {
            "service-cluster-ip-range": SERVICE_CIDR,
            "default-not-ready-toleration-seconds": str(self.toleration_seconds),
            "default-unreachable-toleration-seconds": str(self.toleration_seconds),
        }

    def controller_manager_args(self) -> dict[str, str]:
        """Extra kube-controller-manager flags."""
        # The HPA controller reconciles every 5 s instead of 15 s, so autoscaling tests see it act within seconds.
        args = {"service-cluster-ip-range": SERVICE_CIDR, "terminated-pod-gc-threshold": "100",
                "horizontal-pod-autoscaler-sync-period": "5s"}
        if self.aggressive_eviction:
            # Small clusters: keep evicting when a zone is partly or fully down.
            args.update({"node-eviction-rate": "1", "secondary-node-eviction-rate": "1",
                         "large-cluster-size-threshold": "1"})
        return args


def etcd_tls_args(pki: Path, client_port: int, peer_port: int) -> tuple[dict[str, str], dict[str, str]]:
    """etcd flags for TLS with client certificates (first: kwokctl's flags to override, then new ones).

    kwokctl starts etcd on plain HTTP; these make both its client and peer ports
    TLS-only and require a certificate signed by the cluster CA.
    """
    client = f"https://127.0.0.1:{client_port}"
    peer = f"https://127.0.0.1:{peer_port}"
    override = {"listen-client-urls": client, "advertise-client-urls": client, "listen-peer-urls": peer,
                "initial-advertise-peer-urls": peer, "initial-cluster": f"node0={peer}"}
    extra = {"cert-file": str(pki / "admin.crt"), "key-file": str(pki / "admin.key"),
             "trusted-ca-file": str(pki / "ca.crt"), "client-cert-auth": "true",
             "peer-cert-file": str(pki / "admin.crt"), "peer-key-file": str(pki / "admin.key"),
             "peer-trusted-ca-file": str(pki / "ca.crt"), "peer-client-cert-auth": "true"}
    return override, extra


def apiserver_tls_args(pki: Path, etcd_port: int) -> tuple[dict[str, str], dict[str, str]]:
    """kube-apiserver flags: etcd over TLS, and a client certificate towards kubelets, whose serving
    certificates it verifies against the cluster CA."""
    override = {"etcd-servers": f"https://127.0.0.1:{etcd_port}"}
    extra = {"etcd-cafile": str(pki / "ca.crt"), "etcd-certfile": str(pki / "admin.crt"),
             "etcd-keyfile": str(pki / "admin.key"),
             "kubelet-client-certificate": str(pki / "admin.crt"), "kubelet-client-key": str(pki / "admin.key"),
             "kubelet-certificate-authority": str(pki / "ca.crt"),
             # Node IPs, never a name lookup (real nodes' hostnames resolve nowhere).
             "kubelet-preferred-address-types": "InternalIP",
             # The front proxy: the API server forwards requests for aggregated APIs (metrics.k8s.io) with the
             # caller's identity in these headers, signed by its proxy client certificate (kwokctl's admin one);
             # an aggregated server trusts the headers only from a certificate of the CA with that name.
             "requestheader-client-ca-file": str(pki / "ca.crt"), "requestheader-allowed-names": "kwok-admin",
             "requestheader-username-headers": "X-Remote-User", "requestheader-group-headers": "X-Remote-Group",
             "requestheader-extra-headers-prefix": "X-Remote-Extra-"}
    return override, extra


AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
    # Every request that may change something, at Metadata level (who, verb, object; never a body, so no
    # Secret value lands in the log); reads are not logged (they are most of the traffic).
    "rules": [{"level": "Metadata", "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
              {"level": "None"}],
}
"""The API server's audit policy: the log is what proves a refused input wrote nothing."""


def audit_args(folder: Path) -> dict[str, str]:
    """kube-apiserver flags for a JSON-lines audit log of every write, ``folder/audit.log`` (rotated at
    100 MB, 2 old files kept), with the policy written beside it."""
    policy = folder / "audit-policy.json"
    policy.write_text(json.dumps(AUDIT_POLICY))
    return {"audit-policy-file": str(policy), "audit-log-path": str(folder / "audit.log"),
            "audit-log-format": "json", "audit-log-maxsize": "100", "audit-log-maxbackup": "2",
            "audit-log-mode": "blocking"}


def config_document(binaries: Path, port: int, timings: Timings, pki: Path,
                    etcd_ports: tuple[int, int], audit: dict[str, str] | None = None) -> dict[str, object]:
    """The KwokctlConfiguration used to create the control plane (``pki``: where kwokctl writes its CA;
    ``audit``: the API server's audit flags, see :func:`audit_args`)."""

    def args(mapping: dict[str, str], *, override: bool = False) -> list[dict[str, object]]:
        if override:
            return [{"key": key, "value": value, "override": True} for key, value in mapping.items()]
        return [{"key": key, "value": value} for key, value in mapping.items()]

    etcd_override, etcd_extra = etcd_tls_args(pki, *etcd_ports)
    api_override, api_extra = apiserver_tls_args(pki, etcd_ports[0])

    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": {
            "runtime": "binary",
            "bindAddress": "127.0.0.1",
            "kubeApiserverPort": port,
            "etcdPort": etcd_ports[0],
            "etcdPeerPort": etcd_ports[1],
            "kubeAuthorization": True,
            "kubeAdmission": True,
            "disableQPSLimits": True,
            "heartbeatFactor": 1,
            "kubeControllerManagerNodeMonitorPeriodMilliseconds": timings.node_monitor_period_ms,
            "kubeControllerManagerNodeMonitorGracePeriodMilliseconds": timings.node_monitor_grace_ms,
            "kubeApiserverBinary": str(binaries / "kube-apiserver"),
            "kubeControllerManagerBinary": str(binaries / "kube-controller-manager"),
            "kubeSchedulerBinary": str(binaries / "kube-scheduler"),
            "kubectlBinary": str(binaries / "kubectl"),
            "etcdBinary": str(binaries / "etcd"),
            "kwokControllerBinary": str(binaries / "kwok"),
            "disable": ["kwok-controller"],
            "quietPull": True,
        },
        "componentsPatches": [
            {"name": "etcd", "extraArgs": args(etcd_override, override=True) + args(etcd_extra)},
            {"name": "kube-apiserver", "extraArgs": args(api_override, override=True)
             + args({**timings.apiserver_args(), **api_extra, **(audit or {})})},
            {"name": "kube-controller-manager", "extraArgs": args(timings.controller_manager_args())},
        ],
    }


class Kwokctl:
    """Runs kwokctl for one named cluster inside a private work directory."""

    def __init__(self, binaries: Path, workdir: Path, name: str) -> None:
        self.binary = binaries / "kwokctl"
        self.binaries = binaries
        self.workdir = workdir
        self.name = name

    @property
    def cluster_dir(self) -> Path:
        """kwokctl's directory for this cluster (PKI, logs, pids)."""
        return self.workdir / "clusters" / self.name

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig kwokctl writes."""
        return self.cluster_dir / "kubeconfig.yaml"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KWOK_WORKDIR"] = str(self.workdir)
        env["KWOK_KUBECTL_BINARY"] = str(self.binaries / "kubectl")
        return env

    def run(self, *args: str, timeout: float = 180) -> str:
        """Run ``kwokctl --name NAME args...``; raise TestbedError on failure."""
        cmd = [str(self.binary), "--name", self.name, *args]
        try:
            proc = subprocess.run(
                cmd, env=self._env(), capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise TestbedError(f"kwokctl {' '.join(args)} did not finish in {timeout:.0f} s") from exc
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
            raise TestbedError(f"kwokctl {' '.join(args[:2])} failed:\n{tail}")
        return proc.stdout

    def create(self, port: int, timeout: float, timings: Timings) -> None:
        """Create and start the control plane, waiting until it is ready."""
        config = self.workdir / f"{self.name}-kwokctl.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        etcd_ports = (free_port(), free_port())
        audit_dir = self.workdir / f"{self.name}-audit"
        audit_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for old in audit_dir.glob("audit*.log"):  # a new cluster starts a new log
            old.unlink()
        config.write_text(json.dumps(config_document(self.binaries, port, timings, self.cluster_dir / "pki",
                                                     etcd_ports, audit_args(audit_dir)), indent=2))
        self.run(
            "create", "cluster", "--config", str(config), "--kubeconfig", "",
            "--wait", f"{int(timeout)}s", "--timeout", f"{int(timeout)}s",
            timeout=timeout + 30,
        )
        # kwokctl writes keys 0600 but its kubeconfig and directories readable by others.
        for folder in (self.cluster_dir, self.cluster_dir / "pki"):
            folder.chmod(0o700)
        lock_down(self.cluster_dir)

    def delete(self) -> None:
        """Stop every control-plane process and delete kwokctl's state."""
        if self.cluster_dir.exists():
            # Its own kubeconfig, never the user's (an empty path is refused by delete).
            self.run("delete", "cluster", "--kubeconfig", str(self.kubeconfig), timeout=120)
        shutil.rmtree(self.audit_log.parent, ignore_errors=True)

    def pids(self) -> dict[str, int]:
        """Pids of the control-plane processes, from kwokctl's pid files."""
        found = {}
        for path in (self.cluster_dir / "pids").glob("*.pid"):
            try:
                found[path.stem] = int(path.read_text().strip())
            except (OSError, ValueError):
                continue
        return found

    @property
    def audit_log(self) -> Path:
        """The API server's audit log: one JSON event per line for every write request."""
        return self.workdir / f"{self.name}-audit" / "audit.log"

    def logs_dir(self) -> Path:
        """Where kwokctl's components write their logs."""
        return self.cluster_dir / "logs"
