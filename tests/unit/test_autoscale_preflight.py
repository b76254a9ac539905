"""Bad input for an HPA on resource metrics, refused before any load starts: the metrics API missing or not
Available (an account that may not read it: a warning, the run goes on), a utilisation target on a container
without that request; and the pure parts that read the APIService and the pod template."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from resilience_tests.cluster.hpa import HpaState, ResourceTarget, hpa_state
from resilience_tests.cluster.metrics_api import (
    ContainerRequests,
    MetricsApi,
    metrics_api_state,
    read_metrics_api,
    template_requests,
)
from resilience_tests.experiment.preflight import PreflightError, check_autoscalers, check_resource_inputs
from tests.unit.test_autoscale_checks import HPA, _ctx, _experiment, _Listing

WHERE = "slas[0] (scale-up-time (from load-start))"
CPU = HpaState("Deployment/web", 1, 10, 1, 1, resources=(ResourceTarget("cpu", utilization=True),))
AVAILABLE = MetricsApi("available")
WEB = (ContainerRequests("web", frozenset({"cpu", "memory"})),)


def _refusal(state: HpaState = CPU, metrics: MetricsApi = AVAILABLE,
             containers: tuple[ContainerRequests, ...] | None = WEB) -> str:
    with pytest.raises(PreflightError) as caught:
        check_resource_inputs(WHERE, "web", state, metrics, containers)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_the_metrics_api_missing_or_not_available_is_refused() -> None:
    assert _refusal(metrics=MetricsApi("missing")) == (
        f"{WHERE}: HPA web scales on cpu from the resource metrics API, but APIService v1beta1.metrics.k8s.io is not "
        "registered (no metrics-server?): the HPA cannot see the load; install metrics-server (or wait until "
        "`kubectl get apiservice v1beta1.metrics.k8s.io` says Available) before the run")
    assert "is registered but not Available (FailedDiscoveryCheck: failing or missing response)" in _refusal(
        metrics=MetricsApi("unavailable", "FailedDiscoveryCheck: failing or missing response"))


def test_the_metrics_api_available_or_not_needed_is_accepted() -> None:
    assert check_resource_inputs(WHERE, "web", CPU, AVAILABLE, WEB) == []
    pods_only = HpaState("Deployment/web", 1, 10, 1, 1)  # a Pods metric: the custom metrics API, not this one
    assert check_resource_inputs(WHERE, "web", pods_only, MetricsApi("missing"), ()) == []


def test_an_account_that_may_not_read_apiservices_gets_a_warning_and_goes_on() -> None:
    unknown = MetricsApi("unknown", "this account may not read apiservices (HTTP 403)")
    warning, = check_resource_inputs(WHERE, "web", CPU, unknown, WEB)
    assert warning.startswith(f"warning: {WHERE}: cannot tell whether the resource metrics API "
                              "(v1beta1.metrics.k8s.io) serves, which HPA web needs for cpu: this account may not "
                              "read apiservices (HTTP 403); going on"), warning


def test_a_utilization_target_on_a_container_without_the_request_is_refused_naming_it() -> None:
    sidecar = (*WEB, ContainerRequests("proxy", frozenset({"memory"})))
    assert _refusal(containers=sidecar) == (
        f"{WHERE}: HPA web scales Deployment/web on cpu utilization, but its container proxy requests no cpu: the "
        "HPA cannot compute a utilization (FailedGetResourceMetric) and never scales; set resources.requests.cpu "
        "on container proxy, or use an AverageValue target")
    memory = HpaState("Deployment/web", 1, 10, 1, 1, resources=(ResourceTarget("memory", utilization=True),))
    assert "its container web requests no memory" in _refusal(memory, containers=(ContainerRequests(
        "web", frozenset({"cpu"})),))
    one = HpaState("Deployment/web", 1, 10, 1, 1, resources=(ResourceTarget("cpu", "proxy", utilization=True),))
    assert "its container proxy requests no cpu" in _refusal(one, containers=sidecar)
    assert "has no container 'db' (containers: web)" in _refusal(
        HpaState("Deployment/web", 1, 10, 1, 1, resources=(ResourceTarget("cpu", "db", utilization=True),)))


def test_requests_that_are_there_or_not_needed_are_accepted() -> None:
    sidecar = (*WEB, ContainerRequests("proxy", frozenset({"memory"})),
               ContainerRequests("setup", frozenset(), init=True))  # init containers are not counted
    assert check_resource_inputs(WHERE, "web", CPU, AVAILABLE, WEB[:1] + sidecar[2:]) == []
    only_web = HpaState("Deployment/web", 1, 10, 1, 1, resources=(ResourceTarget("cpu", "web", utilization=True),))
    assert check_resource_inputs(WHERE, "web", only_web, AVAILABLE, sidecar) == []
    average = HpaState("Deployment/web", 1, 10, 1, 1, resources=(ResourceTarget("cpu"),))  # AverageValue
    assert check_resource_inputs(WHERE, "web", average, AVAILABLE, sidecar) == []
    assert check_resource_inputs(WHERE, "web", CPU, AVAILABLE, None) == []  # a target whose template is not read


# ------------------------------------------------------------------ reading (pure parts and fakes)
def test_an_hpa_s_resource_metrics_are_read_from_its_spec() -> None:
    assert hpa_state(HPA).resources == (ResourceTarget("cpu", "", True),)
    container = {"type": "ContainerResource", "containerResource": {
        "name": "memory", "container": "web", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}
    hpa = copy.deepcopy(HPA)
    hpa["spec"]["metrics"] = [container]
    assert hpa_state(hpa).resources == (ResourceTarget("memory", "web", False),)


def test_the_apiservice_and_the_pod_template_become_typed_values() -> None:
    ok = {"status": {"conditions": [{"type": "Available", "status": "True"}]}}
    down = {"status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints",
                                       "message": "endpoints for service/metrics-server have no addresses"}]}}
    assert metrics_api_state(ok) == MetricsApi("available")
    assert metrics_api_state(down) == MetricsApi("unavailable", "MissingEndpoints: endpoints for "
                                                                "service/metrics-server have no addresses")
    assert metrics_api_state({}).state == "unavailable"
    template = {"spec": {"template": {"spec": {
        "containers": [{"name": "web", "resources": {"requests": {"cpu": "200m"}}}, {"name": "proxy"}],
        "initContainers": [{"name": "setup", "resources": {"requests": {"memory": "8Mi"}}}]}}}}
    assert template_requests(template) == (ContainerRequests("web", frozenset({"cpu"})),
                                            ContainerRequests("proxy", frozenset()),
                                            ContainerRequests("setup", frozenset({"memory"}), True))


def _kube(apiservice: dict[str, Any] | int, deployment: dict[str, Any] | int | None = None) -> Any:
    def read_api_service(name: str, **kwargs: object) -> _Listing:
        assert name == "v1beta1.metrics.k8s.io"
        if isinstance(apiservice, int):
            raise ApiException(status=apiservice)
        listing = _Listing([])
        listing.data = json.dumps(apiservice).encode()
        return listing

    def read_namespaced_deployment(name: str, namespace: str, **kwargs: object) -> _Listing:
        if isinstance(deployment, int):
            raise ApiException(status=deployment)
        listing = _Listing([])
        listing.data = json.dumps(deployment or {}).encode()
        return listing

    return SimpleNamespace(raw=SimpleNamespace(
        autoscaling=SimpleNamespace(list_namespaced_horizontal_pod_autoscaler=lambda ns, **kw: _Listing([HPA])),
        apiregistration=SimpleNamespace(read_api_service=read_api_service),
        apps=SimpleNamespace(read_namespaced_deployment=read_namespaced_deployment)))


AVAILABLE_API = {"status": {"conditions": [{"type": "Available", "status": "True"}]}}
REQUESTING = {"spec": {"template": {"spec": {"containers": [{"name": "web", "resources": {
    "requests": {"cpu": "200m"}}}]}}}}


def test_read_metrics_api_says_missing_or_unknown_for_a_refusal() -> None:
    assert read_metrics_api(_kube(404)) == MetricsApi("missing")
    assert read_metrics_api(_kube(403)).state == "unknown"
    assert read_metrics_api(_kube(AVAILABLE_API)) == MetricsApi("available")


def test_the_preflight_reads_the_metrics_api_and_the_target_s_requests_before_any_load() -> None:
    exp = _experiment({"type": "scale-up-time", "to": 3, "max": "60s"})
    said: list[str] = []
    check_autoscalers(_kube(AVAILABLE_API, REQUESTING), exp, _ctx(), said.append)
    assert said == []
    with pytest.raises(PreflightError, match=r"APIService v1beta1.metrics.k8s.io is not registered"):
        check_autoscalers(_kube(404, REQUESTING), exp, _ctx())
    bare = {"spec": {"template": {"spec": {"containers": [{"name": "web"}]}}}}
    with pytest.raises(PreflightError, match=r"its container web requests no cpu"):
        check_autoscalers(_kube(AVAILABLE_API, bare), exp, _ctx())
    with pytest.raises(PreflightError, match=r"HPA web scales Deployment/web: deployment/web in demo does not exist; "
                                             r"fix the HPA's scaleTargetRef$"):
        check_autoscalers(_kube(AVAILABLE_API, 404), exp, _ctx())
    check_autoscalers(_kube(403, REQUESTING), exp, _ctx(), said.append)
    assert len(said) == 1 and said[0].startswith("warning: ") and "HTTP 403" in said[0], said


def test_capacity_follows_load_on_a_target_without_an_hpa_is_refused_and_accepted_with_one() -> None:
    exp = _experiment({"type": "capacity-follows-load", "per_replica_rps": 10, "max_replicas": 10})
    kube = _kube(AVAILABLE_API, REQUESTING)
    kube.raw.autoscaling.list_namespaced_horizontal_pod_autoscaler = lambda ns, **kw: _Listing([])
    with pytest.raises(PreflightError, match=r"^slas\[0\] \(capacity-follows-load\): no HorizontalPodAutoscaler "
                                             r"targets deployment/web in demo \(HPAs in namespace demo: none\)"):
        check_autoscalers(kube, exp, _ctx())
    check_autoscalers(_kube(AVAILABLE_API, REQUESTING), exp, _ctx())
