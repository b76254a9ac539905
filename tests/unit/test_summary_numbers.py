"""summary.json version 2: verdicts and fault windows as numbers beside their texts; version 1 still read (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resilience_tests.errors import UsageError
from resilience_tests.experiment.journal import ClusterFacts, FaultWindow, Journal
from resilience_tests.experiment.model import parse_experiment
from resilience_tests.faults.base import load_registry
from resilience_tests.reporting import summary
from resilience_tests.sla.checks import evaluate, parse_check
from resilience_tests.sla.evidence import Evidence, Measure
from tests.unit.test_checks import T0, load

EXPERIMENT = parse_experiment({"name": "kill", "target": {"namespace": "demo", "workload": "deployment/web"},
                               "faults": [{"type": "pod-kill", "at": "10s"}]}, load_registry())
RUN = "20261204-191403-a1b2"


def evidence() -> Evidence:
    """60 s of load from T0 with the fault schedule starting at T0 + 10 (``at: 0``) and 3 failed requests."""
    samples = load(failures={T0 + 12.5: "ConnectionRefusedError", T0 + 13.5: "x", T0 + 14.5: "y"})
    return Evidence(started=T0, ended=T0 + 60, samples=samples, zero=T0 + 10, load_complete=True,
                    faults=[FaultWindow(0, "pod-kill", T0 + 12, T0 + 15)])


def verdicts(*checks: dict[str, object]) -> tuple:  # type: ignore[type-arg]
    return tuple(evaluate([parse_check(c) for c in checks], evidence()))


def journal(**changes: object) -> Journal:
    base: dict[str, object] = dict(
        experiment=EXPERIMENT, run_id=f"{RUN}-1", plan=(), facts=ClusterFacts("kwok-resilience"),
        started=T0, ended=T0 + 60, zero=T0 + 10, windows=(FaultWindow(0, "pod-kill", T0 + 12, T0 + 15),),
        verdicts=verdicts({"type": "error-rate", "max": "5%", "window": "fault:0"},
                          {"type": "latency", "percentile": 99, "max": "300ms"},
                          {"type": "throughput", "min": 100, "window": "fault:0"}, {"type": "data-intact"}))
    base.update(changes)
    return Journal(**base)  # type: ignore[arg-type]


def test_a_margin_is_headroom_positive_on_the_passing_side_and_negative_past_the_threshold() -> None:
    assert Measure(0.01, 0.05, "ratio").margin == pytest.approx(0.04)
    assert Measure(0.08, 0.05, "ratio").margin == pytest.approx(-0.03)
    assert Measure(12.0, 10.0, "req/s", at_most=False).margin == pytest.approx(2.0)
    assert Measure(None, 90.0, "s").margin is None


def test_summary_v2_carries_numbers_with_units_and_windows_in_seconds_from_at_0(tmp_path: Path) -> None:
    data = summary.build([journal()], run_id=RUN)
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(data))
    read = summary.read(path)  # a round trip through the file
    assert read == json.loads(json.dumps(data))
    assert (read["version"], read["journal_version"], read["run_id"]) == (2, 2, RUN)
    (exp,) = read["experiments"]
    assert (exp["run_id"], exp["experiment_id"]) == (RUN, f"{RUN}-1")
    assert (exp["faults"][0]["start_s"], exp["faults"][0]["end_s"]) == (2.0, 5.0)
    rate, latency, throughput, intact = exp["slas"]
    # 3 of the 153 requests sent in the fault's 3 s failed: 1.96% against at most 5%
    assert rate["measured"] == "1.96% (3/153)" and rate["margin"] == "by 3.04 pp"  # the texts stay
    assert rate["measured_value"] == pytest.approx(3 / 153)
    assert (rate["threshold_value"], rate["unit"], rate["passes"]) == (0.05, "ratio", "at most")
    assert rate["margin_value"] == pytest.approx(0.05 - 3 / 153)
    assert (rate["window_start_s"], rate["window_end_s"]) == (2.0, 5.0)
    assert (latency["measured_value"], latency["threshold_value"], latency["unit"]) == (5, 300.0, "ms")
    assert latency["margin_value"] == 295.0 and (latency["window_start_s"], latency["window_end_s"]) == (-10.0, 50.0)
    # a failed verdict shows no margin text but keeps its (negative) numeric margin
    assert throughput["passed"] is False and throughput["margin"] == ""
    assert (throughput["passes"], throughput["unit"], throughput["threshold_value"]) == ("at least", "req/s", 100)
    assert throughput["margin_value"] == pytest.approx(throughput["measured_value"] - 100)
    assert throughput["margin_value"] < 0
    assert intact["measured_value"] is None and intact["unit"] is None  # not one number


def test_a_version_1_summary_is_still_read_and_its_experiment_ids_found(tmp_path: Path) -> None:
    v1 = {"version": 1, "journal_version": 1, "tool_version": "0.1.0", "started": 1.0, "ended": 2.0,
          "interrupted": False, "passed": True, "outcomes": {"passed": 1},
          "experiments": [{"name": "kill", "run_id": "kill-1234abcd", "outcome": "passed",
                           "slas": [{"check": "latency", "measured": "p99 = 5 ms", "threshold": "<= 300 ms"}]}]}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(v1))
    read = summary.read(path)
    assert read["version"] == 1
    assert summary.experiment_id(read["experiments"][0]) == "kill-1234abcd"
    assert summary.experiment_id({"run_id": RUN, "experiment_id": f"{RUN}-2"}) == f"{RUN}-2"


@pytest.mark.parametrize(("version", "journal_version"), [(2, 1), (1, 2), (3, 2), (None, None)])
def test_a_summary_of_an_unknown_version_pair_is_refused_in_one_line(tmp_path: Path, version: object,
                                                                     journal_version: object) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"version": version, "journal_version": journal_version}))
    with pytest.raises(UsageError, match="reads summary versions 1 and 2") as err:
        summary.read(path)
    assert "\n" not in err.value.message
