"""The autoscaling checks pass on a target whose capacity follows its load and fail, for the right reason, on one
that does not (synthetic samples and timelines, pure); the HPA record; the preflight that finds the HPA."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace
from typing import Any

import pytest

from resilience_tests.cluster.hpa import HpaCondition, HpaMetric, HpaState, hpa_records, hpa_state
from resilience_tests.cluster.kube import Workload
from resilience_tests.cluster.timeline import PodState, Record
from resilience_tests.errors import ResilienceError
from resilience_tests.experiment.model import ExperimentError, parse_experiment
from resilience_tests.experiment.preflight import PreflightError, check_autoscalers
from resilience_tests.faults.base import load_registry
from resilience_tests.load.samples import Sample
from resilience_tests.sla.autoscale_checks import autoscaler
from resilience_tests.sla.checks import Verdict, evaluate, parse_check
from resilience_tests.sla.evidence import Evidence, FaultWindow

T0 = 1_000.0
END = 120


def rate(i: int) -> int:
    """The ramp: 10 req/s more every 10 s up to 60 at +50 s, held to +90 s, then 5 req/s to the end."""
    return 5 if i >= 90 else min(60, 10 * (1 + i // 10))


def samples(rates: Any = rate, *, fail_from: int | None = None, reason: str = "connection refused") -> list[Sample]:
    """One sample per second; every request from ``fail_from`` on fails."""
    out = []
    for i in range(END):
        sample = Sample(int(T0) + i, users=rates(i))
        for _ in range(rates(i)):
            failed = fail_from is not None and i >= fail_from
            sample.add(5, failed=failed, t=T0 + i + 0.5, name="GET /", reason=reason if failed else "")
        out.append(sample)
    return out


def pods(levels: list[tuple[float, int]]) -> list[Record]:
    """Pod records making the ready replicas of the target follow ``levels`` ((seconds, ready) steps)."""
    records, live = [], []
    for t, count in levels:
        while len(live) < count:
            name = f"demo/web-{len(live)}-{int(t)}"
            live.append(name)
            records.append(Record(T0 + t, "pod", name, "updated", pod=PodState(phase="Running", ready=True,
                                                                                labels={"app": "web"})))
        while len(live) > count:
            name = live.pop()
            going = PodState(phase="Running", ready=True, terminating=True, labels={"app": "web"})
            records.append(Record(T0 + t, "pod", name, "updated", pod=going))
            records.append(Record(T0 + t + 0.5, "pod", name, "deleted", pod=PodState(labels={"app": "web"})))
    return records


def following(lag: int = 10) -> list[tuple[float, int]]:
    """Ready replicas ``lag`` seconds behind ceil(rate / 10), and back to 1 eighteen seconds after the load drops
    (after the 15 s lag and 3 s of smoothing of CAPACITY)."""
    steps = [(-5.0, 1)] + [(float(i + lag), min(6, 1 + i // 10)) for i in range(0, 60, 10)]
    return [*steps, (108.0, 1)]


def hpa(t: float, desired: int, *, cpu: str = "45%", target: str = "50%", max_replicas: int = 10,
        limited: bool = False, down: int = 300) -> Record:
    conditions = (HpaCondition("AbleToScale", "True", "ReadyForNewScale"),
                  HpaCondition("ScalingActive", "True", "ValidMetricFound"),
                  HpaCondition("ScalingLimited", "True" if limited else "False",
                               "TooManyReplicas" if limited else "DesiredWithinRange",
                               "the desired replica count is more than the maximum replica count" if limited else ""))
    state = HpaState("Deployment/web", 1, max_replicas, desired, desired, (HpaMetric("cpu", cpu, target),),
                     conditions, down)
    return Record(T0 + t, "hpa", "demo/web", "updated", data=state)


def evidence(load: list[Sample] | None = None, ready: list[tuple[float, int]] | None = None,
             hpas: list[Record] | None = None, *, workload: str = "deployment/web") -> Evidence:
    records = pods(ready if ready is not None else following()) + (hpas if hpas is not None else [hpa(0, 1)])
    return Evidence(started=T0, ended=T0 + END, samples=samples() if load is None else load, records=records,
                    faults=[FaultWindow(0, "pod-kill", T0 + 30, T0 + 31)], selector={"app": "web"},
                    load_complete=True, zero=T0, workload=workload)


def verdict(check: dict[str, object], ev: Evidence) -> Verdict:
    (result,) = evaluate([parse_check(check)], ev)
    return result


CAPACITY = {"type": "capacity-follows-load", "per_replica_rps": 10, "max_replicas": 10, "lag": "15s"}


# ------------------------------------------------------------------ capacity-follows-load
def test_capacity_that_follows_the_ramp_within_lag_passes() -> None:
    good = verdict(CAPACITY, evidence())
    assert good.passed, good.message
    assert good.measured == "0 of 105 s below need" and good.numbers is not None and good.numbers.value == 0


def test_an_hpa_that_never_scales_fails_capacity_naming_the_metric_it_saw() -> None:
    never = evidence(ready=[(-5, 1)], hpas=[hpa(0, 1, cpu="45%", target="90%")])
    bad = verdict(CAPACITY, never)
    assert not bad.passed and bad.measured.endswith("s below need"), bad.message
    assert "needs 2, ready 1" in bad.message and "HPA web at" in bad.message
    assert "cpu 45% of 90%" in bad.message, bad.message


def test_capacity_that_lags_more_than_lag_fails() -> None:
    bad = verdict(CAPACITY, evidence(ready=following(lag=25)))
    assert not bad.passed and "+25s..+34s (9 s): 13.3 ok req/s at +10s needs 2, ready 1" in bad.message, bad.message


def test_after_a_drop_capacity_is_judged_by_the_demand_that_is_left() -> None:
    """The HPA removes replicas 3 s after the load fell, well inside lag + smooth (18 s): by the demand of 15 s
    ago that is short, by the demand now (5 req/s sent: one replica) it is enough. A fall to 30 req/s still
    needs 3: one replica is short, and the evidence says the need is the fallen load's."""
    early = [*following()[:-1], (93.0, 1)]
    good = verdict(CAPACITY, evidence(ready=early))
    assert good.passed, good.message
    half = samples(lambda i: 30 if i >= 90 else rate(i))
    bad = verdict(CAPACITY, evidence(half, ready=early))
    assert not bad.passed, bad.message
    assert "+92s..+120s (28 s): 30.0 req/s sent (the load fell) needs 3, ready 1" in bad.message, bad.message
    still = verdict(CAPACITY, evidence(half, ready=[*following()[:-1], (93.0, 3)]))
    assert still.passed, still.message


def test_max_replicas_below_the_need_fails_with_scaling_limited_in_the_evidence() -> None:
    capped = evidence(ready=[(-5, 1), (20, 3)], hpas=[hpa(0, 1, max_replicas=3), hpa(19, 3, cpu="180%",
                                                                                      max_replicas=3, limited=True)])
    bad = verdict(CAPACITY, capped)
    assert not bad.passed, bad.message
    assert "ScalingLimited=True (TooManyReplicas: the desired replica count is more than the maximum" in bad.message
    assert "needs 4, ready 3" in bad.message


def test_a_total_outage_does_not_pass_capacity_by_needing_no_replica() -> None:
    """Every request fails from +40 s: 0 successful requests/s would need 0 replicas; those seconds fail instead."""
    down = verdict(CAPACITY, evidence(samples(fail_from=40), ready=[(-5, 1), (10, 2), (20, 3), (30, 4)]))
    assert not down.passed, down.message
    assert "65 of them with the load down 15s earlier" in down.message, down.message
    assert "+55s..+120s (65 s): load down then: demand unknown" in down.message


def test_a_window_with_no_request_fails_capacity_saying_so() -> None:
    idle = verdict(CAPACITY, evidence(samples(lambda i: 0), ready=[(-5, 1)]))
    assert not idle.passed and idle.measured == "0 requests", idle.message
    short = verdict({**CAPACITY, "lag": "200s"}, evidence())
    assert not short.passed and short.measured == "no second judged", short.message
    incomplete = evidence()
    incomplete.load_complete = False
    assert verdict(CAPACITY, incomplete).measured == "incomplete load"


# ------------------------------------------------------------------ scale-up-time
def test_scale_up_time_from_the_load_start_and_from_a_fault() -> None:
    good = verdict({"type": "scale-up-time", "to": 6, "max": "70s"}, evidence())
    assert good.passed and good.measured == "60.0s" and good.check == "scale-up-time (from load-start)", good.message
    late = verdict({"type": "scale-up-time", "to": 6, "max": "50s"}, evidence(hpas=[hpa(0, 1), hpa(50, 5)]))
    assert not late.passed and late.measured == "60.0s" and "HPA web at +50.0s: desired 5" in late.message
    fault = verdict({"type": "scale-up-time", "to": 4, "max": "15s", "from": "fault:pod-kill"}, evidence())
    assert fault.passed and fault.measured == "10.0s", fault.message


def test_scale_up_time_fails_when_never_reached_naming_the_metric() -> None:
    never = verdict({"type": "scale-up-time", "to": 6, "max": "60s"},
                    evidence(ready=[(-5, 1)], hpas=[hpa(0, 1, cpu="45%", target="90%")]))
    assert not never.passed and never.measured == "never in 120s", never.message
    assert never.numbers is not None and never.numbers.value is None
    assert "HPA web at +60.0s: desired 1, current 1 (1..10), cpu 45% of 90%" in never.message


# ------------------------------------------------------------------ scale-down
def test_scale_down_after_the_load_drops() -> None:
    good = verdict({"type": "scale-down", "to": 1, "within": "30s"}, evidence())
    assert good.passed and good.measured == "18.0s, 0 failed", good.message
    assert "load ended at +90.0s with 6 ready" in good.message


def test_a_stabilisation_longer_than_within_fails_scale_down() -> None:
    held = evidence(ready=following()[:-1], hpas=[hpa(0, 1), hpa(60, 6, down=300)])
    bad = verdict({"type": "scale-down", "to": 1, "within": "20s"}, held)
    assert not bad.passed and bad.measured == "never in 30s, 0 failed", bad.message
    assert "waits 300 s (behavior.scaleDown.stabilizationWindowSeconds)" in bad.message
    slow = verdict({"type": "scale-down", "to": 1, "within": "5s"}, evidence())
    assert not slow.passed and slow.measured == "18.0s, 0 failed"


def test_failed_requests_while_pods_go_fail_scale_down() -> None:
    bad = verdict({"type": "scale-down", "to": 1, "within": "30s"},
                  evidence(samples(fail_from=95, reason="HTTP 503")))
    assert not bad.passed and bad.measured == "18.0s, 65 failed", bad.message
    assert "GET /: HTTP 503" in bad.message


def test_a_load_held_to_its_end_leaves_nothing_to_see_scale_down() -> None:
    bad = verdict({"type": "scale-down", "to": 1, "within": "30s"},
                  evidence(samples(lambda i: min(60, 10 * (1 + i // 10))), ready=following()[:-1]))
    assert not bad.passed and bad.measured == "never in 0s, 0 failed", bad.message


# ------------------------------------------------------------------ no-flapping
def test_no_flapping_counts_direction_changes_of_desired_and_ready_replicas() -> None:
    good = verdict({"type": "no-flapping", "max_changes_per_minute": 1}, evidence())
    assert good.passed, good.message  # up, then down once after the load: one change
    flapping = [hpa(0, 1)] + [hpa(20 + 5 * i, 3 if i % 2 else 2) for i in range(8)]
    bad = verdict({"type": "no-flapping", "max_changes_per_minute": 2}, evidence(hpas=flapping))
    assert not bad.passed and bad.measured == "6 direction changes in 60 s", bad.message
    assert "desired (HPA web): 6 direction changes from +30.0s: 3->2 at +30.0s" in bad.message


# ------------------------------------------------------------------ max-replicas-respected
def test_max_replicas_respected() -> None:
    good = verdict({"type": "max-replicas-respected"}, evidence())
    assert good.passed and good.measured == "at most 6 running" and good.threshold.startswith("<= 10"), good.message
    bad = verdict({"type": "max-replicas-respected", "max": 4}, evidence())
    assert not bad.passed and "5 running at +50.0s, limit 4" in bad.message, bad.message
    none = verdict({"type": "max-replicas-respected"}, evidence(hpas=[]))
    assert not none.passed and none.measured == "no limit"


# ------------------------------------------------------------------ the HPA record
HPA = {
    "metadata": {"name": "web", "namespace": "demo"},
    "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 3,
             "metrics": [{"type": "Resource", "resource": {
                 "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                         {"type": "Pods", "pods": {"metric": {"name": "rps"},
                                                   "target": {"type": "AverageValue", "averageValue": "10"}}}],
             "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}}},
    "status": {"currentReplicas": 3, "desiredReplicas": 3,
               "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {
                   "averageUtilization": 180, "averageValue": "900m"}}}],
               "conditions": [{"type": "ScalingLimited", "status": "True", "reason": "TooManyReplicas",
                               "message": "the desired replica count is more than the maximum replica count"},
                              {"type": "ScalingActive", "status": "False", "reason": "FailedGetPodsMetric"}]},
}


def test_an_hpa_becomes_a_typed_state_that_the_journal_writes() -> None:
    state = hpa_state(HPA)
    assert state.targets("deployment", "web") and not state.targets("statefulset", "web")
    assert [m.shown() for m in state.metrics] == ["cpu 180% of 50%", "pods/rps unknown of 10"]
    assert state.down_stabilisation == 30 and state.condition("ScalingLimited") is not None
    assert state.seen() == ("desired 3, current 3 (1..3), cpu 180% of 50%, pods/rps unknown of 10; ScalingLimited=True "
                            "(TooManyReplicas: the desired replica count is more than the maximum replica count); "
                            "ScalingActive=False (FailedGetPodsMetric)")
    record = Record(5.0, "hpa", "demo/web", "added", data=state)
    written = json.loads(json.dumps(record.to_json()))
    assert written["details"]["desired_replicas"] == 3 and written["details"]["metrics"][0]["current"] == "180%"
    assert [r.hpa for r in hpa_records([record, Record(1.0, "node", "n", "added")])] == ["web"]
    assert hpa_records([record], "other") == []


# ------------------------------------------------------------------ preflight and the experiment file
class _Listing:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.data = json.dumps({"items": items}).encode()

    def release_conn(self) -> None:
        pass


def _kube(items: list[dict[str, Any]] | None = None, status: int = 0) -> Any:
    from kubernetes.client.exceptions import ApiException

    def lister(namespace: str, **kwargs: object) -> _Listing:
        if status:
            raise ApiException(status=status)
        return _Listing(items if items is not None else [HPA])

    def reader(body: dict[str, Any]) -> Any:  # the metrics API is there and the target requests cpu
        return lambda *args, **kwargs: SimpleNamespace(data=json.dumps(body).encode(), release_conn=lambda: None)

    available = {"status": {"conditions": [{"type": "Available", "status": "True"}]}}
    template = {"spec": {"template": {"spec": {"containers": [{"name": "web", "resources": {"requests": {
        "cpu": "200m"}}}]}}}}
    return SimpleNamespace(raw=SimpleNamespace(
        autoscaling=SimpleNamespace(list_namespaced_horizontal_pod_autoscaler=lister),
        apiregistration=SimpleNamespace(read_api_service=reader(available)),
        apps=SimpleNamespace(read_namespaced_deployment=reader(template))))


REGISTRY = load_registry()


def _experiment(*checks: dict[str, object], load: bool = True, workload: str | None = "deployment/web",
                section: str = "slas") -> Any:
    data: dict[str, object] = {"name": "ramp", "target": {"namespace": "demo", "workload": workload},
                               "faults": [{"type": "pod-kill", "count": 1}], section: list(checks)}
    if load:
        data["load"] = {"shape": {"type": "progressive", "users": 60, "step_users": 5, "step_every": "5s"}}
    return parse_experiment(data, REGISTRY)


def _ctx(kind: str = "deployment", name: str = "web") -> Any:
    return SimpleNamespace(namespace="demo", workload=Workload(kind, "demo", name))


def test_preflight_finds_the_hpa_of_the_target_or_refuses_in_one_line() -> None:
    exp = _experiment({"type": "scale-up-time", "to": 3, "max": "60s"})
    check_autoscalers(_kube(), exp, _ctx())  # the HPA whose scaleTargetRef is deployment/web
    with pytest.raises(PreflightError, match=r"^slas\[0\] \(scale-up-time \(from load-start\)\): no "
                                             r"HorizontalPodAutoscaler targets deployment/api in demo \(HPAs in "
                                             r"namespace demo: web\); apply an HPA") as caught:
        check_autoscalers(_kube(), exp, _ctx(name="api"))
    assert "\n" not in str(caught.value)
    named = _experiment({"type": "no-flapping", "hpa": "nope"})
    with pytest.raises(PreflightError, match=r"HorizontalPodAutoscaler 'nope' not found \(HPAs in namespace demo: "
                                             r"web\); fix hpa:"):
        check_autoscalers(_kube(), named, _ctx())
    with pytest.raises(PreflightError, match=r"cannot list the HorizontalPodAutoscalers .*HTTP 403.*deploy/rbac.yaml"):
        check_autoscalers(_kube(status=403), exp, _ctx())
    # max-replicas-respected with its own max needs no HPA.
    check_autoscalers(_kube(items=[]), _experiment({"type": "max-replicas-respected", "max": 4}), _ctx())
    assert issubclass(PreflightError, ResilienceError)


def test_the_experiment_file_refuses_autoscaling_checks_it_cannot_judge() -> None:
    with pytest.raises(ExperimentError, match=r"slas\[0\] \(scale-up-time \(from load-start\)\)\.from: load-start, "
                                              r"but the experiment has no `load:`"):
        _experiment({"type": "scale-up-time", "to": 3, "max": "60s"}, load=False)
    with pytest.raises(ExperimentError, match=r"\.from: window 'fault:drain' matches no fault"):
        _experiment({"type": "scale-up-time", "to": 3, "max": "60s", "from": "fault:drain"})
    with pytest.raises(ExperimentError, match=r"slas\[0\] \(capacity-follows-load\): reads load samples"):
        _experiment(CAPACITY, load=False)
    with pytest.raises(ExperimentError, match=r"slas\[0\] \(no-flapping\): judges an HPA; name it with hpa: NAME"):
        _experiment({"type": "no-flapping"}, workload=None)
    with pytest.raises(ExperimentError, match=r"steady_state\[0\] \(no-flapping\): judges how the target scaled"):
        _experiment({"type": "no-flapping"}, section="steady_state")
    with pytest.raises(ExperimentError, match=r"per_replica_rps: Input should be greater than 0"):
        _experiment({**CAPACITY, "per_replica_rps": 0})
    _experiment({"type": "no-flapping", "hpa": "web"}, workload=None)


def test_another_workloads_hpa_never_stands_in_for_the_targets() -> None:
    """The timeline recorded only an HPA of deployment/other: the target's capacity is not judged by it."""
    mine = hpa(5, 4)
    assert isinstance(mine.data, HpaState)
    other = Record(mine.t, "hpa", "demo/other", "updated", data=dataclasses.replace(mine.data,
                                                                                   target="Deployment/other"))
    assert autoscaler(evidence(ready=following(), hpas=[other]), None) == ("", [])
    assert autoscaler(evidence(ready=following(), hpas=[mine, other]), None)[0] == "web"
