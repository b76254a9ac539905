"""The run journal, what a test raises for it, the JSON summary and redaction: pure logic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resilience_tests.cluster.timeline import ContainerState, PodState, Record
from resilience_tests.errors import UsageError
from resilience_tests.experiment.journal import ClusterFacts, FaultWindow, Journal, Phase
from resilience_tests.experiment.model import parse_experiment
from resilience_tests.faults.base import load_registry
from resilience_tests.items import (
    ExperimentError,
    ExperimentInterrupted,
    RevertFailed,
    SLAViolated,
    SteadyStateNotMet,
    journal_failure,
)
from resilience_tests.load.locust import LoadOutcome
from resilience_tests.load.samples import Sample
from resilience_tests.reporting import summary
from resilience_tests.reporting.allure import CATEGORIES, allure3_categories
from resilience_tests.reporting.redact import MASK, Redactor, redact
from resilience_tests.reporting.tables import event_lines, failed_request_lines, verdict_table
from resilience_tests.sla.checks import Verdict

REGISTRY = load_registry()
EXPERIMENT = parse_experiment({"name": "kill", "severity": "critical", "tags": ["nightly"],
                               "target": {"namespace": "demo", "workload": "deployment/web"},
                               "faults": [{"type": "pod-kill", "at": "1s"}]}, REGISTRY)
PASS = Verdict("availability", True, "100.00%", ">= 99%", "whole (-5.0s to +20.0s)", key="availability")
FAIL = Verdict("no-failed-requests", False, "3 failed", "0 failed", "fault 0 (+1.0s to +3.0s)",
               ("+1.20s GET /: ConnectionRefusedError",), key="no-failed-requests")


def journal(**changes: object) -> Journal:
    base: dict[str, object] = dict(experiment=EXPERIMENT, run_id="kill-1234abcd", plan=("[0] at 1 s: pod-kill",),
                                   facts=ClusterFacts("kwok-resilience", "https://127.0.0.1:1234", "v1.36.0", 9, 3, 7),
                                   started=1000.0, ended=1030.0, zero=1005.0,
                                   phases=(Phase("preflight", 999.0, 1000.0),),
                                   windows=(FaultWindow(0, "pod-kill", 1006.0, 1008.0, touched=("pod-kill: pod a",)),),
                                   verdicts=(PASS,))
    base.update(changes)
    return Journal(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "outcome", "raised"), [
    ({}, "passed", None),
    ({"verdicts": (PASS, FAIL)}, "sla-violated", SLAViolated),
    ({"errors": ("0:pod-kill: boom",)}, "error", ExperimentError),
    ({"aborted": "steady state not met before any fault", "steady": (FAIL,), "verdicts": ()},
     "steady-state-not-met", SteadyStateNotMet),
    ({"interrupted": True, "aborted": "interrupted: SIGTERM"}, "interrupted", ExperimentInterrupted),
    ({"revert_errors": ("0:pod-kill: revert failed: gone",)}, "revert-failed", RevertFailed),
    ({"started": 0.0, "ended": 0.0}, "planned", None),
])
def test_each_outcome_raises_its_own_failure(changes: dict[str, object], outcome: str, raised: type | None) -> None:
    j = journal(**changes)
    assert j.outcome == outcome
    failure = journal_failure(j)
    if raised is None:
        assert failure is None
    else:
        assert type(failure) is raised
        category = next(c for c in CATEGORIES if c["outcome"] == outcome)
        assert str(failure).startswith(str(category["message"]))  # what the Allure 2 categories match


def test_a_failed_revert_is_never_hidden_behind_a_failed_verdict_nor_reported_as_one() -> None:
    j = journal(verdicts=(PASS, FAIL), revert_errors=("0:pod-kill: revert failed: gone",))
    assert j.outcome == "revert-failed"
    failure = journal_failure(j)
    assert isinstance(failure, RevertFailed) and not isinstance(failure, AssertionError)  # broken, not failed
    assert "no-failed-requests FAILED" in str(failure)  # the violation is still named
    assert "resilience cleanup --run kill-1234abcd" in str(failure)


def test_only_an_sla_violation_is_a_test_failure_every_other_outcome_is_broken() -> None:
    assert isinstance(journal_failure(journal(verdicts=(FAIL,))), AssertionError)
    for changes in ({"errors": ("x",)}, {"interrupted": True}, {"revert_errors": ("x",)},
                    {"aborted": "steady", "steady": (FAIL,)}):
        assert not isinstance(journal_failure(journal(**changes)), AssertionError)


def test_an_interrupted_run_lists_what_was_reverted() -> None:
    j = journal(interrupted=True, aborted="interrupted: SIGINT",
                windows=(FaultWindow(0, "pod-kill", 1006.0, 1008.0), FaultWindow(1, "scale", 1007.0, None)))
    assert "reverted: 0:pod-kill" in str(journal_failure(j))
    assert "1:scale" not in str(journal_failure(j)).split("reverted:")[1]


def test_journal_json_has_typed_verdicts_windows_phases_and_a_version() -> None:
    samples = [Sample(1005, requests=10), Sample(1006, requests=10, failures=2)]
    data = journal(load=LoadOutcome(samples, True, "", 1004.5, 1010.0)).to_json()
    assert data["version"] == 2 and data["outcome"] == "passed"
    assert data["run_id"] == "kill-1234abcd" == data["experiment_id"]  # an id of the old form is its own run
    assert data["slas"][0] == {"check": "availability", "key": "availability", "passed": True, "measured": "100.00%",
                               "threshold": ">= 99%", "window": "whole (-5.0s to +20.0s)", "margin": "",
                               "measured_value": None, "threshold_value": None, "margin_value": None, "unit": None,
                               "passes": None, "window_start_s": None, "window_end_s": None, "evidence": []}
    assert data["faults"][0]["touched"] == ["pod-kill: pod a"] and data["faults"][0]["reverted"] is True
    assert (data["faults"][0]["start_s"], data["faults"][0]["end_s"]) == (1.0, 3.0)  # from at: 0
    assert data["load"]["requests"] == 20 and data["load"]["failures"] == 2
    assert data["experiment"]["severity"] == "critical" and data["experiment"]["tags"] == ["nightly"]
    assert len(data["samples"]) == 2
    json.dumps(data)  # serialisable as it is


def test_summary_counts_outcomes_and_refuses_another_version(tmp_path: Path) -> None:
    data = summary.build([journal(), journal(verdicts=(FAIL,), run_id="kill-2")])
    assert data["outcomes"] == {"passed": 1, "sla-violated": 1} and data["passed"] is False
    assert data["experiments"][1]["slas"][0]["measured"] == "3 failed"
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(data))
    assert summary.read(path)["version"] == summary.SUMMARY_VERSION
    path.write_text(json.dumps({**data, "version": 99}))
    with pytest.raises(UsageError, match="written by summary version 99"):
        summary.read(path)
    path.write_text(json.dumps({**data, "journal_version": 0}))  # an older journal
    with pytest.raises(UsageError, match=r"\(journal version 0\); this resilience-tests"):
        summary.read(path)


def test_tables_show_offsets_from_the_fault_schedule() -> None:
    failed = Sample(1006, requests=2, failures=1)
    failed.add(3.0, failed=True, t=1006.5, name="GET /", reason="ConnectionRefusedError", pod="web-1")
    j = journal(load=LoadOutcome([failed], True, "", 1005.0, 1010.0), verdicts=(PASS, FAIL),
                records=(Record(1007.0, "event", "demo/web-1.1", "added", (("reason", "Killing"),)),
                         Record(1007.5, "pod", "demo/web-1", "updated", pod=PodState(
                             node="n1", containers={"web": ContainerState(exit_code=137, reason="Error")}))))
    assert failed_request_lines(j) == ["   +1.50s  GET /: ConnectionRefusedError answered by web-1 during 0:pod-kill"]
    events = event_lines(j)
    assert events[0].startswith("   +2.00s  event")
    assert events[1].endswith("demo/web-1 updated  node=n1 exit.web=137 reason.web=Error")
    table = verdict_table(j)
    assert "FAILED" in table and "+1.20s GET /: ConnectionRefusedError" in table


def test_categories_for_allure_3_match_the_outcome_label() -> None:
    rules = allure3_categories()
    assert [r["name"] for r in rules] == [c["name"] for c in CATEGORIES]
    assert rules[0]["matchers"] == [{"labels": {"outcome": "^revert-failed$"}}]


@pytest.mark.parametrize(("text", "hidden"), [
    ("GET http://alice:s3cr3t-pw@127.0.0.1:30080/ failed", "s3cr3t-pw"),
    ("Authorization: Bearer abcdef0123456789", "abcdef0123456789"),
    ("token: eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZw", "eyJzdWIiOiJ4In0"),
    ("client-key-data: LS0tLS1CRUdJTiBSU0Eg", "LS0tLS1CRUdJTiBSU0Eg"),
    ('{"password": "hunter22"}', "hunter22"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "MIIEow"),
])
def test_redaction_masks_what_looks_secret(text: str, hidden: str) -> None:
    clean = redact(text)
    assert hidden not in clean and MASK in clean


def test_redaction_masks_known_values_everywhere_and_leaves_the_rest(tmp_path: Path) -> None:
    redactor = Redactor()
    redactor.add_url("http://bob:p%40ss-word@127.0.0.1:30080/")
    assert redactor.text("the password p@ss-word and p%40ss-word") == f"the password {MASK} and {MASK}"
    assert redactor.data({"k": ["p@ss-word", 3]}) == {"k": [MASK, 3]}
    plain = "pod demo/web-1 exit 137 secret \"db\" not found; GET / 503"
    assert redactor.text(plain) == plain
    log = tmp_path / "locust.log"
    log.write_text("host http://bob:p%40ss-word@127.0.0.1:30080\n")
    redactor.tree(tmp_path)
    assert "ss-word" not in log.read_text()
