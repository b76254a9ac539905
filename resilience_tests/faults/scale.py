"""scale: change the replicas of a Deployment or StatefulSet; restore them on revert.

A scale-up counts the pods it adds against ``guardrails.max_pods`` (with every other fault's), so
``replicas: 1000000000`` is refused when the plan is made and never reaches the API server.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from resilience_tests.cluster import changes
from resilience_tests.faults.base import (
    FaultContext,
    FaultError,
    FaultParams,
    fault_id,
    revert_each,
    undo_or_report,
    workload_from,
)
from resilience_tests.waiting import wait_until

MAX_REPLICAS = 2**31 - 1  # the API's field is an int32: a larger number is a key error, not an overflow


class ScaleParams(FaultParams):
    """Keys of a scale fault."""

    replicas: int = Field(ge=0, le=MAX_REPLICAS)
    workload: str | None = None
    wait: bool = True


class Scale:
    """Scales a workload to ``replicas`` and back."""

    name: ClassVar[str] = "scale"
    Params: ClassVar[type[FaultParams]] = ScaleParams

    def __init__(self, params: FaultParams, ctx: FaultContext) -> None:
        assert isinstance(params, ScaleParams)
        self.params = params
        self.ctx = ctx
        workload = workload_from(params.workload, ctx)
        if workload is None:
            raise FaultError("scale needs a workload", hint="set target.workload or the fault's workload key")
        if workload.kind == "daemonset":
            raise FaultError(f"{workload} cannot be scaled", hint="scale a deployment or statefulset")
        self.workload = workload
        self.fault_id = fault_id(self.name)
        self.changed = False

    def _take(self) -> int:
        """The replicas now; the pods a scale-up adds are taken from the budget (refused beyond it)."""
        current = self.ctx.kube.replicas(self.workload)
        if self.params.replicas > current:
            self.ctx.budget.take(f"scale of {self.workload} from {current} to {self.params.replicas} replicas",
                                 started=self.params.replicas - current)
        return current

    def describe(self) -> list[str]:
        return [f"scale {self.workload} from {self._take()} to {self.params.replicas} replicas, back on revert"]

    def inject(self) -> None:
        self._take()  # before anything is written: a scale beyond the budget changes nothing
        self.changed = True  # before the write: a revert after a half-done inject finds nothing or undoes it
        changes.change(self.ctx.kube, self.workload, {"replicas": self.params.replicas}, run=self.ctx.run_id,
                       fault=self.fault_id)
        if self.params.wait:
            wait_until(f"scale of {self.workload} to {self.params.replicas}",
                       lambda: not self.ctx.kube.rollout_pending(self.workload), timeout=self.params.timeout,
                       pending=lambda: self.ctx.kube.rollout_pending(self.workload))

    def revert(self) -> None:
        if self.changed:
            revert_each("scale back", [str(self.workload)], lambda _: undo_or_report(
                self.ctx, self.workload, self.fault_id))
            self.changed = False
