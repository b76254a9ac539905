"""An experiment whose load is its only disturbance (no faults): its schedule, plan, windows, journal, summary
and plot."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

from resilience_tests.experiment.model import parse_experiment
from resilience_tests.experiment.preflight import check_lines, plan_lines
from resilience_tests.experiment.schedule import Schedule
from resilience_tests.faults.base import load_registry
from resilience_tests.reporting import summary
from resilience_tests.reporting.plot import timeline_png
from resilience_tests.sla.checks import NoFailedRequests, evaluate
from resilience_tests.sla.evidence import Evidence
from tests.unit.test_plot import PNG_SIGNATURE, ZERO, make_journal
from tests.unit.test_schedule import FakeClock, Recorder

REGISTRY = load_registry()
RAMP = {"name": "ramp", "target": {"namespace": "demo", "workload": "deployment/web"},
        "load": {"shape": {"type": "progressive", "users": 60, "step_users": 10, "step_every": "5s", "hold": "30s"}},
        "slas": [{"type": "no-failed-requests"}, {"type": "scale-up-time", "to": 3, "max": "60s"}]}


def test_the_schedule_of_no_faults_injects_nothing_waits_for_nothing_and_registers_no_revert() -> None:
    clock = FakeClock()
    stage = Recorder(clock)
    schedule = Schedule([], clock)
    with contextlib.ExitStack() as reverts:
        schedule.play(stage, 100.0, reverts)
        assert schedule.steps == () and stage.log == [] and clock.waits == [] and clock.t == 100.0
        registered = reverts.pop_all()
    with registered:
        pass
    assert stage.log == []


def test_the_plan_of_a_load_only_experiment_says_the_load_is_the_disturbance() -> None:
    exp = parse_experiment({**RAMP, "steady_state": [{"type": "no-failed-requests"}]}, REGISTRY)
    lines = plan_lines([]) + check_lines(exp, None)
    assert lines[0] == "no faults: the load is the only disturbance (windows: whole)"
    assert "steady state: no-failed-requests over 5 s of load before the schedule's zero" in lines
    assert "SLA: no-failed-requests (whole)" in lines


def test_a_load_only_run_is_judged_over_the_whole_run_and_reported_without_fault_windows(tmp_path: Path) -> None:
    exp = parse_experiment(RAMP, REGISTRY)
    journal = dataclasses.replace(make_journal(), experiment=exp, windows=(),
                                  records=tuple(r for r in make_journal().records if r.kind != "fault"))
    assert journal.load is not None
    evidence = Evidence(started=journal.started, ended=journal.ended, zero=ZERO, samples=list(journal.load.samples),
                        load_complete=True)
    whole = evidence.window("whole")
    assert (whole.start, whole.end) == (journal.started, journal.ended)
    verdict, = evaluate([NoFailedRequests()], evidence)
    # the synthetic load has failures: judged over the whole run, not an empty window
    assert not verdict.passed and verdict.window.startswith("whole (-20.0s..+280.0s)"), verdict
    data = journal.to_json(samples=False)
    assert data["experiment"]["faults"] == [] and data["faults"] == []
    entry, = summary.build([journal])["experiments"]
    assert entry["faults"] == [] and entry["name"] == "ramp"
    png = timeline_png(journal, tmp_path / "ramp.png")
    assert png.read_bytes()[:8] == PNG_SIGNATURE
