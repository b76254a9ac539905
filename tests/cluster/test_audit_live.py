"""The audit on a live namespace: the same objects give the same findings as their manifest files, though the
API server fills in defaults; a namespace that does not exist is one problem, not a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from resilience_tests.audit import sources
from resilience_tests.audit.rules import audit
from resilience_tests.cluster.kube import Kube, Workload
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.waiting import wait_until

ROOT = Path(__file__).parents[2]

BUNDLE = """
apiVersion: v1
kind: Service
metadata: {name: single}
spec: {selector: {app: single}, ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: single}
spec:
  replicas: 1
  selector: {matchLabels: {app: single}}
  template:
    metadata: {labels: {app: single}}
    spec:
      containers: [{name: app, image: "registry.local/app:1"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: pinned}
spec:
  replicas: 2
  strategy: {type: Recreate}
  selector: {matchLabels: {app: pinned}}
  template:
    metadata: {labels: {app: pinned}}
    spec:
      nodeSelector: {topology.kubernetes.io/zone: zone-a}
      terminationGracePeriodSeconds: 5
      containers:
        - name: app
          image: registry.local/app:latest
          readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 10, failureThreshold: 3}
          livenessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 10, failureThreshold: 1}
          resources: {requests: {cpu: 10m, memory: 16Mi}}
          securityContext: {privileged: true}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pinned}
spec: {minAvailable: 2, selector: {matchLabels: {app: pinned}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: orphan}
spec: {maxUnavailable: 1, selector: {matchLabels: {app: nothing}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: single}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: single}
  minReplicas: 1
  maxReplicas: 3
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: loner}
spec:
  hostNetwork: true
  containers:
    - name: app
      image: "registry.local/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
"""


def _key(findings: list[object]) -> list[tuple[str, str, str]]:
    return sorted((f.rule.id, f.obj, f.message) for f in findings)  # type: ignore[attr-defined]


def test_live_namespace_and_its_manifests_give_the_same_findings(local_cluster: LocalCluster, cluster: Kube,
                                                                  namespace: str, tmp_path: Path) -> None:
    manifest = tmp_path / "bundle.yaml"
    docs = [d for d in yaml.safe_load_all(BUNDLE) if d]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
    manifest.write_text(yaml.safe_dump_all(docs))
    local_cluster.kubectl("apply", "-f", str(manifest))
    wait_until("objects visible", lambda: len(cluster.audit_objects(namespace)) == len(docs), timeout=30)

    files, problems = sources.read_paths([str(manifest)])
    live, live_problems = sources.read_namespace(cluster, namespace)
    assert problems == [] and live_problems == []
    assert live.zones == ("zone-a", "zone-b", "zone-c")
    files.zones = live.zones  # the same cluster facts for both
    from_files, from_cluster = audit(files), audit(live)
    assert _key(from_cluster) == _key(from_files)
    found = {(f.rule.id, f.obj) for f in from_cluster}
    for expected in [("RT201", f"Deployment {namespace}/single"), ("RT204", f"Deployment {namespace}/pinned"),
                     ("RT502", f"Deployment {namespace}/pinned"),
                     ("RT503", f"PodDisruptionBudget {namespace}/orphan"),
                     ("RT801", f"Deployment {namespace}/pinned"),
                     ("RT806", f"Pod {namespace}/loner"), ("RT808", f"Deployment {namespace}/pinned"),
                     ("RT701", f"HorizontalPodAutoscaler {namespace}/single"),
                     ("RT903", f"Namespace {namespace}")]:
        assert expected in found, expected


def test_cli_audits_a_live_namespace_and_reports_one_that_does_not_exist(local_cluster: LocalCluster,
                                                                          cluster: Kube, namespace: str) -> None:
    docs = [d for d in yaml.safe_load_all(BUNDLE) if d and d["kind"] in ("Service", "Deployment")][:2]
    local_cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KUBECONFIG", None)
    done = subprocess.run([sys.executable, "-m", "resilience_tests.cli", "audit", namespace, "no-such-namespace",
                           "--kubeconfig", str(local_cluster.kubeconfig), "--format", "json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1 and done.stderr == ""
    report = json.loads(done.stdout)
    assert any(f["rule"] == "RT201" and f["object"] == f"Deployment {namespace}/single" for f in report["findings"])
    assert report["problems"] == [{"source": f"cluster:{local_cluster.context}/no-such-namespace", "line": 0,
                                   "message": "namespace 'no-such-namespace' does not exist"}]


def test_an_experiment_can_require_its_target_to_pass_the_audit_before_any_fault(
        local_cluster: LocalCluster, cluster: Kube, namespace: str) -> None:
    from resilience_tests.chaos import Chaos
    from resilience_tests.faults.base import load_registry

    docs = [d for d in yaml.safe_load_all(BUNDLE) if d and d["kind"] in ("Service", "Deployment")][:2]
    local_cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs))
    single = Workload("deployment", namespace, "single")
    wait_until("single created", lambda: cluster.replicas(single) == 1, timeout=30)
    journal = Chaos(cluster, load_registry()).run({
        "name": "audited", "target": {"namespace": namespace, "workload": "deployment/single"},
        "steady_state": [{"type": "audit", "severity": "high"}],
        "faults": [{"type": "scale", "at": "1s", "replicas": 0, "duration": "5s"}], "settle": "1s"})
    assert journal.outcome == "steady-state-not-met" and journal.windows == ()  # nothing injected
    (verdict,) = journal.steady
    assert verdict.check == "audit" and not verdict.passed
    assert any(line.startswith(f"RT201 replicas (high) Deployment {namespace}/single: ") for line in verdict.evidence)
    assert cluster.replicas(single) == 1


def _variant(namespace: str, name: str, change: Callable[[dict[str, Any]], None],
             **variant: Any) -> list[dict[str, Any]]:
    """The demo app as ``name`` (its Deployment, Service and PDB, labels app=<name>) with one misbehaviour."""
    from tests.cluster.helpers import demo_manifests

    docs = [d for d in demo_manifests(namespace, replicas=2, **variant)
            if d["kind"] in ("Deployment", "Service", "PodDisruptionBudget")]
    text = json.dumps(docs).replace('"app": "web"', f'"app": "{name}"').replace('"name": "web"', f'"name": "{name}"')
    renamed: list[dict[str, Any]] = json.loads(text)
    change(next(d for d in renamed if d["kind"] == "Deployment"))
    for doc in renamed:
        if doc["kind"] == "PodDisruptionBudget":
            change(doc)
    return renamed


def _ready(kube: Kube, workload: Workload) -> int:
    return int(kube.read_workload(workload).status.ready_replicas or 0)


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def _no_probe_gates_traffic(doc: dict[str, Any]) -> None:
    if doc["kind"] == "Deployment":
        container = _container(doc)
        container.pop("readinessProbe")
        container.pop("startupProbe")
        container["args"] = [*container["args"], "--misbehave=slow-start", "--start-delay=8s"]


def test_prove_confirms_each_misbehaving_variant_of_the_demo_app(local_cluster: LocalCluster, cluster: Kube,
                                                                namespace: str, tmp_path: Path) -> None:
    """Five variants of the demo app, one misbehaviour each; ``resilience audit --prove`` runs the experiment of
    each finding against them and confirms every one: requests fail during a rollout (no preStop and an exit on
    SIGTERM; no probe keeping a slow starter out of the endpoints), killing the only replica fails requests, the
    app pinned to zone a is down while zone a is lost, and the drain of a node of the PDB-blocked app cannot
    finish. The cluster is as before afterwards (nodes schedulable, each variant back to its replicas)."""
    def pdb_blocks(doc: dict[str, Any]) -> None:
        if doc["kind"] == "PodDisruptionBudget":
            doc["spec"] = {"maxUnavailable": 0, "selector": doc["spec"]["selector"]}

    def one_replica(doc: dict[str, Any]) -> None:
        if doc["kind"] == "Deployment":
            doc["spec"]["replicas"] = 1

    variants = {
        "noprestop": (_variant(namespace, "noprestop", lambda d: None, misbehave="exit-on-term", prestop=False),
                      "RT401", "rollout"),
        "noready": (_variant(namespace, "noready", _no_probe_gates_traffic), "RT101", "rollout"),
        "single": (_variant(namespace, "single", one_replica), "RT201", "pod-kill"),
        "pinned": (_variant(namespace, "pinned", lambda d: None, zone="zone-a"), "RT204", "zone-outage"),
        "blocking": (_variant(namespace, "blocking", pdb_blocks), "RT502", "drain-blocked"),
    }
    docs = [d for manifests, _, _ in variants.values() for d in manifests]
    local_cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    for name in variants:
        workload = Workload("deployment", namespace, name)
        want = 1 if name == "single" else 2
        wait_until(f"{name} ready", lambda w=workload, n=want: _ready(cluster, w) == n, timeout=120)
    nodes_before = sorted((n.name, n.unschedulable) for n in cluster.nodes())

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KUBECONFIG", None)
    done = subprocess.run([sys.executable, "-m", "resilience_tests.cli", "audit", namespace, "--prove",
                           "--kubeconfig", str(local_cluster.kubeconfig), "--reports", str(tmp_path),
                           "--format", "json", "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 1, done.stderr[-3000:]  # findings, as without --prove
    report = json.loads(done.stdout)
    proofs = {(f["rule"], f["object"]): f["proof"] for f in report["findings"] if f.get("proof")}
    for name, (_, rule, kind) in variants.items():
        proof = proofs.get((rule, f"Deployment {namespace}/{name}"))
        assert proof is not None, (name, rule, sorted(proofs), done.stderr[-3000:])
        assert proof["experiment"] == f"prove-{kind}-{name}", proof
        assert proof["status"] == "confirmed", (name, proof, done.stderr[-3000:])
    assert "blocked by PDB blocking" in proofs[("RT502", f"Deployment {namespace}/blocking")]["why"]
    assert proofs[("RT204", f"Deployment {namespace}/pinned")]["why"].startswith("availability: ")
    (results,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert sorted(p.name for p in (results / "proofs").iterdir())[0].startswith("01-prove-")
    assert (results / "html" / "index.html").is_file()

    # what the proofs changed is back: no node left cordoned, every variant at its replicas again
    assert sorted((n.name, n.unschedulable) for n in cluster.nodes()) == nodes_before
    for name in variants:
        workload = Workload("deployment", namespace, name)
        want = 1 if name == "single" else 2
        wait_until(f"{name} ready again", lambda w=workload, n=want: _ready(cluster, w) == n, timeout=120)
