"""The autoscaling checks on the HPA demo (deploy/demo-hpa.yaml) under real Locust load on the real nodes: the demo
as shipped passes capacity-follows-load, scale-up-time, no-flapping, max-replicas-respected and scale-down; an
HPA whose target is too high fails capacity and scale-up naming the metric it saw; a maxReplicas below the need
fails capacity with ScalingLimited in the evidence; an HPA that does not exist, or a CPU HPA over a container
without a CPU request, stops the run before any load.

Needs the resource metrics API (metrics-server) on the local cluster. Each test runs at most 90 s of load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from resilience_tests.chaos import Chaos
from resilience_tests.experiment.preflight import PreflightError
from resilience_tests.experiment.runner import RunResult
from resilience_tests.sla.checks import Verdict
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.waiting import wait_until
from tests.cluster.helpers import ready, running_pods

pytestmark = pytest.mark.usefixtures("real_nodes")

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "demo-hpa.yaml"
# 60 users, 10 more every 5 s, each sending one request a second (~60 requests/s at the top), held 50 s: 75 s.
RAMP = {"type": "progressive", "users": 60, "step_users": 10, "step_every": "5s", "hold": "50s"}


def deploy_hpa_demo(local_cluster: LocalCluster, core: client.CoreV1Api, namespace: str,
                    **hpa_spec: Any) -> None:
    """Apply deploy/demo-hpa.yaml into ``namespace`` (its own Namespace left out, the NodePort chosen by the
    server), with ``hpa_spec`` merged into the HPA's spec; wait until its one replica is ready."""
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d and d["kind"] != "Namespace"]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "Service":
            for port in doc["spec"]["ports"]:
                port.pop("nodePort", None)
        if doc["kind"] == "HorizontalPodAutoscaler":
            doc["spec"].update(hpa_spec)
    local_cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    wait_until("HPA demo ready", lambda: sum(ready(p) for p in running_pods(core, namespace, "web")) == 1,
               timeout=120)


def experiment(namespace: str, slas: list[dict[str, Any]], shape: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "autoscale", "target": {"namespace": namespace, "workload": "deployment/web"},
            "guardrails": {"max_pods": 12}, "settle": "1s",
            "load": {"shape": shape or RAMP, "wait": "1s"}, "slas": slas}


def by_check(result: RunResult) -> dict[str, Verdict]:
    return {v.check.split(" (")[0]: v for v in result.verdicts}


CAPACITY = {"type": "capacity-follows-load", "per_replica_rps": 12, "max_replicas": 10, "lag": "40s"}


def test_the_hpa_demo_under_the_ramp_passes_every_autoscaling_check(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str) -> None:
    deploy_hpa_demo(local_cluster, core, namespace)
    result = chaos.run(experiment(namespace, [
        CAPACITY,
        {"type": "scale-up-time", "to": 5, "max": "60s"},
        {"type": "no-flapping", "max_changes_per_minute": 2},
        {"type": "max-replicas-respected"},
        {"type": "no-failed-requests"},
    ]))
    assert not result.failed_verdicts, "\n".join(v.message for v in result.failed_verdicts)
    hpas = [r for r in result.records if r.kind == "hpa"]
    assert hpas and any(r.values()["desired_replicas"] >= 5 for r in hpas), [r.values() for r in hpas]


def test_the_hpa_demo_scales_down_after_a_spike_without_failed_requests(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str) -> None:
    """2 users, 60 for 35 s from +5 s, then 2 again for 50 s: the demo's 30 s stabilisation and 50 %/15 s policy
    bring 5 or 6 replicas down to 3 within 45 s while the 2 remaining users see no error."""
    deploy_hpa_demo(local_cluster, core, namespace)
    spike = {"type": "spike", "users": 2, "spike_users": 60, "at": "5s", "spike_duration": "35s", "duration": "90s"}
    result = chaos.run(experiment(namespace, [{"type": "scale-down", "to": 3, "within": "45s"}], spike))
    down = by_check(result)["scale-down"]
    assert down.passed, down.message


def test_an_hpa_whose_target_is_too_high_fails_capacity_and_scale_up_naming_the_metric(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str) -> None:
    """A 500 % CPU target is above what the 500m limit lets a replica use (250 %): the HPA never scales."""
    deploy_hpa_demo(local_cluster, core, namespace, metrics=[{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 500}}}])
    result = chaos.run(experiment(namespace, [CAPACITY, {"type": "scale-up-time", "to": 3, "max": "40s"}]))
    verdicts = by_check(result)
    capacity, scale_up = verdicts["capacity-follows-load"], verdicts["scale-up-time"]
    assert not capacity.passed and "of 500%" in capacity.message and "needs" in capacity.message, capacity.message
    assert not scale_up.passed and scale_up.measured.startswith("never in"), scale_up.message
    assert "cpu " in scale_up.message and "of 500%" in scale_up.message, scale_up.message


def test_max_replicas_below_the_need_fails_capacity_with_scaling_limited(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str) -> None:
    deploy_hpa_demo(local_cluster, core, namespace, maxReplicas=2)
    result = chaos.run(experiment(namespace, [CAPACITY, {"type": "max-replicas-respected"}]))
    verdicts = by_check(result)
    capacity = verdicts["capacity-follows-load"]
    assert not capacity.passed and "ScalingLimited=True (TooManyReplicas" in capacity.message, capacity.message
    assert verdicts["max-replicas-respected"].passed, verdicts["max-replicas-respected"].message


def test_an_autoscaling_check_without_its_hpa_stops_before_any_load(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str) -> None:
    deploy_hpa_demo(local_cluster, core, namespace)
    with pytest.raises(PreflightError, match=r"HorizontalPodAutoscaler 'nope' not found \(HPAs in namespace "):
        chaos.run(experiment(namespace, [{"type": "no-flapping", "hpa": "nope"}]))
    local_cluster.kubectl("delete", "hpa", "web", "-n", namespace)
    with pytest.raises(PreflightError, match=r"no HorizontalPodAutoscaler targets deployment/web in "):
        chaos.run(experiment(namespace, [{"type": "scale-up-time", "to": 2, "max": "30s"}]))


def test_a_deployment_without_a_cpu_request_under_a_cpu_hpa_stops_before_any_load(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str) -> None:
    """Its whole resources go (a limit alone would become the request), and the namespace's LimitRange (it would
    default one) and ResourceQuota (it would refuse the pod) with them: the HPA could never compute a
    utilization, and the preflight says which container lacks the request."""
    deploy_hpa_demo(local_cluster, core, namespace)
    local_cluster.kubectl("delete", "limitrange,resourcequota", "demo-hpa", "-n", namespace)
    local_cluster.kubectl("patch", "deployment", "web", "-n", namespace, "--type", "json", "-p",
                          '[{"op": "remove", "path": "/spec/template/spec/containers/0/resources"}]')
    with pytest.raises(PreflightError, match=r"HPA web scales Deployment/web on cpu utilization, but its container "
                                             r"web requests no cpu"):
        chaos.run(experiment(namespace, [{"type": "scale-up-time", "to": 2, "max": "30s"}]))
