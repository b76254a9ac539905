"""The audit's inputs and outputs: manifests with their lines, what cannot be read, table, JSON, SARIF, CLI."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from resilience_tests.audit import report, sources
from resilience_tests.audit.model import Location, Obj
from resilience_tests.audit.rules import RULES, audit
from resilience_tests.cli import main

ONE_REPLICA = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
# the workload
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "shop/web:1.2"}]
"""


def test_documents_keep_the_line_they_start_on_and_lists_are_opened() -> None:
    text = ONE_REPLICA + "---\napiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: Service, " \
                         "metadata: {name: other, namespace: shop}}\n"
    objects, problems = sources.parse(text, "app.yaml")
    assert problems == []
    assert [(o.kind, o.name, o.location.line) for o in objects] == [("Service", "web", 1), ("Deployment", "web", 7),
                                                                     ("Service", "other", 18)]


@pytest.mark.parametrize(("text", "expected"), [
    ("kind: Deployment\nmetadata: {name: [}\n", "app.yaml:2: invalid YAML"),
    ("- just\n- a list\n", "app.yaml:1: not a Kubernetes object"),
    ("", "app.yaml: empty: no object in it"),
    ("# only a comment\n---\n", "app.yaml: empty: no object in it"),
    ("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n", "Widget (example.com/v1) w: a kind the "
                                                                         "audit does not know"),
])
def test_what_cannot_be_read_is_a_problem_with_its_location(text: str, expected: str) -> None:
    objects, problems = sources.parse(text, "app.yaml")
    assert objects == []
    assert len(problems) == 1 and expected in f"{problems[0].location}: {problems[0].message}"


def test_kinds_without_resilience_rules_are_read_silently() -> None:
    objects, problems = sources.parse("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: c2VjcmV0}\n", "s")
    assert objects == [] and problems == []


def test_folders_are_read_recursively_and_bad_files_do_not_stop_the_rest(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "web.yaml").write_text(ONE_REPLICA)
    (tmp_path / "app" / "broken.yml").write_text("kind: [\n")
    (tmp_path / "app" / "notes.txt").write_text("not read")
    inventory, problems = sources.read_paths([str(tmp_path / "app"), str(tmp_path / "missing.yaml")])
    assert [o.ref for o in inventory.objects] == ["Service shop/web", "Deployment shop/web"]
    assert [str(p.location) for p in problems] == [f"{tmp_path}/app/broken.yml:2", f"{tmp_path}/missing.yaml"]


def _findings() -> tuple[list[object], list[sources.Problem]]:
    objects, problems = sources.parse(ONE_REPLICA, "deploy/web.yaml")
    inventory = sources.Inventory(objects)
    return audit(inventory), problems  # type: ignore[return-value]


def test_sarif_puts_each_finding_on_its_manifest_line() -> None:
    findings, _ = _findings()
    sarif = json.loads(report.as_sarif(findings, [], RULES))  # type: ignore[arg-type]
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert rule_ids == sorted(RULES)
    replicas = next(r for r in run["results"] if r["ruleId"] == "RT201")
    assert replicas["level"] == "error" and rule_ids[replicas["ruleIndex"]] == "RT201"
    assert replicas["locations"][0]["physicalLocation"] == {"artifactLocation": {"uri": "deploy/web.yaml"},
                                                            "region": {"startLine": 7}}
    assert replicas["message"]["text"].startswith("Deployment shop/web: ")


def test_json_and_table_say_the_same() -> None:
    findings, _ = _findings()
    data = json.loads(report.as_json(findings, [], 2, RULES))  # type: ignore[arg-type]
    assert data["version"] == 1 and data["objects"] == 2
    ids = [f["rule"] for f in data["findings"]]
    assert "RT201" in ids and all(f["line"] == 7 for f in data["findings"] if f["object"] == "Deployment shop/web")
    text = report.table(findings, [], 2)  # type: ignore[arg-type]
    assert text.count("\n") == len(findings) + 1
    assert text.splitlines()[-1].startswith(f"audit: 2 object(s), {len(findings)} finding(s)")


def test_cli_audits_files_and_stdin_and_exits_1_on_findings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "web.yaml").write_text(ONE_REPLICA)
    assert main(["audit", str(tmp_path / "web.yaml"), "--format", "json"]) == 1
    from_file = json.loads(capsys.readouterr().out)["findings"]
    monkeypatch.setattr("sys.stdin", io.StringIO(ONE_REPLICA))
    assert main(["audit", "-", "--format", "json"]) == 1
    from_stdin = json.loads(capsys.readouterr().out)["findings"]
    assert [(f["rule"], f["line"]) for f in from_file] == [(f["rule"], f["line"]) for f in from_stdin]
    assert {f["source"] for f in from_stdin} == {"<stdin>"}


def test_cli_bad_input_is_reported_per_file_and_the_audit_goes_on(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "web.yaml").write_text(ONE_REPLICA)
    (tmp_path / "bad.yaml").write_text("kind: Deployment\n  metadata: x\n")
    (tmp_path / "empty.yaml").write_text("")
    assert main(["audit", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err == ""  # no traceback
    out = captured.out.splitlines()
    assert f"problem: {tmp_path}/bad.yaml:2: invalid YAML" in "\n".join(out)
    assert f"problem: {tmp_path}/empty.yaml: empty: no object in it" in out
    assert any("RT201" in line for line in out)  # the good file was audited
    assert out[-1].endswith("2 problem(s)")


def test_a_namespace_without_a_cluster_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RESILIENCE_CACHE", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["audit", "shop"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: shop: no such file, and no cluster to read a namespace from; give manifest paths, or "
                   "--kubeconfig to audit a live namespace"]


def test_obj_refs_default_the_namespace() -> None:
    obj = Obj({"kind": "Deployment", "metadata": {"name": "web"}}, Location("x.yaml", 3))
    assert obj.ref == "Deployment default/web" and str(obj.location) == "x.yaml:3"


def _evidence(findings: tuple[object, ...] | None) -> object:
    from resilience_tests.sla.evidence import Evidence

    return Evidence(started=100.0, ended=160.0, zero=110.0, audit=findings, audit_at=105.0)  # type: ignore[arg-type]


def test_the_audit_check_fails_on_findings_at_or_above_its_severity_and_passes_without() -> None:
    from resilience_tests.experiment.model import parse_experiment
    from resilience_tests.faults.base import load_registry

    exp = parse_experiment({"name": "x", "target": {"namespace": "shop", "workload": "deployment/web"},
                            "steady_state": [{"type": "audit"}, {"type": "audit", "severity": "low"},
                                             {"type": "audit", "severity": "low", "rules": ["rt101"]}],
                            "faults": [{"type": "pod-kill", "at": "1s"}]}, load_registry())
    high, low, only_rt101 = exp.steady_state
    findings, _ = _findings()
    mine = tuple(f for f in findings if f.obj == "Deployment shop/web")  # type: ignore[attr-defined]
    verdict = high.evaluate(_evidence(mine))  # type: ignore[arg-type]
    assert not verdict.passed and verdict.measured == "2 finding(s) at high or above"  # RT101, RT201
    assert verdict.window == "snapshot (-5.0s..-5.0s)" and verdict.threshold == "none (every rule)"
    assert any(line.startswith("RT201 replicas (high) Deployment shop/web: ") for line in verdict.evidence)
    assert low.evaluate(_evidence(mine)).measured == f"{len(mine)} finding(s) at low or above"  # type: ignore[arg-type]
    assert only_rt101.evaluate(_evidence(mine)).measured == "1 finding(s) at low or above"  # type: ignore[arg-type]
    assert high.evaluate(_evidence(())).passed  # type: ignore[arg-type]
    skipped = tuple(replace(f, skipped="by design") for f in mine)  # type: ignore[type-var]
    assert high.evaluate(_evidence(skipped)).passed  # type: ignore[arg-type]
    unread = high.evaluate(_evidence(None))  # type: ignore[arg-type]
    assert not unread.passed and unread.measured == "not audited"


@pytest.mark.parametrize("manifest", ["demo.yaml", "demo-stateful.yaml"])
def test_the_demo_apps_as_deployed_pass_the_audit(manifest: str, capsys: pytest.CaptureFixture[str]) -> None:
    demo = Path(__file__).parents[2] / "deploy" / manifest
    assert main(["audit", str(demo)]) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.endswith("0 finding(s) (0 high, 0 medium, 0 low)\n")


def test_the_autoscaling_demo_passes_the_audit_with_its_single_replica_skipped_by_design(
        capsys: pytest.CaptureFixture[str]) -> None:
    demo = Path(__file__).parents[2] / "deploy" / "demo-hpa.yaml"
    assert main(["audit", str(demo)]) == 0
    out = capsys.readouterr().out
    assert out.endswith("0 finding(s) (0 high, 0 medium, 0 low), 2 skipped\n"), out
    assert sorted(line.split()[1] for line in out.splitlines() if line.startswith("skipped")) == ["RT201", "RT701"]


def _demo_variant(change: object) -> list[str]:
    import copy

    import yaml

    demo = Path(__file__).parents[2] / "deploy" / "demo.yaml"
    docs = [d for d in yaml.safe_load_all(demo.read_text()) if d]
    docs = copy.deepcopy(docs)
    change(docs)  # type: ignore[operator]
    objects, _ = sources.parse(yaml.safe_dump_all(docs), "demo-variant.yaml")
    return sorted({f.rule.id for f in audit(sources.Inventory(objects)) if not f.skipped})


def _web(docs: list[dict[str, object]]) -> dict[str, object]:
    return next(d for d in docs if d["kind"] == "Deployment")


def _container(docs: list[dict[str, object]]) -> dict[str, object]:
    return _web(docs)["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index,no-any-return]


@pytest.mark.parametrize(("misbehaviour", "change", "rule"), [
    ("exits at once on SIGTERM, no preStop", lambda docs: _container(docs).pop("lifecycle"), "RT401"),
    ("no readiness probe", lambda docs: _container(docs).pop("readinessProbe"), "RT101"),
    ("one replica", lambda docs: _web(docs)["spec"].update(replicas=1), "RT201"),  # type: ignore[attr-defined]
    ("pinned to a zone", lambda docs: _web(docs)["spec"]["template"]["spec"].update(  # type: ignore[index]
        nodeSelector={"topology.kubernetes.io/zone": "zone-a"}), "RT204"),
    ("a PDB that blocks every drain", lambda docs: next(d for d in docs if d["kind"] == "PodDisruptionBudget")[
        "spec"].update(maxUnavailable=0), "RT502"),  # type: ignore[index]
])
def test_each_misbehaving_variant_of_the_demo_app_fails_the_rule_of_its_misbehaviour(
        misbehaviour: str, change: object, rule: str) -> None:
    assert _demo_variant(lambda docs: None) == []
    found = _demo_variant(change)
    assert rule in found, (misbehaviour, found)
