"""Running an experiment: preflight, timeline, faults on schedule, guaranteed revert.

Order of work:
1. preflight (:mod:`resilience_tests.experiment.preflight`): the namespace and workload exist, every fault is
   built with its own events and describes what it would touch (selection and guardrails are checked here),
   so bad input stops the run before anything in the cluster changes;
2. ``dry_run`` stops here and returns the plan;
3. the timeline starts; the schedule (:mod:`resilience_tests.experiment.schedule`) registers each fault's revert
   *before* injecting it at its ``at`` time, and reverts it at ``at + duration`` if it has one;
4. after the last fault the run observes for ``settle`` seconds;
5. every registered revert runs, whatever happened (SLA failure, exception,
   Ctrl-C, SIGTERM, a pytest timeout), in reverse order; a revert that fails
   does not stop the others.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from resilience_tests.audit.model import Finding
from resilience_tests.cluster.kube import Kube
from resilience_tests.cluster.leases import RunLease
from resilience_tests.cluster.timeline import Timeline
from resilience_tests.errors import ResilienceError
from resilience_tests.experiment.journal import FaultWindow, Journal, Phase
from resilience_tests.experiment.model import Experiment
from resilience_tests.experiment.preflight import (
    Built,
    PreflightError,
    build_faults,
    check_autoscalers,
    check_lines,
    cluster_facts,
    fault_context,
    load_run,
    plan_lines,
    target_namespace,
)
from resilience_tests.experiment.progress import Progress
from resilience_tests.experiment.result import RunResult, new_run_id, phase
from resilience_tests.experiment.schedule import Clock, FaultRef, Schedule, SystemClock
from resilience_tests.faults.base import FaultContext, FaultFactory
from resilience_tests.interrupts import reverts_shielded
from resilience_tests.load.locust import LoadOutcome, LoadRun
from resilience_tests.platform import Platform
from resilience_tests.runids import ExperimentIds
from resilience_tests.sla.checks import AuditClean, Check, evaluate
from resilience_tests.sla.evidence import Evidence
from resilience_tests.sla.snapshot import take_snapshot

__all__ = ["FaultStage", "PreflightError", "RunResult", "Runner", "new_run_id"]


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
        platform: the cluster's platform, detected once for the run and handed to every fault (None: a fault
            that needs it detects it).
        clock: what the fault schedule and the settle waits run on (the real clock by default).
    """

    def __init__(self, kube: Kube, registry: dict[str, FaultFactory], *, seed: int = 0,
                 namespace: str | None = None, say: Callable[[str], None] = lambda line: None,
                 results_dir: Path | None = None, progress: Callable[[str], None] | None = None,
                 platform: Platform | None = None, clock: Clock | None = None,
                 ids: ExperimentIds | None = None) -> None:
        self.platform = platform
        self.ids = ids or ExperimentIds()
        self.results_dir = results_dir
        self.progress = progress
        self._status: Progress | None = None
        self.kube = kube
        self.registry = registry
        self.seed = seed
        self.namespace = namespace
        self.say = say
        self.clock: Clock = clock or SystemClock()
        self.journal: Journal | None = None  # the last run's, also when it ended with an exception
        self._result: RunResult | None = None

    def plan(self, exp: Experiment) -> list[str]:
        """What the experiment would do, in order, touching nothing."""
        ctx = fault_context(self.kube, exp, run_id="dry-run", seed=self.seed, namespace=self.namespace,
                            platform=self.platform)
        return plan_lines(build_faults(exp, ctx, self.registry))

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

    def _run(self, exp: Experiment, dry_run: bool, run_id: str) -> None:
        preflight_started = time.time()
        timeline = Timeline(self.kube, target_namespace(exp, self.namespace))
        ctx = fault_context(self.kube, exp, run_id=run_id, seed=self.seed, namespace=self.namespace,
                            platform=self.platform)
        built = build_faults(exp, ctx, self.registry, mark=timeline.mark, say=self.say)
        check_autoscalers(self.kube, exp, ctx, self.say)  # an autoscaling check without its HPA stops here
        load = load_run(self.kube, exp, ctx, run_id, self.results_dir)
        result = self._result = RunResult(experiment=exp, run_id=run_id, events=[b.events for b in built],
                                          plan=plan_lines(built) + check_lines(exp, load))
        if dry_run:
            self._discard(load)
            return
        lease: RunLease | None = None
        ready = False
        try:
            result.facts = cluster_facts(self.kube, self.seed)
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
        faults = f"{len(built)} fault(s)" if built else "load only (no faults)"
        self.say(f"experiment {run_id} started: {exp.name}, {faults}, context "
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
                with phase(self._result, "load start"):
                    load.start()
                    status.follow_load(load.samples_path)
                    load.wait_running()
                self.say(f"load running against {load.shown_target}")
            result.zero = time.time()
            if not exp.steady_state:
                status.set_zero(result.zero)
            if exp.steady_state:
                status.set_phase("steady state")
                with phase(self._result, "steady state") as note:
                    if not self._steady(exp, ctx, load, result):
                        note.status, note.detail = "failed", result.aborted
                        return
            reverts = contextlib.ExitStack()
            try:
                status.set_phase("faults")
                self._play(built, timeline, reverts, result)
                status.set_phase("settling")
                with phase(self._result, "settle"):
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
                with phase(self._result, "load to the end of its shape"):
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
        with phase(self._result, "SLA checks") as note:
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
            load_problem=outcome.problem if outcome else "", audit=audit, audit_at=audit_at,
            workload=f"{ctx.workload.kind}/{ctx.workload.name}" if ctx.workload else "")

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

    def _settle(self, seconds: float) -> None:
        self.clock.wait_until(self.clock.now() + seconds)

    def _play(self, built: list[Built], timeline: Timeline, reverts: contextlib.ExitStack, result: RunResult) -> None:
        """Play the fault schedule; ``at`` counts from the run's zero (``result.zero``, wall clock)."""
        zero = self.clock.now() - (time.time() - result.zero)
        stage = FaultStage(built, timeline, result, self.say, self._status)
        Schedule([b.slot for b in built], self.clock).play(stage, zero, reverts)


class FaultStage:
    """The runner's side of the schedule: each fault's marks, progress lines, phases, errors and window."""

    def __init__(self, built: list[Built], timeline: Timeline, result: RunResult, say: Callable[[str], None],
                 status: Progress | None) -> None:
        self.built = {b.ref: b for b in built}
        self.timeline, self.result, self.say, self.status = timeline, result, say, status
        self.starts: dict[FaultRef, float] = {}

    def inject(self, ref: FaultRef) -> None:
        item = self.built[ref]
        self.starts[ref] = self.timeline.mark("fault", str(ref), "start").t
        self.say(f"inject {ref}")
        if self.status is not None:
            self.status.fault_started(str(ref))
        try:
            with phase(self.result, f"inject {ref}"):
                item.fault.inject()
        except BaseException as exc:
            self.timeline.mark("fault", str(ref), "error", error=str(exc)[:300])
            self.result.errors.append(f"{ref}: {exc}")
            raise
        finally:  # the window starts where the fault acted, not where it began to prepare
            acted = item.events.acted
            if ref in self.starts and acted is not None:
                self.starts[ref] = acted

    def revert(self, ref: FaultRef) -> None:
        if ref not in self.starts:
            return
        start = self.starts.pop(ref)
        self.say(f"revert {ref}")
        if self.status is not None:
            self.status.fault_ended(str(ref))
        error = ""
        with phase(self.result, f"revert {ref}") as note:
            try:
                self.built[ref].fault.revert()
            except Exception as exc:
                error = f"{ref}: revert failed: {exc}"
                self.result.revert_errors.append(error)
                note.status, note.detail = "broken", error
        end = self.timeline.mark("fault", str(ref), "end", error=error or None).t
        self.result.windows.append(FaultWindow(ref.index, ref.type, start, end, error))
