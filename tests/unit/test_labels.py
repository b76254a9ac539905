"""The one label matcher (resilience_tests/labels.py): LabelSelectors as the API server reads them, equality maps,
and the callers that used to match labels on their own."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client

from resilience_tests.cluster.client import ClusterRef
from resilience_tests.cluster.kube import Kube
from resilience_tests.labels import has_labels, selects
from resilience_tests.load.target import TargetError, service_url

WEB = {"app": "web", "tier": "front"}


def expression(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, **({"values": list(values)} if values else {})}


def test_match_labels_needs_every_pair() -> None:
    assert selects({"matchLabels": {"app": "web"}}, WEB)
    assert selects({"matchLabels": {"app": "web", "tier": "front"}}, WEB)
    assert not selects({"matchLabels": {"app": "web", "tier": "back"}}, WEB)
    assert not selects({"matchLabels": {"zone": "a"}}, WEB)


@pytest.mark.parametrize(("requirement", "selected"), [
    (expression("app", "In", "web", "api"), True),
    (expression("app", "In", "api"), False),
    (expression("missing", "In", "web"), False),
    (expression("app", "NotIn", "api"), True),
    (expression("app", "NotIn", "web", "api"), False),
    (expression("missing", "NotIn", "web"), True),  # a pod without the label is not in the set
    (expression("tier", "Exists"), True),
    (expression("missing", "Exists"), False),
    (expression("missing", "DoesNotExist"), True),
    (expression("tier", "DoesNotExist"), False),
])
def test_each_match_expressions_operator(requirement: dict[str, Any], selected: bool) -> None:
    assert selects({"matchExpressions": [requirement]}, WEB) is selected


def test_match_labels_and_expressions_are_all_required() -> None:
    both = {"matchLabels": {"app": "web"}, "matchExpressions": [expression("tier", "In", "front")]}
    assert selects(both, WEB)
    assert not selects({**both, "matchExpressions": [expression("tier", "In", "front"),
                                                     expression("tier", "DoesNotExist")]}, WEB)
    assert not selects(both, {"app": "web"})


def test_an_empty_selector_selects_everything_and_a_null_one_nothing() -> None:
    """metav1.LabelSelectorAsSelector: nil -> labels.Nothing(), empty -> labels.Everything() (a policy/v1 PDB
    with a null selector protects no pod, with ``{}`` every pod of its namespace)."""
    for labels in (WEB, {}):
        assert selects({}, labels)
        assert selects({"matchLabels": {}, "matchExpressions": []}, labels)
        assert not selects(None, labels)


@pytest.mark.parametrize("invalid", [
    {"matchExpressions": [expression("app", "Equals", "web")]},  # unknown operator
    {"matchExpressions": [expression("app", "NotIn")]},  # In / NotIn need values
    {"matchExpressions": [expression("app", "In")]},
    {"matchExpressions": [expression("app", "Exists", "web")]},  # Exists / DoesNotExist take none
    {"matchExpressions": [expression("missing", "DoesNotExist", "x")]},
    {"matchExpressions": ["app in (web)"]},
    {"matchExpressions": {"key": "app", "operator": "Exists"}},
    {"matchExpressions": [{"key": "app", "operator": "In", "values": "web"}]},
    {"matchLabels": ["app=web"]},
    "app=web",
])
def test_an_invalid_selector_selects_nothing(invalid: Any) -> None:
    assert not selects(invalid, WEB)


def test_equality_maps_compare_as_text_and_an_empty_one_is_met_by_anything() -> None:
    assert has_labels(WEB, {"app": "web"}) and has_labels(WEB, {}) and has_labels({}, {})
    assert not has_labels(WEB, {"app": "api"}) and not has_labels({}, {"app": "web"})
    assert has_labels({"version": "2"}, {"version": 2})  # a manifest's `version: 2`
    assert selects({"matchLabels": {"version": 2}}, {"version": "2"})


def test_a_service_without_a_selector_sends_the_load_nowhere() -> None:
    """Service selectors are equality maps whose empty form selects no pod (its endpoints are managed by hand)."""
    def svc(selector: dict[str, str] | None) -> client.V1Service:
        return client.V1Service(metadata=client.V1ObjectMeta(name="web"), spec=client.V1ServiceSpec(
            type="NodePort", selector=selector, ports=[client.V1ServicePort(name="http", port=80, node_port=30080)]))

    assert service_url([svc({"app": "web"})], WEB, "demo", "https://127.0.0.1:6443") == "http://127.0.0.1:30080"
    with pytest.raises(TargetError, match="reaches the target"):
        service_url([svc(None), svc({})], WEB, "demo", "https://127.0.0.1:6443")


def test_the_pdbs_blocking_an_eviction_are_matched_with_their_whole_selector() -> None:
    """Kube.blocking_pdbs reads each PDB's selector as the API writes it: matchExpressions count, a null
    selector protects nothing, an empty one everything."""
    pdbs = {
        "by-labels": client.V1LabelSelector(match_labels={"app": "web"}),
        "by-expression": client.V1LabelSelector(match_expressions=[
            client.V1LabelSelectorRequirement(key="tier", operator="In", values=["front"])]),
        "other-expression": client.V1LabelSelector(match_expressions=[
            client.V1LabelSelectorRequirement(key="tier", operator="NotIn", values=["front"])]),
        "everything": client.V1LabelSelector(),
        "null": None,
        "other": client.V1LabelSelector(match_labels={"app": "api"}),
    }
    budgets = [client.V1PodDisruptionBudget(
        metadata=client.V1ObjectMeta(name=name), spec=client.V1PodDisruptionBudgetSpec(selector=selector),
        status=client.V1PodDisruptionBudgetStatus(current_healthy=2, desired_healthy=2, disruptions_allowed=0,
                                                  expected_pods=2))
        for name, selector in pdbs.items()]
    kube = Kube(client.ApiClient(), ClusterRef("/nonexistent/kubeconfig"))
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="web-1", labels=WEB))
    kube.raw.core = SimpleNamespace(read_namespaced_pod=lambda name, namespace: pod)
    kube.raw.policy = SimpleNamespace(
        list_namespaced_pod_disruption_budget=lambda namespace: SimpleNamespace(items=budgets))
    assert kube.blocking_pdbs("web-1", "demo") == ["by-labels", "by-expression", "everything"]
