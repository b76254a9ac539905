"""zone-outage: node-failure for every node of a zone, through the same node providers."""

from __future__ import annotations

from typing import ClassVar

from resilience_tests.cluster.providers import ProviderName
from resilience_tests.cluster.selection import NodeSelector
from resilience_tests.faults.base import FaultParams
from resilience_tests.faults.node_failure import NodeFailure


class ZoneOutageParams(FaultParams):
    """Keys of a zone-outage fault."""

    zone: str
    provider: ProviderName = "auto"


class ZoneOutage(NodeFailure):
    """Fails every node of a zone."""

    name: ClassVar[str] = "zone-outage"
    Params: ClassVar[type[FaultParams]] = ZoneOutageParams

    def _selector(self) -> NodeSelector:
        zone = getattr(self.params, "zone", "")
        return NodeSelector(zone=zone, prefer_target_pods=False)
