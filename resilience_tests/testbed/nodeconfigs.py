"""What a real node of the local cluster is, and the configuration documents its processes read (pure).

A real node has an index (1-based) from which its addresses derive: node IP ``10.241.0.<i>`` on the host bridge,
pod subnet ``10.244.<i>.0/24`` behind the CNI bridge ``rtbr<i>``. The documents are rendered here and written by
:mod:`resilience_tests.testbed.realnodes`; ``tests/unit/test_realnodes.py`` checks them without a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REAL_POD_CIDR = "10.244.0.0/16"
# Real nodes run only pods that tolerate this taint (and select them by the node-kind label):
# workloads written for simulated nodes, with images that exist nowhere, never land on a kubelet.
REAL_NODE_TAINT = "resilience-tests.io/real-node"
NODE_IP_PREFIX = "10.241.0."
NODE_IP_CIDR = "10.241.0.0/24"
CNI_BIN = Path("/usr/lib/cni")


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

