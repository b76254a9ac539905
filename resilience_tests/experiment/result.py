"""The runner's working copy of one run (:class:`RunResult`), its phases, and run ids."""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from resilience_tests.cluster.timeline import Record
from resilience_tests.experiment.journal import ClusterFacts, FaultWindow, Journal, Phase
from resilience_tests.experiment.model import Experiment
from resilience_tests.experiment.schedule import FaultEvents
from resilience_tests.load.locust import LoadOutcome
from resilience_tests.sla.checks import Verdict
from resilience_tests.sla.evidence import Snapshot


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
    events: list[FaultEvents] = field(default_factory=list)  # each fault's own: what it touched

    @property
    def failed_verdicts(self) -> list[Verdict]:
        """Steady-state and SLA verdicts that did not pass."""
        return [v for v in (*self.steady, *self.verdicts) if not v.passed]

    def freeze(self) -> Journal:
        """The run's journal."""
        touched = {e.ref: e.touched for e in self.events}
        windows = tuple(dataclasses.replace(w, touched=touched.get(w.ref, ())) for w in self.windows)
        return Journal(experiment=self.experiment, run_id=self.run_id, plan=tuple(self.plan), facts=self.facts,
                       started=self.started, ended=self.ended, zero=self.zero,
                       phases=tuple(sorted(self.phases, key=lambda p: p.start)),
                       windows=windows, records=tuple(self.records), load=self.load, steady=tuple(self.steady),
                       verdicts=tuple(self.verdicts), errors=tuple(self.errors),
                       revert_errors=tuple(self.revert_errors), aborted=self.aborted, interrupted=self.interrupted)


def new_run_id(name: str) -> str:
    """An id of its own for a helper outside any run (``chaos-1a2b3c4d``): a name and a short random suffix, valid
    as a label value. Experiments get theirs from their run (:class:`~resilience_tests.runids.ExperimentIds`)."""
    return f"{name[:50]}-{uuid.uuid4().hex[:8]}"


@dataclass
class PhaseNote:
    """How a phase ended (set by the code inside it)."""

    status: Literal["passed", "failed", "broken"] = "passed"
    detail: str = ""


@contextlib.contextmanager
def phase(result: RunResult | None, name: str) -> Iterator[PhaseNote]:
    """Record a phase of the run with its real start and end; an exception marks it broken."""
    note, start = PhaseNote(), time.time()
    try:
        yield note
    except BaseException as exc:
        note.status, note.detail = "broken", note.detail or f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if result is not None:
            result.phases.append(Phase(name, start, time.time(), note.status, note.detail))
