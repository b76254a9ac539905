"""Shape of the local cluster: zones, simulated node names and manifests.

Pure logic, no cluster access, so it is unit-tested without one.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from resilience_tests.errors import UsageError
from resilience_tests.labels import HEARTBEAT_LABEL, NODE_KIND_LABEL, REGION_LABEL, ZONE_LABEL

REGION = "local-1"
MAX_ZONES = len(string.ascii_lowercase)
MAX_NODES = 5000
MAX_REAL_NODES = 6
# Pod IPs kwok hands to pods on simulated nodes; nothing listens there (see docs/local-cluster.md).
SIM_POD_CIDR = "10.200.0.0/16"
# Where the kwok controller serves a simulated node's resource metrics (metrics-server reads the annotation).
SIM_METRICS_PATH = "/metrics/nodes/{node}/metrics/resource"
SIM_METRICS_ANNOTATION = "metrics.k8s.io/resource-metrics-path"


@dataclass(frozen=True)
class Topology:
    """How many zones, simulated nodes per zone and real (kubelet) nodes the cluster has.

    Real nodes are spread over the zones in turn: real-a1, real-b1, real-c1, real-a2, ...
    """

    zones: int = 3
    nodes_per_zone: int = 2
    real_nodes: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.zones <= MAX_ZONES:
            raise UsageError(f"--zones must be between 1 and {MAX_ZONES}, got {self.zones}")
        if self.nodes_per_zone < 1:
            raise UsageError(f"--nodes-per-zone must be at least 1, got {self.nodes_per_zone}")
        if self.zones * self.nodes_per_zone > MAX_NODES:
            raise UsageError(
                f"{self.zones} zones x {self.nodes_per_zone} nodes is more than {MAX_NODES} nodes",
                hint="lower --nodes-per-zone",
            )
        if not 0 <= self.real_nodes <= MAX_REAL_NODES:
            raise UsageError(f"--real-nodes must be between 0 and {MAX_REAL_NODES}, got {self.real_nodes}",
                             hint="each real node runs a kubelet and a containerd; 2 or 3 suit a 2-core machine")

    @property
    def zone_names(self) -> list[str]:
        """Names of the zones: zone-a, zone-b, ..."""
        return [f"zone-{letter}" for letter in string.ascii_lowercase[: self.zones]]

    def node_names(self, zone: str | None = None) -> list[str]:
        """Names of the simulated nodes, of one zone or of all."""
        zones = [zone] if zone else self.zone_names
        width = len(str(self.nodes_per_zone))
        return [f"sim-{z[-1]}{i:0{width}d}" for z in zones for i in range(1, self.nodes_per_zone + 1)]

    def real_node_names(self) -> list[str]:
        """Names of the real nodes, spread over the zones in turn."""
        names = self.zone_names
        return [f"real-{names[i % self.zones][-1]}{i // self.zones + 1}" for i in range(self.real_nodes)]

    def zone_of(self, node: str) -> str:
        """Zone of a node of this topology, from its name (sim-a1 and real-a1 are in zone-a)."""
        return f"zone-{node.split('-', 1)[1][0]}"

    def describe(self) -> str:
        """Short human description, e.g. '3 zones x 2 simulated nodes + 2 real nodes'."""
        text = f"{self.zones} zones x {self.nodes_per_zone} simulated nodes"
        return text + (f" + {self.real_nodes} real nodes" if self.real_nodes else "")

    def to_json(self) -> dict[str, int]:
        """The form saved next to a running cluster."""
        return {"zones": self.zones, "nodes_per_zone": self.nodes_per_zone, "real_nodes": self.real_nodes}


def simulated_node(name: str, zone: str) -> dict[str, Any]:
    """Manifest of one kwok-managed node in ``zone``."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "simulated",
                ZONE_LABEL: zone,
                REGION_LABEL: REGION,
                NODE_KIND_LABEL: "simulated",
                HEARTBEAT_LABEL: "on",
                "type": "kwok",
            },
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0",
                            SIM_METRICS_ANNOTATION: SIM_METRICS_PATH.format(node=name)},
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
        },
    }


def node_list(topology: Topology) -> dict[str, Any]:
    """A v1 List of every simulated node of ``topology``."""
    items = [simulated_node(n, topology.zone_of(n)) for n in topology.node_names()]
    return {"apiVersion": "v1", "kind": "List", "items": items}
