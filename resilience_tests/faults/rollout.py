"""rollout: restart a workload, or change its image or environment, and wait for completion.

Image and env changes are undone on revert (another rollout back to what was there).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

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
from resilience_tests.text import plainly_not_secret
from resilience_tests.waiting import wait_until

IMAGE_HINT = ("fix the tag, or import the image: on the local cluster `resilience cluster load-image ARCHIVE` "
              "(it has no registry), on kind `kind load image-archive ARCHIVE`")


def shown_env(env: dict[str, str]) -> str:
    """An env change as the plan and the journal show it: every name, and a value only when it is plainly not
    secret (a number, a boolean or one short lowercase word under a harmless name); the others are ``***``."""
    return ", ".join(f"{name}={value if plainly_not_secret(name, value) else '***'}" for name, value in env.items())


class RolloutParams(FaultParams):
    """Keys of a rollout fault."""

    action: Literal["restart", "image", "env"] = "restart"
    workload: str | None = None
    container: str | None = None
    image: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    wait: bool = True

    @model_validator(mode="after")
    def _needs(self) -> RolloutParams:
        if self.action == "image" and not self.image:
            raise ValueError("action 'image' needs an image")
        if self.action == "env" and not self.env:
            raise ValueError("action 'env' needs env: {NAME: value}")
        return self


class Rollout:
    """Rolls a Deployment, StatefulSet or DaemonSet and waits until it completes."""

    name: ClassVar[str] = "rollout"
    Params: ClassVar[type[FaultParams]] = RolloutParams

    def __init__(self, params: FaultParams, ctx: FaultContext) -> None:
        assert isinstance(params, RolloutParams)
        self.params = params
        self.ctx = ctx
        workload = workload_from(params.workload, ctx)
        if workload is None:
            raise FaultError("rollout needs a workload", hint="set target.workload or the fault's workload key")
        self.workload = workload
        self.fault_id = fault_id(self.name)
        self.changed = False

    def _containers(self) -> list[Any]:
        return list(self.ctx.kube.read_workload(self.workload).spec.template.spec.containers)

    def _container(self) -> str:
        names = [c.name for c in self._containers()]
        if self.params.container is None:
            return str(names[0])
        if self.params.container not in names:
            raise FaultError(f"{self.workload} has no container {self.params.container!r}",
                             hint=f"containers: {', '.join(names)}")
        return self.params.container

    def describe(self) -> list[str]:
        what = {"restart": "rolling restart",
                "image": f"set image of container {self._container()} to {self.params.image}",
                "env": f"set env {shown_env(self.params.env)} on container {self._container()}"}[self.params.action]
        steps = [f"{what} of {self.workload}; wait for the rollout to complete"]
        if self.params.action != "restart":
            steps.append("on revert: roll back to the original image/env")
        return steps

    def inject(self) -> None:
        if self.params.action == "restart":
            self.ctx.kube.restart(self.workload)
        else:
            name = self._container()
            wanted: dict[str, object] = {f"image/{name}": self.params.image} if self.params.action == "image" else \
                {f"env/{name}/{key}": value for key, value in self.params.env.items()}
            self.changed = True
            changes.change(self.ctx.kube, self.workload, wanted, run=self.ctx.run_id, fault=self.fault_id)
        self.ctx.record("rollout", {"workload": str(self.workload), "action": self.params.action})
        if self.params.wait:
            self.wait()

    def wait(self, *, fail_fast: bool = True) -> None:
        """Wait until the rollout has completed; with ``fail_fast``, stop at once if new pods cannot start
        (e.g. an unknown image). Reverts wait without it: the stuck pods of the bad revision are on their way out."""
        kube = self.ctx.kube

        def done() -> bool:
            if not kube.rollout_pending(self.workload):
                return True
            stuck = kube.stuck_pods(self.workload) if fail_fast else []
            if stuck:
                raise FaultError(f"rollout of {self.workload} cannot complete: {stuck[0]}",
                                 hint=IMAGE_HINT if "image" in stuck[0] else "see `kubectl describe pod`")
            return False

        wait_until(f"rollout of {self.workload}", done, timeout=self.params.timeout,
                   pending=lambda: kube.rollout_pending(self.workload))

    def revert(self) -> None:
        if self.changed:
            revert_each("roll back", [str(self.workload)], lambda _: undo_or_report(
                self.ctx, self.workload, self.fault_id))
            self.changed = False
            if self.params.wait:
                self.wait(fail_fast=False)
