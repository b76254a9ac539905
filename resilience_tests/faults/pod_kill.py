"""pod-kill: delete pods by selector, gracefully or forced, once or every N seconds."""

from __future__ import annotations

import threading
from typing import ClassVar

from pydantic import Field

from resilience_tests.cluster.selection import Amount, PodInfo, select_pods
from resilience_tests.faults.base import FaultContext, FaultParams
from resilience_tests.schema import Duration


class PodKillParams(FaultParams, Amount):
    """Keys of a pod-kill fault."""

    selector: str | None = None
    grace_period: Duration | None = None
    force: bool = False
    every: Duration | None = Field(default=None, gt=0)
    times: int | None = Field(default=None, ge=1)


class PodKill:
    """Deletes the chosen pods; their controller replaces them."""

    name: ClassVar[str] = "pod-kill"
    Params: ClassVar[type[FaultParams]] = PodKillParams

    def __init__(self, params: FaultParams, ctx: FaultContext) -> None:
        assert isinstance(params, PodKillParams)
        self.params = params
        self.ctx = ctx
        self.selector = params.selector or ctx.target_selector
        self.killed: list[str] = []
        self.error = ""  # why repeated rounds stopped early
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _grace(self) -> int | None:
        if self.params.force:
            return 0
        return None if self.params.grace_period is None else int(self.params.grace_period)

    def describe(self) -> list[str]:
        grace = self._grace()
        how = ("force-delete (grace 0)" if self.params.force else
               "delete with no grace (a crash)" if grace == 0 else
               "delete (graceful: the pod's own grace period)" if grace is None else
               f"delete (graceful: {grace} s grace)")
        amount = (f"{self.params.count}" if self.params.count else
                  f"{self.params.percent:.0%}" if self.params.percent else "all")
        repeat = f", every {self.params.every:.0f} s" if self.params.every else ""
        chosen = self._choose(seed=self.ctx.seed)
        self.ctx.budget.take("pod-kill", pods=[p.key for p in chosen])
        pods = ", ".join(p.name for p in chosen) or "none"
        return [f"{how} {amount} pod(s) matching '{self.selector}' in {self.ctx.namespace}{repeat}: now {pods}"]

    def _choose(self, seed: int) -> list[PodInfo]:
        return select_pods(self.ctx.kube.pods(self.ctx.namespace, self.selector), self.params, seed=seed,
                           allow_kube_system=self.ctx.allow_kube_system, max_pods=self.ctx.max_pods,
                           what=f"'{self.selector}' in {self.ctx.namespace}")

    def _kill_round(self, round_no: int) -> None:
        chosen = self._choose(seed=self.ctx.seed + round_no)
        # every round counts against the experiment's max_pods
        self.ctx.budget.take(f"pod-kill round {round_no + 1}", pods=[p.key for p in chosen])
        for pod in chosen:
            self.ctx.kube.delete_pod(pod.name, pod.namespace, self._grace())  # gone already: killed too
            self.killed.append(pod.name)
            self.ctx.record("pod-kill", {"pod": pod.name, "node": pod.node, "round": round_no})

    def inject(self) -> None:
        self._kill_round(0)
        if self.params.every:
            self._thread = threading.Thread(target=self._repeat, daemon=True, name="pod-kill")
            self._thread.start()

    def _repeat(self) -> None:
        assert self.params.every
        rounds = 1
        while not self._stop.wait(self.params.every):
            if self.params.times and rounds >= self.params.times:
                return
            try:
                self._kill_round(rounds)
            except Exception as exc:  # keep the record; the fault stops repeating (a spent budget too)
                self.ctx.record("pod-kill-error", {"error": str(exc)})
                self.error = str(exc)
                return
            rounds += 1

    def revert(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
