"""SLA checks against the demo app on real nodes, with real Locust load: each passes on the well-behaved
app and fails, for the right reason, on a misbehaving variant or a badly spread Deployment."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from resilience_tests.chaos import Chaos
from resilience_tests.cluster.kube import Kube, Workload
from resilience_tests.errors import UsageError
from resilience_tests.experiment.runner import RunResult
from resilience_tests.load.locust import LoadError
from resilience_tests.sla.checks import Verdict
from resilience_tests.testbed.cluster import LocalCluster
from tests.cluster.helpers import deploy_demo
from tests.load.recording import RECORDING_LOCUSTFILE, true_availability, truth_by_second

pytestmark = pytest.mark.usefixtures("real_nodes")


def experiment(namespace: str, faults: list[dict[str, Any]], slas: list[dict[str, Any]], *,
               users: int = 10, duration: str = "25s", **extra: Any) -> dict[str, Any]:
    return {"name": "sla", "target": {"namespace": namespace, "workload": "deployment/web"},
            "guardrails": {"max_pods": 4}, "settle": "2s", "faults": faults,
            "load": {"shape": {"type": "constant", "users": users, "duration": duration}, **extra.pop("load", {})},
            "slas": slas, **extra}


def by_check(result: RunResult) -> dict[str, Verdict]:
    return {v.check.split(" (")[0]: v for v in result.verdicts}  # "recovery-time (from start)" -> "recovery-time"


ROLLOUT = [{"type": "rollout", "at": "3s", "action": "restart", "timeout": "60s"}]


def test_a_rollout_of_the_graceful_app_passes_every_check(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str) -> None:
    deploy_demo(local_cluster, core, namespace)
    result = chaos.run(experiment(namespace, ROLLOUT, [
        {"type": "no-failed-requests", "window": "fault:rollout"},
        {"type": "graceful-shutdown", "window": "fault:rollout"},
        {"type": "error-rate", "max": "0.5%"},
        {"type": "latency", "percentile": 99, "max": "500ms"},
        {"type": "availability", "min": "99%"},
        {"type": "throughput", "min": 20},
        {"type": "recovery-time", "window": "fault:rollout", "max": "20s"},
        {"type": "zone-spread", "min_zones": 2, "max_skew": 1},
        {"type": "survives-zone-loss", "min_capacity": "50%"},
    ], steady_state=[{"type": "error-rate", "max": "1%"}, {"type": "zone-spread", "min_zones": 2}]))
    assert result.load is not None and result.load.complete, result.load
    assert sum(s.requests for s in result.load.samples) > 500
    assert "locust" not in sys.modules and "gevent" not in sys.modules  # Locust ran in its own processes
    assert [v.check for v in result.steady if v.passed] == ["error-rate", "zone-spread"]
    assert not result.failed_verdicts, "\n".join(v.message for v in result.failed_verdicts)
    terminated = by_check(result)["graceful-shutdown"].measured
    assert terminated.startswith("0 of 4 terminations"), terminated  # four old pods were judged


def test_a_rollout_of_the_exit_at_once_app_fails_requests_and_graceful_shutdown(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str) -> None:
    deploy_demo(local_cluster, core, namespace, misbehave="exit-on-term", prestop=False)
    # Slow answers keep about 4 requests in flight on each pod, so each pod that exits at once drops some
    # (with 50 ms answers a run could see all four exits fall between requests).
    result = chaos.run(experiment(namespace, ROLLOUT, [
        {"type": "no-failed-requests", "window": "fault:rollout"},
        {"type": "graceful-shutdown", "window": "fault:rollout"},
    ], users=20, load={"path": "/?sleep=300ms"}))
    verdicts = by_check(result)
    assert not verdicts["no-failed-requests"].passed, verdicts["no-failed-requests"].message
    assert "requests failed" in verdicts["no-failed-requests"].measured
    shutdown = verdicts["graceful-shutdown"]
    assert not shutdown.passed and "exited 1" in shutdown.message, shutdown.message


def test_a_pod_ignoring_sigterm_fails_graceful_shutdown_with_exit_137(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str) -> None:
    deploy_demo(local_cluster, core, namespace, misbehave="ignore-term", prestop=False, grace=3, replicas=2)
    result = chaos.run(experiment(namespace, [{"type": "pod-kill", "at": "2s", "count": 1}],
                                  [{"type": "graceful-shutdown", "window": "fault:pod-kill"}],
                                  duration="15s", settle="8s"))
    shutdown = by_check(result)["graceful-shutdown"]
    assert not shutdown.passed and "killed (SIGKILL, exit 137)" in shutdown.message and "(grace 3s)" in shutdown.message


def test_errors_fail_error_rate_availability_and_throughput(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str) -> None:
    deploy_demo(local_cluster, core, namespace, misbehave="errors", args=("--error-ratio=0.7",), replicas=2)
    result = chaos.run(experiment(namespace, [{"type": "pod-kill", "at": "2s", "count": 1}], [
        {"type": "error-rate", "max": "1%"},
        {"type": "availability", "min": "90%"},
        {"type": "throughput", "min": 40},
    ], duration="12s"))
    verdicts = by_check(result)
    assert not verdicts["error-rate"].passed and "HTTP 500" in verdicts["error-rate"].message
    rate = float(verdicts["error-rate"].measured.split("%")[0])
    assert 55 < rate < 85, verdicts["error-rate"].measured
    assert not verdicts["availability"].passed, verdicts["availability"].message
    assert not verdicts["throughput"].passed, verdicts["throughput"].message


def test_slow_answers_fail_the_latency_check(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str) -> None:
    deploy_demo(local_cluster, core, namespace, replicas=2)
    checks = [{"type": "latency", "percentile": 95, "max": "100ms"}]
    fast = chaos.run(experiment(namespace, [{"type": "pod-kill", "at": "2s", "count": 1}], checks, duration="10s"))
    assert by_check(fast)["latency"].passed, by_check(fast)["latency"].message
    slow = chaos.run(experiment(namespace, [{"type": "pod-kill", "at": "2s", "count": 1}], checks, duration="10s",
                                load={"path": "/?sleep=300ms"}))
    latency = by_check(slow)["latency"]
    assert not latency.passed and latency.measured.startswith("p95 = 3"), latency.message


def test_replicas_pinned_to_one_zone_fail_zone_spread_and_zone_loss(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str,
        real_nodes: list[str]) -> None:
    deploy_demo(local_cluster, core, namespace, zone="zone-a", replicas=3)
    result = chaos.run(experiment(namespace, [{"type": "pod-kill", "at": "1s", "count": 1}], [
        {"type": "zone-spread", "min_zones": 2},
        {"type": "survives-zone-loss", "min_capacity": "50%"},
    ], duration="8s"))
    verdicts = by_check(result)
    assert not verdicts["zone-spread"].passed and "'zone-a': 3" in verdicts["zone-spread"].message
    zone_loss = verdicts["survives-zone-loss"]
    assert not zone_loss.passed and zone_loss.measured == "0% left after losing zone-a", zone_loss.message


@pytest.mark.parametrize("variant, passes", [({}, True), ({"misbehave": "slow-start",
                                                            "args": ("--start-delay=15s",)}, False)])
def test_recovery_time_after_pods_are_killed(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str,
        variant: dict[str, Any], passes: bool) -> None:
    deploy_demo(local_cluster, core, namespace, replicas=2, **variant)
    result = chaos.run(experiment(namespace, [{"type": "pod-kill", "at": "2s", "count": 2}],
                                  [{"type": "recovery-time", "window": "fault:pod-kill", "from": "start",
                                    "max": "10s"}], duration="30s"))
    recovery = by_check(result)["recovery-time"]
    assert recovery.passed is passes, recovery.message
    if not passes:  # 15 s of start-up (and the liveness probe restarting it) against 10 s allowed
        assert recovery.measured == "not recovered by the end of the run" or \
            float(recovery.measured.rstrip("s")) > 12, recovery.message


def test_an_unmet_steady_state_stops_before_any_fault(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, cluster: Kube, namespace: str) -> None:
    deploy_demo(local_cluster, core, namespace, misbehave="errors", args=("--error-ratio=0.3",), replicas=2)
    web = Workload("deployment", namespace, "web")
    result = chaos.run(experiment(namespace, [{"type": "scale", "at": "1s", "replicas": 1, "duration": "5s"}],
                                  [{"type": "no-failed-requests"}], steady_state=[{"type": "error-rate", "max": "1%"}],
                                  steady_window="3s"))
    assert result.aborted.startswith("steady state not met before any fault: error-rate measured"), result.aborted
    assert not result.windows and not [r for r in result.records if r.kind == "fault"]
    assert cluster.replicas(web) == 2


def test_an_unreachable_target_stops_before_any_fault(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str) -> None:
    deploy_demo(local_cluster, core, namespace, replicas=1)
    with pytest.raises(LoadError, match=r"load target http://127.0.0.1:1/ does not answer"):
        chaos.run(experiment(namespace, [{"type": "pod-kill", "count": 1}], [], load={"url": "http://127.0.0.1:1"}))
    with pytest.raises(UsageError, match="locustfile 'nope.py' not found"):
        chaos.run(experiment(namespace, [{"type": "pod-kill", "count": 1}], [], load={"locustfile": "nope.py"}))


def test_locust_crashing_mid_run_makes_load_checks_fail_as_incomplete(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str, tmp_path: Path) -> None:
    deploy_demo(local_cluster, core, namespace, replicas=1)
    crashing = tmp_path / "crashing.py"
    crashing.write_text(
        "import os, time\nfrom locust import FastHttpUser, constant, task\nSTART = time.time()\n\n"
        "class Crashing(FastHttpUser):\n    wait_time = constant(0.1)\n\n    @task\n    def get(self):\n"
        "        self.client.get('/')\n        if time.time() - START > 6:\n            os._exit(3)\n")
    result = chaos.run(experiment(namespace, [{"type": "pod-kill", "at": "1s", "count": 1}],
                                  [{"type": "no-failed-requests"}], duration="20s",
                                  load={"locustfile": str(crashing)}))
    verdict = by_check(result)["no-failed-requests"]
    assert result.load is not None and not result.load.complete
    assert not verdict.passed and verdict.measured == "incomplete load", verdict.message
    assert "exit code 3" in verdict.message or "ended" in verdict.message, verdict.message


def test_a_total_outage_with_hanging_requests_fails_availability_at_the_true_value(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, real_nodes: list[str]) -> None:
    """Every replica on one real node, frozen for 8 s: packets to its pods are dropped, so Locust's users hang
    in their 3 s timeouts and whole seconds go by with nothing sent. Those seconds are down; the measured
    availability equals the one computed from Locust's own per-request events."""
    deploy_demo(local_cluster, core, namespace, zone="zone-a", replicas=2)
    locustfile = tmp_path / "recording.py"
    locustfile.write_text(RECORDING_LOCUSTFILE)
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("RT_TEST_RECORD", str(record))
    result = chaos.run(experiment(namespace, [{"type": "node-failure", "at": "4s", "duration": "8s",
                                               "nodes": {"names": ["real-a1"]}}], [
        {"type": "availability", "min": "50%", "window": "fault:node-failure"},
        {"type": "availability", "min": "90%"},
        {"type": "no-failed-requests", "window": "fault:0"},
    ], duration="22s", load={"locustfile": str(locustfile), "timeout": "3s"}))
    assert result.load is not None and result.load.complete, result.load
    during, whole, failed = result.verdicts
    window = result.windows[0]
    begun = next(r.t for r in result.records if r.kind == "fault" and r.change == "start")
    acted = next(r.t for r in result.records if r.kind == "action" and r.name == "node-failure")
    assert begun < window.start <= acted, "the window starts where the node froze, not where the fault began"
    truth = {t: v for t, v in truth_by_second([json.loads(x) for x in record.read_text().splitlines()]).items()
             if t + 1 > window.start and t < (window.end or 0)}
    up, judged = true_availability(truth)
    silent = sum(1 for sent, _, carried, _ in truth.values() if sent == 0 and carried > 0)
    assert not during.passed and during.measured == f"{up / judged:.2%} ({up}/{judged} s up)", during.message
    assert silent >= 3 and f"{silent} s with nothing sent" in during.message, (truth, during.message)
    assert not whole.passed, whole.message
    assert not failed.passed and "timeout" in failed.message, failed.message


def test_a_slow_start_rollout_fails_recovery_time_by_default(
        local_cluster: LocalCluster, core: client.CoreV1Api, chaos: Chaos, namespace: str) -> None:
    """A rollout waits until every new pod is ready, so measured from its end recovery is always 0 s; measured
    from its start (the default), the new version's start-up shows."""
    deploy_demo(local_cluster, core, namespace, misbehave="slow-start", args=("--start-delay=6s",), replicas=2)
    result = chaos.run(experiment(namespace, ROLLOUT, [
        {"type": "recovery-time", "window": "fault:rollout", "max": "5s"},
        {"type": "recovery-time", "window": "fault:rollout", "max": "5s", "from": "end"},
    ], duration="30s"))
    default, from_end = result.verdicts
    assert not default.passed and float(default.measured.rstrip("s")) > 10, default.message
    assert default.check == "recovery-time (from start)" and "revision pod-template-hash=" in default.message
    assert from_end.passed and from_end.measured == "0.0s", from_end.message
    assert default.key != from_end.key
