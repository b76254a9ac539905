"""Running an experiment: preflight, timeline, faults on schedule, guaranteed revert.

Order of work:
1. preflight: the namespace and workload exist, every fault is built and
   describes what it would touch (selection and guardrails are checked here),
   so bad input stops the run before anything in the cluster changes;
2. ``dry_run`` stops here and returns the plan;
3. the timeline starts; each fault's revert is registered *before* it is
   injected, then it is injected at its ``at`` time, and reverted at
   ``at + duration`` if it has one;
4. after the last fault the run observes for ``settle`` seconds;
5. every registered revert runs, whatever happened (SLA failure, exception,
   Ctrl-C, SIGTERM, a pytest timeout), in reverse order; a revert that fails
   does not stop the others.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from kubernetes.client.exceptions import ApiException

from resilience_tests.cluster.kube import Kube, Workload
from resilience_tests.cluster.timeline import Record, Timeline
from resilience_tests.errors import ResilienceError
from resilience_tests.experiment.model import Experiment
from resilience_tests.faults.base import Fault, FaultContext, FaultFactory, FaultParams


class PreflightError(ResilienceError):
    """The experiment cannot start; nothing was changed in the cluster."""


@dataclass(frozen=True)
class FaultWindow:
    """When a fault was active."""

    index: int
    type: str
    start: float
    end: float | None
    error: str = ""


@dataclass
class RunResult:
    """What a run observed; the input of SLA checks and reports."""

    experiment: Experiment
    run_id: str
    plan: list[str]
    started: float = 0.0
    ended: float = 0.0
    windows: list[FaultWindow] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    revert_errors: list[str] = field(default_factory=list)

    @property
    def dry_run(self) -> bool:
        """True when nothing was run (plan only)."""
        return self.started == 0.0


def new_run_id(name: str) -> str:
    """A run id: the experiment name and a short random suffix, valid as a label value."""
    return f"{name[:50]}-{uuid.uuid4().hex[:8]}"


class Runner:
    """Runs experiments against one cluster.

    Args:
        kube: the cluster.
        registry: fault type -> fault class.
        seed: seed of every random choice.
        say: where progress lines go.
    """

    def __init__(self, kube: Kube, registry: dict[str, FaultFactory], *, seed: int = 0,
                 namespace: str | None = None, say: Callable[[str], None] = lambda line: None) -> None:
        self.kube = kube
        self.registry = registry
        self.seed = seed
        self.namespace = namespace
        self.say = say

    def _namespace(self, exp: Experiment) -> str:
        namespace = exp.target.namespace or self.namespace
        if not namespace:
            raise PreflightError(f"experiment {exp.name} names no namespace",
                                 hint="set target.namespace or pass --namespace")
        return namespace

    def _context(self, exp: Experiment, run_id: str, timeline: Timeline | None) -> FaultContext:
        target = exp.target
        namespace = self._namespace(exp)
        workload = Workload(target.workload_kind, namespace, target.workload_name) \
            if target.workload_kind and target.workload_name else None
        try:
            self.kube.core.read_namespace(namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise PreflightError(f"namespace {namespace!r} does not exist",
                                     hint="create it or fix target.namespace") from None
            raise
        selector = target.selector or ""
        if workload is not None:
            try:
                selector = selector or self.kube.workload_selector(workload)
            except ApiException as exc:
                if exc.status == 404:
                    raise PreflightError(f"{workload} does not exist", hint="fix target.workload") from None
                raise

        def record(kind: str, data: dict[str, object]) -> None:
            if timeline is not None:
                timeline.mark("action", kind, "done", **{k: str(v) for k, v in data.items()})

        guard = exp.guardrails
        return FaultContext(kube=self.kube, namespace=namespace, run_id=run_id, max_nodes=guard.max_nodes,
                            max_pods=guard.max_pods, target_selector=selector, workload=workload,
                            allow_kube_system=guard.allow_kube_system,
                            allow_control_plane=guard.allow_control_plane, seed=self.seed, record=record)

    def _build(self, exp: Experiment, ctx: FaultContext) -> list[tuple[FaultParams, Fault, list[str]]]:
        built = []
        for index, params in enumerate(exp.faults):
            try:
                fault = self.registry[params.type](params, ctx)
                steps = fault.describe()
            except ResilienceError as exc:
                raise PreflightError(f"faults[{index}] ({params.type}): {exc}") from None
            built.append((params, fault, steps))
        return built

    def plan(self, exp: Experiment) -> list[str]:
        """What the experiment would do, in order, touching nothing."""
        ctx = self._context(exp, "dry-run", None)
        return _plan_lines(self._build(exp, ctx))

    def run(self, exp: Experiment, *, dry_run: bool = False) -> RunResult:
        """Run ``exp`` (or only plan it) and return what was observed."""
        run_id = new_run_id(exp.name)
        timeline = Timeline(self.kube, self._namespace(exp))
        ctx = self._context(exp, run_id, timeline)
        built = self._build(exp, ctx)
        result = RunResult(experiment=exp, run_id=run_id, plan=_plan_lines(built))
        if dry_run:
            return result
        timeline.start()
        result.started = time.time()
        self.say(f"run {run_id}: {len(built)} fault(s)")
        try:
            with contextlib.ExitStack() as reverts:
                self._play(built, timeline, reverts, result)
                self._settle(exp.settle)
                reverts.callback(timeline.mark, "run", run_id, "reverting")
        finally:
            result.ended = time.time()
            result.records = timeline.stop()
        return result

    def _play(self, built: list[tuple[FaultParams, Fault, list[str]]], timeline: Timeline,
              reverts: contextlib.ExitStack, result: RunResult) -> None:
        events: list[tuple[float, int, str]] = []
        for index, (params, _, _) in enumerate(built):
            events.append((params.at, index, "inject"))
            if params.duration is not None:
                events.append((params.at + params.duration, index, "revert"))
        events.sort(key=lambda e: (e[0], e[2] == "inject", e[1]))
        t0 = time.monotonic()
        starts: dict[int, float] = {}
        for at, index, action in events:
            self._settle(t0 + at - time.monotonic())
            params, fault, _ = built[index]
            label = f"{index}:{params.type}"
            if action == "inject":
                reverts.callback(self._revert, fault, label, timeline, result, starts, index)
                starts[index] = timeline.mark("fault", label, "start").t
                self.say(f"inject {label}")
                try:
                    fault.inject()
                except BaseException as exc:
                    timeline.mark("fault", label, "error", error=str(exc)[:300])
                    result.errors.append(f"{label}: {exc}")
                    raise
            else:
                self._revert(fault, label, timeline, result, starts, index)

    def _revert(self, fault: Fault, label: str, timeline: Timeline, result: RunResult,
                starts: dict[int, float], index: int) -> None:
        if index not in starts:
            return
        start = starts.pop(index)
        self.say(f"revert {label}")
        error = ""
        try:
            fault.revert()
        except Exception as exc:
            error = f"{label}: revert failed: {exc}"
            result.revert_errors.append(error)
        end = timeline.mark("fault", label, "end", error=error or None).t
        result.windows.append(FaultWindow(index, label.split(":", 1)[1], start, end, error))

    @staticmethod
    def _settle(seconds: float) -> None:
        if seconds > 0:
            threading.Event().wait(seconds)


def _plan_lines(built: list[tuple[FaultParams, Fault, list[str]]]) -> list[str]:
    lines = []
    for index, (params, _, steps) in enumerate(built):
        hold = f", held {params.duration:.0f} s" if params.duration is not None else ""
        lines.append(f"[{index}] at {params.at:.0f} s: {params.type}{hold}")
        lines += [f"    - {step}" for step in steps]
    return lines
