"""rollout: restart a workload, or change its image or environment, and wait for completion.

Image and env changes are undone on revert (another rollout back to what was there).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from resilience_tests.faults.base import FaultContext, FaultError, FaultParams, revert_each, workload_from
from resilience_tests.waiting import wait_until

IMAGE_HINT = ("fix the tag, or import the image: on the local cluster `resilience cluster load-image ARCHIVE` "
              "(it has no registry), on kind `kind load image-archive ARCHIVE`")


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
        self.original: list[dict[str, Any]] | None = None

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
                "env": f"set env {self.params.env} on container {self._container()}"}[self.params.action]
        steps = [f"{what} of {self.workload}; wait for the rollout to complete"]
        if self.params.action != "restart":
            steps.append("on revert: roll back to the original image/env")
        return steps

    def inject(self) -> None:
        if self.params.action == "restart":
            self.ctx.kube.restart(self.workload)
        else:
            name = self._container()
            original = next(c for c in self._containers() if c.name == name)
            env = [{"name": e.name, "value": e.value} for e in (original.env or []) if e.value_from is None]
            had = {e.name for e in (original.env or [])}
            # Strategic merge patches merge env by name: variables we add must be deleted explicitly.
            env += [{"name": k, "$patch": "delete"} for k in self.params.env if k not in had]
            self.original = [{"name": name, "image": original.image, "env": env}]
            self._apply(self._changed(name), record_original=True)
        self.ctx.record("rollout", {"workload": str(self.workload), "action": self.params.action})
        if self.params.wait:
            self.wait()

    def _changed(self, name: str) -> list[dict[str, Any]]:
        if self.params.action == "image":
            return [{"name": name, "image": self.params.image}]
        return [{"name": name, "env": [{"name": k, "value": v} for k, v in self.params.env.items()]}]

    def _apply(self, containers: list[dict[str, Any]], *, record_original: bool) -> None:
        annotations = self.ctx.kube.marks(self.workload, "containers", self.original,
                                          self.ctx.run_id if record_original else None)
        self.ctx.kube.patch_workload(self.workload, {"metadata": {"annotations": annotations},
                                             "spec": {"template": {"spec": {"containers": containers}}}})

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
        original = self.original
        if original is not None:
            revert_each("roll back", [str(self.workload)], lambda _: self._apply(original, record_original=False))
            self.original = None
            if self.params.wait:
                self.wait(fail_fast=False)
