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
import dataclasses
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from resilience_tests.audit.model import Finding
from resilience_tests.cluster.kube import Kube, NotFound, Workload
from resilience_tests.cluster.leases import RunLease
from resilience_tests.cluster.selection import NodeInfo, parse_label_selector
from resilience_tests.cluster.timeline import Record, Timeline
from resilience_tests.errors import ResilienceError
from resilience_tests.experiment.journal import ClusterFacts, FaultWindow, Journal, Phase
from resilience_tests.experiment.model import Experiment
from resilience_tests.experiment.progress import Progress
from resilience_tests.faults.base import Fault, FaultContext, FaultFactory, FaultParams, new_guard
from resilience_tests.interrupts import reverts_shielded
from resilience_tests.load.locust import LoadOutcome, LoadRun
from resilience_tests.load.target import service_url
from resilience_tests.runids import ExperimentIds
from resilience_tests.sla.checks import AuditClean, Check, Verdict, evaluate
from resilience_tests.sla.evidence import Evidence, Snapshot
from resilience_tests.sla.snapshot import take_snapshot


class PreflightError(ResilienceError):
    """The experiment cannot start; nothing was changed in the cluster."""


@dataclass
class RunResult:
    """What a run observed so far (the runner's working copy); :meth:`freeze` makes it the run's journal."""

    experiment: Experiment
    run_id: str
    plan: list[str]
    facts: ClusterFacts = field(default_factory=ClusterFacts)
    started: float = 0.0
    ended: float = 0.0
    zero: float = 0.0  # the start of the fault schedule: ``at: 0``, the origin of every offset shown
    phases: list[Phase] = field(default_factory=list)
    windows: list[FaultWindow] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    revert_errors: list[str] = field(default_factory=list)
    load: LoadOutcome | None = None
    snapshot: Snapshot | None = None
    steady: list[Verdict] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    aborted: str = ""
    interrupted: bool = False

    @property
    def failed_verdicts(self) -> list[Verdict]:
        """Steady-state and SLA verdicts that did not pass."""
        return [v for v in (*self.steady, *self.verdicts) if not v.passed]

    def freeze(self) -> Journal:
        """The run's journal."""
        touched: dict[str, list[str]] = {}
        for record in self.records:
            fault = record.get("fault")
            if record.kind == "action" and fault:
                what = ", ".join(f"{k} {v}" for k, v in record.details if k in TOUCH_KEYS)
                touched.setdefault(str(fault), []).append(f"{record.name}: {what}" if what else record.name)
        windows = tuple(dataclasses.replace(w, touched=tuple(touched.get(w.label, ()))) for w in self.windows)
        return Journal(experiment=self.experiment, run_id=self.run_id, plan=tuple(self.plan), facts=self.facts,
                       started=self.started, ended=self.ended, zero=self.zero,
                       phases=tuple(sorted(self.phases, key=lambda p: p.start)),
                       windows=windows, records=tuple(self.records), load=self.load, steady=tuple(self.steady),
                       verdicts=tuple(self.verdicts), errors=tuple(self.errors),
                       revert_errors=tuple(self.revert_errors), aborted=self.aborted, interrupted=self.interrupted)


TOUCH_KEYS = ("pod", "node", "nodes", "workload", "action", "zone")


def new_run_id(name: str) -> str:
    """An id of its own for a helper outside any run (``chaos-1a2b3c4d``): a name and a short random suffix, valid
    as a label value. Experiments get theirs from their run (:class:`ExperimentIds`)."""
    return f"{name[:50]}-{uuid.uuid4().hex[:8]}"


class Runner:
    """Runs experiments against one cluster.

    Args:
        kube: the cluster.
        registry: fault type -> fault class.
        seed: seed of every random choice.
        say: where progress lines go.
        results_dir: where each run keeps its files (``<results_dir>/<experiment id>/load/``: samples and
            Locust's logs); without one they go to a private temporary folder removed when the run ends.
        ids: the run's experiment ids (``<run id>-<n>``); without it, the runner is a run of its own.
    """

    def __init__(self, kube: Kube, registry: dict[str, FaultFactory], *, seed: int = 0,
                 namespace: str | None = None, say: Callable[[str], None] = lambda line: None,
                 results_dir: Path | None = None, progress: Callable[[str], None] | None = None,
                 ids: ExperimentIds | None = None) -> None:
        self.ids = ids or ExperimentIds()
        self.results_dir = results_dir
        self.progress = progress
        self._status: Progress | None = None
        self.kube = kube
        self.registry = registry
        self.seed = seed
        self.namespace = namespace
        self.say = say
        self.journal: Journal | None = None  # the last run's, also when it ended with an exception
        self._result: RunResult | None = None
        self._acting = ""  # the fault being injected or reverted: its actions are recorded as its own
        self._acted: dict[str, float] = {}  # fault label -> when its inject acted (FaultContext.acts)

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
        if not self.kube.namespace_exists(namespace):
            raise PreflightError(f"namespace {namespace!r} does not exist", hint="create it or fix target.namespace")
        labels = parse_label_selector(target.selector)
        if workload is not None:
            try:
                labels = labels or self.kube.workload_labels(workload)
            except NotFound:
                raise PreflightError(f"{workload} does not exist", hint="fix target.workload") from None

        def record(kind: str, data: dict[str, object]) -> None:
            if timeline is not None:
                timeline.mark("action", kind, "done", fault=self._acting or None,
                              **{k: str(v) for k, v in data.items()})

        def acts() -> None:
            if self._acting:
                self._acted.setdefault(self._acting, time.time())

        rails = exp.guardrails
        guard = new_guard(max_nodes=rails.max_nodes, max_pods=rails.max_pods,
                          allow_kube_system=rails.allow_kube_system, allow_control_plane=rails.allow_control_plane)
        return FaultContext(kube=self.kube, namespace=namespace, run_id=run_id, guard=guard, target_labels=labels,
                            workload=workload, seed=self.seed, record=record, acts=acts)

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

    def run(self, exp: Experiment, *, dry_run: bool = False) -> Journal:
        """Run ``exp`` (or only plan it) and return its journal.

        With a ``load`` section, Locust starts first (after one request proved the target answers), the
        ``steady_state`` checks are evaluated over ``steady_window`` of load, and only if they pass are the
        faults injected. The load then runs to the end of its shape; the SLA checks judge the whole run.

        Whatever happens, :attr:`journal` holds what the run saw once it returns or raises: an interrupted
        run's journal says so and lists what was reverted; one that failed its preflight names the error.
        """
        self.journal = self._result = None
        started = time.time()
        run_id = self.ids.next()  # one id for the experiment, whether it runs or stops in its preflight
        try:
            self._run(exp, dry_run, run_id)
        except BaseException as exc:
            result = self._result
            if result is None:  # stopped before its plan was made: nothing was changed
                result = self._result = RunResult(experiment=exp, run_id=run_id, plan=[])
                result.phases.append(Phase("preflight", started, time.time(), "broken", str(exc)))
            if isinstance(exc, KeyboardInterrupt):
                result.interrupted = True
                result.aborted = result.aborted or f"interrupted: {exc or 'KeyboardInterrupt'}"
            elif not result.errors:
                result.errors.append(str(exc) if isinstance(exc, ResilienceError) else
                                     f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if self._result is not None:
                self.journal = self._result.freeze()
        assert self.journal is not None
        return self.journal

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[_PhaseNote]:
        """Record a phase of the run with its real start and end; an exception marks it broken."""
        note, start = _PhaseNote(), time.time()
        try:
            yield note
        except BaseException as exc:
            note.status, note.detail = "broken", note.detail or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if self._result is not None:
                self._result.phases.append(Phase(name, start, time.time(), note.status, note.detail))

    def _facts(self) -> ClusterFacts:
        """The cluster as it is now; what cannot be read stays empty (a run needs no right to list nodes)."""
        version = ""
        nodes: list[NodeInfo] = []
        with contextlib.suppress(ResilienceError):
            version = self.kube.server_version()
        with contextlib.suppress(ResilienceError):
            nodes = self.kube.nodes()
        return ClusterFacts(context=self.kube.ref.context or "", server=str(self.kube.server),
                            version=version, nodes=len(nodes), zones=len({n.zone for n in nodes if n.zone}),
                            seed=self.seed, node_zones=tuple(sorted((n.name, n.zone) for n in nodes if n.zone)))

    def _run(self, exp: Experiment, dry_run: bool, run_id: str) -> None:
        preflight_started = time.time()
        timeline = Timeline(self.kube, self._namespace(exp))
        ctx = self._context(exp, run_id, timeline)
        built = self._build(exp, ctx)
        load = self._load(exp, ctx, run_id)
        result = self._result = RunResult(experiment=exp, run_id=run_id,
                                          plan=_plan_lines(built) + _check_lines(exp, load))
        if dry_run:
            self._discard(load)
            return
        lease: RunLease | None = None
        ready = False
        try:
            result.facts = self._facts()
            ctx.budget.reset()  # the plan's counts were a preview
            if load is not None:
                load.preflight()  # an unreachable target stops the experiment before anything is injected
            lease = RunLease(self.kube, run_id).start()  # while it is held, cleanup leaves this run alone
            timeline.start()
            ready = True
        finally:
            result.phases.append(Phase("preflight", preflight_started, time.time(),
                                       "passed" if ready else "broken"))
            if not ready:  # nothing was injected: give back the lease, stop the watches, drop the files
                timeline.stop()
                if lease is not None:
                    lease.stop()
                self._discard(load)
        result.started = time.time()
        self.say(f"experiment {run_id} started: {exp.name}, {len(built)} fault(s), context "
                 f"{self.kube.ref.context or '(current)'} (if this process dies, `resilience cleanup --run "
                 f"{run_id}` undoes what it changed)")
        for line in result.plan:
            self.say(f"plan: {line}")
        status = self._status = Progress(self.progress or (lambda line: None))
        if self.progress is not None:
            status.start()
        outcome: LoadOutcome | None = None
        try:
            if load is not None:
                status.set_phase("load starting")
                with self._phase("load start"):
                    load.start()
                    status.follow_load(load.samples_path)
                    load.wait_running()
                self.say(f"load running against {load.shown_target}")
            result.zero = time.time()
            if not exp.steady_state:
                status.set_zero(result.zero)
            if exp.steady_state:
                status.set_phase("steady state")
                with self._phase("steady state") as note:
                    if not self._steady(exp, ctx, load, result):
                        note.status, note.detail = "failed", result.aborted
                        return
            reverts = contextlib.ExitStack()
            try:
                status.set_phase("faults")
                self._play(built, timeline, reverts, result)
                status.set_phase("settling")
                with self._phase("settle"):
                    self._settle(exp.settle)
            finally:
                # Every registered revert runs, newest first; interrupts wait until they are done.
                reverts.callback(timeline.mark, "run", run_id, "reverting")
                reverts.callback(status.set_phase, "reverting")
                with reverts_shielded(self.say):
                    reverts.close()
            if load is not None and load.running():
                left = load.started + load.spec.shape.duration - time.time()
                status.set_phase("load running to the end of its shape")
                self.say(f"load runs {max(left, 0):.0f} s more (to the end of its shape)")
                with self._phase("load to the end of its shape"):
                    load.wait_done(max(left, 0) + 30)
        finally:
            status.stop()
            if load is not None:
                load.stop()
                outcome = result.load = load.outcome()
                self._discard(load)
            result.ended = time.time()
            result.records = timeline.stop()
            if lease is not None:
                lease.stop()
        with self._phase("SLA checks") as note:
            result.snapshot = take_snapshot(self.kube, ctx.namespace, ctx.target_selector, ctx.workload)
            if exp.slas:
                result.verdicts = evaluate(exp.slas, self._evidence(result, ctx, outcome, checks=exp.slas))
            failed = len(result.failed_verdicts)
            if failed:
                note.status, note.detail = "failed", f"{failed} of {len(result.verdicts)} failed"
        self.say(f"experiment {run_id} ended after {result.ended - result.started:.0f} s: "
                 + (f"{len(result.revert_errors)} revert problem(s) (run `resilience cleanup --run {run_id}`)"
                    if result.revert_errors else "every change reverted")
                 + (f"; {failed} of {len(result.verdicts)} SLA checks failed" if failed else
                    f"; {len(result.verdicts)} SLA check(s) passed" if result.verdicts else ""))

    def _discard(self, load: LoadRun | None) -> None:
        """Remove a run's private load folder (kept when the run has a results directory)."""
        if load is not None and self.results_dir is None:
            shutil.rmtree(load.workdir, ignore_errors=True)

    def _load(self, exp: Experiment, ctx: FaultContext, run_id: str) -> LoadRun | None:
        if exp.load is None:
            return None
        url = exp.load.url or exp.target.url or service_url(
            self.kube.services(ctx.namespace), dict(ctx.target_labels),
            ctx.namespace, self.kube.server, self.kube.ingresses(ctx.namespace))
        base = Path(exp.source).parent if exp.source and exp.source != "<memory>" else None
        if self.results_dir is not None:
            workdir = self.results_dir / run_id / "load"
        else:
            workdir = Path(tempfile.mkdtemp(prefix=f"resilience-tests-{run_id}-"))
        return LoadRun(exp.load, url, workdir, base, run_id=run_id, cluster=self.kube.server)

    def _evidence(self, result: RunResult, ctx: FaultContext, outcome: LoadOutcome | None,
                  until: float | None = None, checks: tuple[Check, ...] = ()) -> Evidence:
        started = outcome.started if outcome and outcome.started else result.started
        audit, audit_at = self._audit(ctx) if any(isinstance(c, AuditClean) for c in checks) else (None, 0.0)
        return Evidence(
            started=started, ended=until or (outcome.ended if outcome else result.ended) or time.time(),
            zero=result.zero,
            samples=list(outcome.samples) if outcome else [], records=list(result.records),
            faults=list(result.windows),
            snapshot=result.snapshot, selector=dict(ctx.target_labels),
            load_complete=None if outcome is None else outcome.complete,
            load_problem=outcome.problem if outcome else "", audit=audit, audit_at=audit_at)

    def _audit(self, ctx: FaultContext) -> tuple[tuple[Finding, ...] | None, float]:
        """The resilience audit of the target as it is now: findings on its workload (every workload of the
        namespace without one) and on its namespace; None when its objects cannot be read."""
        from resilience_tests.audit.rules import audit
        from resilience_tests.audit.sources import read_namespace

        at = time.time()
        try:
            inventory, problems = read_namespace(self.kube, ctx.namespace)
        except ResilienceError:
            return None, at
        if problems:
            return None, at
        findings = audit(inventory)
        if ctx.workload is not None:
            kind = {"deployment": "Deployment", "statefulset": "StatefulSet", "daemonset": "DaemonSet"}
            mine = (f"{kind[ctx.workload.kind]} {ctx.namespace}/{ctx.workload.name}", f"Namespace {ctx.namespace}")
            findings = [f for f in findings if f.obj in mine]
        return tuple(findings), at

    def _steady(self, exp: Experiment, ctx: FaultContext, load: LoadRun | None, result: RunResult) -> bool:
        """Evaluate the steady-state checks before injecting; False (and the reason in the result) if they fail.

        The steady window runs from the start of the load to its end ``E``, which becomes the zero of the fault
        schedule: the checks are judged once every request sent before ``E`` has its answer (the sample of the
        second holding ``E`` is written), so the first fault may come up to the load's timeout late.
        """
        self._settle(exp.steady_window)
        end = result.zero = time.time()
        if self._status is not None:
            self._status.set_zero(end)
        outcome = None
        if load is not None:
            load.wait_final(end)
            outcome = load.outcome_so_far(end)
        result.snapshot = take_snapshot(self.kube, ctx.namespace, ctx.target_selector, ctx.workload)
        # result.records is still empty: the timeline is handed over when the run ends.
        result.steady = evaluate(exp.steady_state, self._evidence(result, ctx, outcome, until=end,
                                                                  checks=exp.steady_state))
        failed = [v for v in result.steady if not v.passed]
        if failed:
            result.aborted = "steady state not met before any fault: " + "; ".join(
                f"{v.check} measured {v.measured}, required {v.threshold}" for v in failed)
            self.say(result.aborted)
            return False
        return True

    def _play(self, built: list[tuple[FaultParams, Fault, list[str]]], timeline: Timeline,
              reverts: contextlib.ExitStack, result: RunResult) -> None:
        events: list[tuple[float, int, str]] = []
        for index, (params, _, _) in enumerate(built):
            events.append((params.at, index, "inject"))
            if params.duration is not None:
                events.append((params.at + params.duration, index, "revert"))
        events.sort(key=lambda e: (e[0], e[2] == "inject", e[1]))
        t0 = time.monotonic() - (time.time() - result.zero)  # ``at`` counts from the run's zero
        starts: dict[int, float] = {}
        for at, index, action in events:
            self._settle(t0 + at - time.monotonic())
            params, fault, _ = built[index]
            label = f"{index}:{params.type}"
            if action == "inject":
                reverts.callback(self._revert, fault, label, timeline, result, starts, index)
                starts[index] = timeline.mark("fault", label, "start").t
                self.say(f"inject {label}")
                if self._status is not None:
                    self._status.fault_started(label)
                try:
                    with self._phase(f"inject {label}"), self._acting_as(label):
                        fault.inject()
                except BaseException as exc:
                    timeline.mark("fault", label, "error", error=str(exc)[:300])
                    result.errors.append(f"{label}: {exc}")
                    raise
                finally:  # the window starts where the fault acted, not where it began to prepare
                    if index in starts and label in self._acted:
                        starts[index] = self._acted.pop(label)
            else:
                self._revert(fault, label, timeline, result, starts, index)

    def _revert(self, fault: Fault, label: str, timeline: Timeline, result: RunResult,
                starts: dict[int, float], index: int) -> None:
        if index not in starts:
            return
        start = starts.pop(index)
        self.say(f"revert {label}")
        if self._status is not None:
            self._status.fault_ended(label)
        error = ""
        with self._phase(f"revert {label}") as note, self._acting_as(label):
            try:
                fault.revert()
            except Exception as exc:
                error = f"{label}: revert failed: {exc}"
                result.revert_errors.append(error)
                note.status, note.detail = "broken", error
        end = timeline.mark("fault", label, "end", error=error or None).t
        result.windows.append(FaultWindow(index, label.split(":", 1)[1], start, end, error))

    @contextlib.contextmanager
    def _acting_as(self, label: str) -> Iterator[None]:
        self._acting = label
        try:
            yield
        finally:
            self._acting = ""

    @staticmethod
    def _settle(seconds: float) -> None:
        if seconds > 0:
            threading.Event().wait(seconds)


@dataclass
class _PhaseNote:
    status: Literal["passed", "failed", "broken"] = "passed"
    detail: str = ""


def _plan_lines(built: list[tuple[FaultParams, Fault, list[str]]]) -> list[str]:
    lines = []
    for index, (params, _, steps) in enumerate(built):
        hold = f", held {params.duration:.0f} s" if params.duration is not None else ""
        lines.append(f"[{index}] at {params.at:.0f} s: {params.type}{hold}")
        lines += [f"    - {step}" for step in steps]
    return lines


def _check_lines(exp: Experiment, load: LoadRun | None) -> list[str]:
    lines = []
    if load is not None:
        spec = load.spec
        workers = f", {spec.workers} workers" if spec.workers else ""
        lines.append(f"load: {spec.shape.type} shape ({spec.shape.peak_users} users at most, "
                     f"{spec.shape.duration:.0f} s) from {load.locustfile.name} against {load.shown_target}{workers}")
    lines += [f"steady state: {c.label} over {exp.steady_window:g} s before any fault" for c in exp.steady_state]
    lines += [f"SLA: {c.label} ({c.window})" for c in exp.slas]
    return lines
