"""``generic``: any cluster, through the API only. A node fails by a ``NoExecute`` taint that evicts the pods
not tolerating it (the kubelet keeps running); the taint is the ledger entry itself, so failing and restoring
do nothing more, and nothing is left on this machine to restore."""

from __future__ import annotations

from collections.abc import Callable

from resilience_tests.platform import host
from resilience_tests.platform.base import Capabilities, Outage, Seen, no_network_cut

FAILURE_TAINT = "resilience-tests.io/node-failure"


class TaintOutage:
    """Taints nodes NoExecute so that their pods are evicted: the ledger entry is the taint."""

    name = "generic"
    field = f"taint/{FAILURE_TAINT}/NoExecute"

    def value(self, run_id: str) -> object:
        return run_id[:63]

    def check(self, nodes: list[str]) -> None:
        """Any node can be tainted."""

    def fail(self, nodes: list[str]) -> None:
        """The ledger entry written before this call is the taint."""

    def restore(self, nodes: list[str]) -> None:
        """Undoing the ledger entry removes the taint."""


class GenericPlatform:
    """Any cluster: node outage by taints, no network cut, load from this machine."""

    name = "generic"

    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    @classmethod
    def claims(cls, seen: Seen) -> bool:
        """Every cluster (asked last)."""
        return True

    def capabilities(self) -> Capabilities:
        placement = (host.THIS_MACHINE, host.IN_CLUSTER) if self.seen.real_nodes else (host.THIS_MACHINE,)
        return Capabilities(name=self.name, node_outage="NoExecute taint (the kubelet keeps running)",
                            real_nodes=self.seen.real_nodes, simulated_nodes=self.seen.simulated_nodes,
                            netem=False, network_cut="", load_placement=placement)

    def outage(self) -> Outage:
        return TaintOutage()

    def cut_network(self, nodes: list[str]) -> Callable[[], None]:
        raise no_network_cut(self.name)

    def restore_host(self, node: str, field: str) -> bool:
        return False  # nothing outside the API

    def stop_load(self, server: str, dead: Callable[[str], bool]) -> list[tuple[str, str]]:
        return host.stop_load(server, dead)
