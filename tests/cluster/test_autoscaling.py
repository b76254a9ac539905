"""The failing sides of the autoscaling checks on the HPA demo (deploy/demo-hpa.yaml) under real Locust load on
the real nodes: an HPA whose target is too high fails capacity and scale-up naming the metric it saw; a
maxReplicas below the need fails capacity with ScalingLimited in the evidence, and a scale-down stabilisation
longer than `within` fails scale-down saying so; a missing HPA or a missing CPU request stops the run before any
load. The passing side is experiments/autoscale-ramp.yaml (tests/cluster/test_examples.py).

Needs the resource metrics API (metrics-server) on the local cluster. Each test runs at most 60 s of load.
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
            "load": {"shape": shape or FAILING, "wait": "1s"}, "slas": slas}


def by_check(result: RunResult) -> dict[str, Verdict]:
    return {v.check.split(" (")[0]: v for v in result.verdicts}


# The passing side (the 60-user ramp, every autoscaling check) is the example experiments/autoscale-ramp.yaml,
# run by test_examples.py; here, the failing sides, each on a 60 s load that needs ~4 replicas from +5 s on and
# drops to 2 users at +40 s. A 20 s lag is ample for the demo's first scale-up (one scrape, one sync, a start).
FAILING = {"type": "progressive", "users": 40, "step_users": 20, "step_every": "5s", "hold": "35s", "then_users": 2,
           "then_hold": "20s"}
CAPACITY = {"type": "capacity-follows-load", "per_replica_rps": 10, "max_replicas": 10, "lag": "20s"}


def test_an_hpa_whose_target_is_too_high_fails_capacity_and_scale_up_naming_the_metric(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str) -> None:
    """A 500 % CPU target is above what the 500m limit lets a replica use (250 %): the HPA never scales."""
    deploy_hpa_demo(local_cluster, core, namespace, metrics=[{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 500}}}])
    result = chaos.run(experiment(namespace, [CAPACITY, {"type": "scale-up-time", "to": 3, "max": "40s"}], FAILING))
    verdicts = by_check(result)
    capacity, scale_up = verdicts["capacity-follows-load"], verdicts["scale-up-time"]
    assert not capacity.passed and "of 500%" in capacity.message and "needs" in capacity.message, capacity.message
    assert not scale_up.passed and scale_up.measured.startswith("never in"), scale_up.message
    assert "cpu " in scale_up.message and "of 500%" in scale_up.message, scale_up.message


def test_max_replicas_below_the_need_fails_capacity_with_scaling_limited_and_a_long_window_fails_scale_down(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str) -> None:
    """maxReplicas 2 under a load that needs 4, and a 300 s scale-down stabilisation against `within: 15s`."""
    deploy_hpa_demo(local_cluster, core, namespace, maxReplicas=2,
                    behavior={"scaleDown": {"stabilizationWindowSeconds": 300}})
    result = chaos.run(experiment(namespace, [CAPACITY, {"type": "max-replicas-respected"},
                                              {"type": "scale-down", "to": 1, "within": "15s"}], FAILING))
    verdicts = by_check(result)
    capacity = verdicts["capacity-follows-load"]
    assert not capacity.passed and "ScalingLimited=True (TooManyReplicas" in capacity.message, capacity.message
    assert verdicts["max-replicas-respected"].passed, verdicts["max-replicas-respected"].message
    down = verdicts["scale-down"]
    assert not down.passed and "waits 300 s (behavior.scaleDown.stabilizationWindowSeconds)" in down.message, \
        down.message


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
