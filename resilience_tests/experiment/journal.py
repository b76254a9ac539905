"""The run journal: everything one experiment run observed, frozen, and the one output of a run.

The runner builds it; everything after the run reads it (the terminal's verdict section, JUnit properties,
the JSON summary, Allure, the timeline plot). Nothing downstream parses a verdict's text back: verdicts,
fault windows, reverts and phases are typed values here.

Times are epoch seconds on the wall clock of the machine that ran the experiment; ``zero`` is the start of
the fault schedule (``at: 0``), the origin of every offset shown.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from resilience_tests.cluster.timeline import Record
from resilience_tests.experiment.model import Experiment
from resilience_tests.load.locust import LoadOutcome
from resilience_tests.load.samples import percentile, totals
from resilience_tests.runids import run_of
from resilience_tests.sla.checks import Verdict
from resilience_tests.sla.evidence import FaultWindow

JOURNAL_VERSION = 2
"""Raised whenever a field changes meaning or is removed; readers refuse versions they do not know.

2: ``run_id`` is the run's id (the results folder's name), ``experiment_id`` this experiment's (it was ``run_id``);
verdicts carry their numbers and fault windows their offsets in seconds.
"""

__all__ = ["JOURNAL_VERSION", "ClusterFacts", "FaultWindow", "Journal", "Phase", "load_summary", "verdict_json",
           "window_json"]

Outcome = Literal["passed", "planned", "sla-violated", "steady-state-not-met", "error", "revert-failed",
                  "interrupted"]


@dataclass(frozen=True)
class ClusterFacts:
    """The cluster an experiment ran against, as it was when the run started."""

    context: str = ""
    server: str = ""
    version: str = ""
    nodes: int = 0
    zones: int = 0
    seed: int = 0
    node_zones: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Phase:
    """One part of a run with its real start and end (epoch seconds).

    ``name`` is one of ``preflight``, ``load start``, ``steady state``, ``inject <i>:<type>``,
    ``revert <i>:<type>``, ``settle``, ``load to the end of its shape``, ``SLA checks``.
    """

    name: str
    start: float
    end: float
    status: Literal["passed", "failed", "broken"] = "passed"
    detail: str = ""


@dataclass(frozen=True)
class Journal:
    """One experiment run, frozen.

    Attributes:
        experiment: the experiment as parsed.
        run_id: this experiment's id, ``<run id>-<n>`` (labels of what it changed, its lease, ``resilience
            cleanup --run``); :attr:`run` is the id of the run it belongs to.
        facts: the cluster it ran against.
        plan: what it was going to do, one line each.
        started, ended: the run's wall-clock span (0 when only planned).
        zero: the start of the fault schedule.
        phases: the parts of the run with their real times, in order.
        windows: each fault's active window (end None when its revert never ran).
        records: the cluster's timeline and the run's own marks.
        load: the load's samples and completeness (None without a ``load:`` section).
        steady, verdicts: steady-state and SLA verdicts.
        errors: faults that failed to inject, or a run that stopped with an error.
        revert_errors: reverts that failed (the cluster may still be changed).
        aborted: why the faults never ran (steady state not met), or ``interrupted: ...``.
    """

    experiment: Experiment
    run_id: str
    plan: tuple[str, ...]
    facts: ClusterFacts = ClusterFacts()
    started: float = 0.0
    ended: float = 0.0
    zero: float = 0.0
    phases: tuple[Phase, ...] = ()
    windows: tuple[FaultWindow, ...] = ()
    records: tuple[Record, ...] = ()
    load: LoadOutcome | None = None
    steady: tuple[Verdict, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    errors: tuple[str, ...] = ()
    revert_errors: tuple[str, ...] = ()
    aborted: str = ""
    interrupted: bool = False
    version: int = field(default=JOURNAL_VERSION)

    @property
    def failed_verdicts(self) -> list[Verdict]:
        """Steady-state and SLA verdicts that did not pass."""
        return [v for v in (*self.steady, *self.verdicts) if not v.passed]

    @property
    def dry_run(self) -> bool:
        """True when nothing was run (plan only)."""
        return self.started == 0.0

    @property
    def outcome(self) -> Outcome:
        """What the run says, most serious first: a revert that failed is never hidden behind a verdict."""
        if self.dry_run and not (self.interrupted or self.errors):
            return "planned"
        if self.revert_errors:
            return "revert-failed"
        if self.interrupted:
            return "interrupted"
        if self.errors:
            return "error"
        if self.aborted:
            return "steady-state-not-met"
        if self.failed_verdicts:
            return "sla-violated"
        return "passed"

    @property
    def run(self) -> str:
        """The id of the run this experiment belongs to (its results folder's name)."""
        return run_of(self.run_id)

    def offset(self, t: float) -> float:
        """Seconds from the start of the fault schedule."""
        return t - (self.zero or self.started)

    def to_json(self, *, samples: bool = True) -> dict[str, Any]:
        """The journal as JSON-ready data (documented in docs/reports.md); texts are not redacted here."""
        exp = self.experiment
        data: dict[str, Any] = {
            "version": self.version,
            "run_id": self.run,
            "experiment_id": self.run_id,
            "outcome": self.outcome,
            "experiment": {"name": exp.name, "description": exp.description, "source": exp.source,
                           "severity": exp.severity, "tags": list(exp.tags),
                           "faults": [f.type for f in exp.faults]},
            "cluster": dataclasses.asdict(self.facts),
            "plan": list(self.plan),
            "started": self.started, "ended": self.ended, "zero": self.zero,
            "duration_s": round(self.ended - self.started, 3) if self.ended else 0.0,
            "phases": [dataclasses.asdict(p) for p in self.phases],
            "faults": [window_json(w, self.zero or self.started) for w in self.windows],
            "steady_state": [verdict_json(v) for v in self.steady],
            "slas": [verdict_json(v) for v in self.verdicts],
            "errors": list(self.errors),
            "revert_errors": list(self.revert_errors),
            "aborted": self.aborted,
            "interrupted": self.interrupted,
            "load": load_summary(self.load),
            "records": [r.to_json() for r in self.records],
        }
        if samples and self.load is not None:
            data["samples"] = [s.to_json() for s in self.load.samples]
        return data


def window_json(window: FaultWindow, zero: float) -> dict[str, Any]:
    """A fault window as JSON: when it was active (epoch seconds, and ``start_s``/``end_s`` in seconds from
    ``zero``, the start of the fault schedule), what it touched, whether it was reverted."""
    return {**dataclasses.asdict(window), "label": window.label, "touched": list(window.touched),
            "reverted": window.reverted, "start_s": round(window.start - zero, 3) if zero else None,
            "end_s": round(window.end - zero, 3) if zero and window.end is not None else None}


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    """A verdict as JSON: what was measured, against what, over which window, and why; the display texts, and
    beside them the numbers with their unit (null when the verdict is not one number)."""
    numbers = verdict.numbers
    span = verdict.span
    return {"check": verdict.check, "key": verdict.key, "passed": verdict.passed, "measured": verdict.measured,
            "threshold": verdict.threshold, "window": verdict.window, "margin": verdict.margin,
            "measured_value": numbers.value if numbers else None,
            "threshold_value": numbers.threshold if numbers else None,
            "margin_value": _rounded(numbers.margin) if numbers else None,
            "unit": numbers.unit if numbers else None,
            "passes": ("at most" if numbers.at_most else "at least") if numbers else None,
            "window_start_s": span[0] if span else None, "window_end_s": span[1] if span else None,
            "evidence": list(verdict.evidence)}


def _rounded(value: float | None) -> float | None:
    """A difference of two floats without its binary noise (0.05 - 0.0123 is not 0.0377 in floats)."""
    return None if value is None else round(value, 9)


def load_summary(load: LoadOutcome | None) -> dict[str, Any] | None:
    """Totals of the load over its whole span: requests, failures, throughput and latency percentiles."""
    if load is None:
        return None
    t = totals(load.samples, load.started or None, load.ended or None)
    return {"complete": load.complete, "problem": load.problem, "started": load.started, "ended": load.ended,
            "requests": t.requests, "failures": t.failures, "seconds": t.seconds, "down_seconds": t.down,
            "ok_per_s": round(t.throughput, 2), "availability": round(t.availability, 6),
            **{f"p{p}_ms": percentile(t.hist, p) for p in (50, 95, 99)}}
