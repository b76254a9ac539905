"""zone-outage: every node of a zone fails, the platform's way, as node-failure fails nodes."""

from __future__ import annotations

from typing import ClassVar

from resilience_tests.cluster.selection import NodeSelector
from resilience_tests.faults.base import FaultContext, FaultParams
from resilience_tests.faults.node_failure import NodeOutage
from resilience_tests.platform import PlatformName


class ZoneOutageParams(FaultParams):
    """Keys of a zone-outage fault."""

    zone: str
    provider: PlatformName = "auto"


class ZoneOutage:
    """Fails every node of a zone."""

    name: ClassVar[str] = "zone-outage"
    Params: ClassVar[type[FaultParams]] = ZoneOutageParams

    def __init__(self, params: FaultParams, ctx: FaultContext) -> None:
        assert isinstance(params, ZoneOutageParams)
        self.params = params
        self.outage = NodeOutage(self.name, NodeSelector(zone=params.zone, prefer_target_pods=False),
                                 params.provider, ctx)

    def describe(self) -> list[str]:
        return self.outage.describe()

    def inject(self) -> None:
        self.outage.inject()

    def revert(self) -> None:
        self.outage.revert()
