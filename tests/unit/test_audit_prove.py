"""``resilience audit --prove``, its pure parts: which experiment proves which finding, that every experiment it
writes is a valid experiment, and how an experiment's outcome confirms a finding or not."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from resilience_tests.audit import prove, report, sources
from resilience_tests.audit.model import Finding, Inventory, Location
from resilience_tests.audit.rules import RULES, audit
from resilience_tests.cli import main
from resilience_tests.experiment.model import parse_experiment

WEB = "Deployment shop/web"
PLACED = {WEB: prove.Placement(2, Counter({"zone-a": 2}), {"zone-a": 3, "zone-b": 3})}


def _finding(rule: str, obj: str = WEB, skipped: str = "") -> Finding:
    return Finding(RULES[rule], obj, Location("cluster:ctx/shop"), "message", skipped)


def test_every_rule_linked_to_an_example_has_a_proof_or_none_on_purpose() -> None:
    # RT102 (no liveness probe) is not shown by any fault: a hung process is what it is about.
    assert {r for r in RULES if r not in prove.PROOFS and RULES[r].experiment} == set()
    assert {r: RULES[r].experiment for r in prove.PROOFS} == {r: k.example for r, k in prove.PROOFS.items()}


def test_findings_of_one_workload_share_one_experiment_per_proof() -> None:
    proofs, unproved = prove.plan([_finding("RT101"), _finding("RT401"), _finding("RT204"), _finding("RT808")],
                                  PLACED)
    assert [(p.kind.name, p.rules) for p in proofs] == [("rollout", "RT101, RT401"), ("zone-outage", "RT204")]
    assert [(u.finding.rule.id, u.why) for u in unproved] == [("RT808", prove.NO_PROOF)]
    zone = proofs[1].experiment
    # the zone holding most replicas is lost; every node of it counts against the guardrail
    assert zone["faults"][0]["zone"] == "zone-a" and zone["guardrails"] == {"max_nodes": 3}


@pytest.mark.parametrize("rule", sorted(prove.PROOFS))
def test_every_proof_is_a_valid_experiment_with_a_verdict_that_can_fail(rule: str) -> None:
    import yaml

    from resilience_tests.faults.base import load_registry

    (proof,), _ = prove.plan([_finding(rule)], PLACED)
    exp = parse_experiment(yaml.safe_load(yaml.safe_dump(proof.experiment)), load_registry(), source="<proof>")
    assert exp.check_problems() == []
    assert exp.target.namespace == "shop" and exp.target.workload == "deployment/web"
    assert exp.name == proof.name and rule in exp.tags
    if proof.kind is not prove.DRAIN_BLOCKED:  # confirmed by the drain's error, not a verdict
        assert exp.slas and exp.load is not None and exp.steady_state
        fault = exp.faults[0]
        # the load runs past the fault's longest wait, so the judged window has load all through
        assert exp.load.shape.duration > fault.at + float(getattr(fault, "timeout", 0) or 0) \
            or proof.kind is not prove.ROLLOUT


def test_what_is_not_proved_says_why() -> None:
    pod = _finding("RT204", "Pod shop/loner")
    gone = _finding("RT201", "Deployment shop/gone")
    skipped = _finding("RT201", skipped="a batch worker nobody calls")
    nowhere = _finding("RT204", "Deployment shop/pending")
    proofs, unproved = prove.plan([pod, gone, skipped, nowhere, _finding("RT201")],
                                  {**PLACED, "Deployment shop/pending": prove.Placement(2)}, rules={"RT204"})
    assert proofs == []
    assert {u.finding.obj + " " + u.finding.rule.id: u.why for u in unproved} == {
        "Pod shop/loner RT204": "only Deployments and StatefulSets are proved",
        "Deployment shop/gone RT201": prove.NOT_SELECTED,
        "Deployment shop/web RT201": prove.NOT_SELECTED,
        "Deployment shop/pending RT204": "no running pod with a zone to lose",
    }
    assert [u.why for u in unproved if u.finding is skipped] == ["skipped: a batch worker nobody calls"]


def test_prove_takes_rule_ids_and_refuses_one_without_a_proof() -> None:
    assert prove.selected_rules(None) is None and prove.selected_rules("all") is None
    assert prove.selected_rules("rt201, RT204") == {"RT201", "RT204"}
    with pytest.raises(Exception, match=r"no experiment proves RT808; .*RT201"):
        prove.selected_rules("RT201,RT808")


def _entry(outcome: str, *, sla: bool | None = None, errors: tuple[str, ...] = (),
           steady: bool = True) -> dict[str, Any]:
    verdict = {"check": "no-failed-requests", "passed": sla, "measured": "12 of 400 requests failed",
               "threshold": "0 failed", "window": "fault:rollout [2.0 s, 21.3 s]"}
    return {"name": "x", "outcome": outcome, "errors": list(errors), "revert_errors": [],
            "steady_state": [{"check": "error-rate", "passed": steady, "measured": "100.00% (40/40)",
                              "threshold": "<= 1.00%"}],
            "slas": [verdict] if sla is not None else []}


@pytest.mark.parametrize(("outcome", "kwargs", "status", "why"), [
    ("sla-violated", {"sla": False}, "confirmed", "no-failed-requests: 12 of 400 requests failed (wanted 0 failed)"),
    ("passed", {"sla": True}, "not confirmed", "no-failed-requests: 12 of 400"),
    ("steady-state-not-met", {"steady": False}, "inconclusive", "not healthy before the fault: error-rate 100.00%"),
    ("error", {"errors": ("inject 0:rollout: timed out",)}, "inconclusive", "inject 0:rollout: timed out"),
    ("interrupted", {}, "not run", "interrupted"),
    ("planned", {}, "not run", "dry run"),
    ("sla-violated", {"sla": True}, "inconclusive", "outcome sla-violated"),  # another check failed, not this
])
def test_a_load_proof_is_confirmed_only_by_its_own_verdict_failing(outcome: str, kwargs: dict[str, Any],
                                                                   status: str, why: str) -> None:
    (proof,), _ = prove.plan([_finding("RT401")], PLACED)
    result = prove.judge(proof, _entry(outcome, **kwargs))
    assert (result.status, result.outcome) == (status, outcome) and why in result.why


def test_a_blocking_pdb_is_confirmed_by_a_drain_that_cannot_finish_and_only_by_that() -> None:
    (proof,), _ = prove.plan([_finding("RT502")], PLACED)
    blocked = "inject 0:node-drain: drain of node-a did not finish in 20 s; still waiting for shop/web-1 " \
              "blocked by PDB web"
    assert prove.judge(proof, _entry("error", errors=(blocked,))).status == "confirmed"
    assert prove.judge(proof, _entry("passed")).status == "not confirmed"
    other = prove.judge(proof, _entry("error", errors=("guardrail: 31 pods > max_pods 30",)))
    assert (other.status, other.why) == ("inconclusive", "guardrail: 31 pods > max_pods 30")
    assert prove.judge(proof, None).status == "not run"


def test_the_proof_table_and_json_carry_each_findings_result() -> None:
    import json

    found = [_finding("RT401"), _finding("RT808")]
    (proof,), unproved = prove.plan(found, PLACED)
    result = prove.judge(proof, _entry("sla-violated", sla=False))
    table = report.proof_table([result], unproved)
    assert f"confirmed  RT401 graceful-shutdown  {WEB}  prove-rollout-web  no-failed-requests" in table
    assert table.rstrip().endswith("1 finding(s) confirmed, 0 not confirmed, 0 inconclusive, 0 not run; "
                                   "1 with no experiment")
    data = json.loads(report.as_json(found, [], 2, RULES, proofs=[result]))
    assert data["findings"][0]["proof"]["status"] == "confirmed" and data["findings"][1]["proof"] is None
    assert "proof" not in json.loads(report.as_json(found, [], 2, RULES))["findings"][0]


def test_prove_needs_a_live_namespace_and_known_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n")
    assert main(["audit", str(manifest), "--prove"]) == 2
    assert "--prove runs experiments against a live namespace" in capsys.readouterr().err
    assert main(["audit", "shop", "--prove", "RT999"]) == 2
    assert "no experiment proves RT999" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


def test_the_demo_variants_each_get_the_experiment_of_their_misbehaviour() -> None:
    import yaml

    demo = Path(__file__).parents[2] / "deploy" / "demo.yaml"
    docs = [d for d in yaml.safe_load_all(demo.read_text()) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["replicas"] = 1
    objects, _ = sources.parse(yaml.safe_dump_all(docs), "demo.yaml")
    findings = audit(Inventory(objects))
    proofs, _ = prove.plan(findings, {"Deployment demo/web": prove.Placement(1, Counter({"zone-b": 1}))})
    assert [(p.kind.name, p.rules) for p in proofs] == [("pod-kill", "RT201")]


PINNED = {WEB: prove.Placement(2, Counter({"zone-a": 2}), {"zone-a": 3}, (("app", "web"),))}
GAVE_UP = "0:node-drain: drain of node-a did not finish in 35 s; still waiting for shop/web-h-2 blocked by PDB web"
UNSCHEDULABLE = "0/6 nodes are available: 1 node(s) were unschedulable, 5 node(s) didn't match Pod's node selector."


def _pod(t: float, name: str, change: str, phase: str = "Running", node: str | None = "node-a",
         app: str = "web", terminating: bool = False) -> dict[str, Any]:
    return {"t": t, "kind": "pod", "name": f"shop/{name}", "change": change,
            "pod": {"phase": phase, "node": node, "terminating": terminating, "ready": phase == "Running",
                    "labels": {"app": app, "pod-template-hash": "h"}, "containers": {}}}


def _drain_journal(*, placed_at: float | None = None, event: bool = True, made_at: float = 104.0,
                   pending_app: str = "web") -> list[dict[str, Any]]:
    """A hostname-pinned web (2 replicas on node-a, a PDB allowing one eviction) drained: web-h-1 is evicted,
    its replacement web-h-3 stays Pending (its node is cordoned), the PDB holds web-h-2, the drain gives up at
    t=138, its revert uncordons node-a and web-h-3 lands there."""
    records = [_pod(100, "web-h-1", "added"), _pod(100, "web-h-2", "added"), _pod(100, "db-1", "added", app="db"),
               _pod(103, "web-h-1", "updated", terminating=True),
               _pod(made_at, "web-h-3", "added", "Pending", None, app=pending_app),
               _pod(104.2, "web-h-1", "deleted", terminating=True)]
    if event:
        records.append({"t": 104.5, "kind": "event", "name": "shop/web-h-3.1", "change": "added",
                        "details": {"reason": "FailedScheduling", "type": "Warning", "object": "Pod/web-h-3",
                                    "message": UNSCHEDULABLE}})
    if placed_at is not None:
        records.append(_pod(placed_at, "web-h-3", "updated", node="node-b"))
    records += [{"t": 138.0, "kind": "fault", "name": "0:node-drain", "change": "error",
                 "details": {"error": GAVE_UP}},
                _pod(139.0, "web-h-3", "updated", node="node-a")]
    return records


def test_a_drain_stopped_by_a_pdb_with_a_replica_scheduled_nowhere_confirms_the_drain_proof() -> None:
    """A pin to the drained node: the evicted replica's replacement is Pending, so the PDB holds the other one."""
    (proof,), _ = prove.plan([_finding("RT203")], PINNED)
    assert proof.kind is prove.DRAIN_LOAD and proof.labels == (("app", "web"),)
    entry = _entry("error", errors=(GAVE_UP,))
    result = prove.judge(proof, entry, _drain_journal())
    assert result.status == "confirmed", result.why
    assert result.why == (f"shop/web-h-3 could not be scheduled anywhere: Pending on no node for 34 s when the drain "
                          f"gave up (the scheduler: {UNSCHEDULABLE}); the drain could not finish: {GAVE_UP}")
    # the pod's state alone shows it (no event recorded), once it waited PENDING_S or more
    assert prove.judge(proof, entry, _drain_journal(event=False)).status == "confirmed"
    # a RT502 proof names the Pending replica next to the PDB
    (blocked,), _ = prove.plan([_finding("RT502")], PINNED)
    assert "shop/web-h-3 could not be scheduled anywhere" in prove.judge(blocked, entry, _drain_journal()).why


@pytest.mark.parametrize(("journal", "placements"), [
    ([], PINNED),  # no journal: the summary alone cannot say why the drain stopped
    (_drain_journal(placed_at=110.0), PINNED),  # the replacement was scheduled: the PDB, not a pin, stopped it
    (_drain_journal(pending_app="db"), PINNED),  # the Pending pod belongs to another workload
    (_drain_journal(event=False, made_at=135.0), PINNED),  # Pending 3 s only, no word from the scheduler
    (_drain_journal(), PLACED),  # the workload's labels are unknown: its pods cannot be told from others
])
def test_a_drain_stopped_by_a_pdb_stays_inconclusive_without_a_replica_scheduled_nowhere(
        journal: list[dict[str, Any]], placements: dict[str, prove.Placement]) -> None:
    (proof,), _ = prove.plan([_finding("RT203")], placements)
    result = prove.judge(proof, _entry("error", errors=(GAVE_UP,)), journal)
    assert (result.status, result.why) == ("inconclusive", GAVE_UP)


def test_a_drain_held_by_another_workloads_pdb_does_not_confirm() -> None:
    (proof,), _ = prove.plan([_finding("RT501")], PINNED)
    other = GAVE_UP.replace("shop/web-h-2 blocked by PDB web", "shop/db-1 blocked by PDB db")
    assert prove.judge(proof, _entry("error", errors=(other,)), _drain_journal()).status == "inconclusive"


def test_a_proofs_journal_records_are_read_from_its_results(tmp_path: Path) -> None:
    import json

    from resilience_tests.reporting.results import experiment_dir, journal_records

    folder = experiment_dir(tmp_path, "run-1")
    folder.mkdir(parents=True)
    (folder / "journal.json").write_text(json.dumps({"records": _drain_journal()}))
    assert journal_records(tmp_path, "run-1") == _drain_journal()
    assert journal_records(tmp_path, "run-2") == []  # missing: judged without it
    (folder / "journal.json").write_text("{not json")
    assert journal_records(tmp_path, "run-1") == []


def test_placements_carry_the_workloads_labels() -> None:
    from resilience_tests.audit.model import Obj
    from resilience_tests.cluster.selection import ZONE_LABEL, NodeInfo, PodInfo

    class Cluster:
        def nodes(self) -> list[NodeInfo]:
            return [NodeInfo("node-a", {ZONE_LABEL: "zone-a"})]

        def pods(self, namespace: str, selector: str) -> list[PodInfo]:
            assert selector == "app=web,tier=front"
            return [PodInfo("web-1", namespace, "node-a", {"app": "web"})]

    web = Obj({"kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"tier": "front", "app": "web"}}}},
              Location("cluster:ctx/shop"))
    placement = prove.read_placements(Cluster(), [web])["Deployment shop/web"]
    assert placement.labels == (("app", "web"), ("tier", "front")) and placement.zones == Counter({"zone-a": 1})
