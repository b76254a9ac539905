from __future__ import annotations

import pytest

from resilience_tests.cluster.selection import (
    Amount,
    NodeInfo,
    NodeSelector,
    PodInfo,
    SelectionError,
    parse_label_selector,
    parse_workload,
    select_nodes,
    select_pods,
    selector_text,
)

ZONE = "topology.kubernetes.io/zone"


def _nodes() -> list[NodeInfo]:
    nodes = [NodeInfo(f"sim-{z}{i}", {ZONE: f"zone-{z}"}) for z in "abc" for i in (1, 2)]
    return [*nodes, NodeInfo("cp-1", {ZONE: "zone-a", "node-role.kubernetes.io/control-plane": ""})]


def _pods(n: int, namespace: str = "demo") -> list[PodInfo]:
    return [PodInfo(f"web-{i}", namespace, node=f"sim-a{1 + i % 2}") for i in range(n)]


def test_count_and_percent() -> None:
    assert Amount(count=2).how_many(5) == 2
    assert Amount(count=9).how_many(5) == 5
    assert Amount(percent="50%").how_many(5) == 3
    assert Amount(percent="1%").how_many(5) == 1
    assert Amount(percent="0%").how_many(5) == 0  # nothing asked, nothing picked
    assert Amount().how_many(5) == 5
    with pytest.raises(ValueError, match="not both"):
        Amount(count=1, percent="10%")


def test_pod_selection_is_deterministic_per_seed_and_skips_terminating() -> None:
    pods = [*_pods(10), PodInfo("web-gone", "demo", terminating=True)]
    first = select_pods(pods, Amount(count=3), seed=7, allow_kube_system=False, max_pods=10, what="app=web")
    again = select_pods(pods, Amount(count=3), seed=7, allow_kube_system=False, max_pods=10, what="app=web")
    assert first == again and len(first) == 3
    assert "web-gone" not in {p.name for p in first}


def test_pod_selection_refuses_kube_system_and_blast_radius() -> None:
    with pytest.raises(SelectionError, match="no running pod matches"):
        select_pods(_pods(3, "kube-system"), Amount(), seed=0, allow_kube_system=False, max_pods=10, what="x")
    assert len(select_pods(_pods(3, "kube-system"), Amount(), seed=0, allow_kube_system=True, max_pods=10,
                           what="x")) == 3
    with pytest.raises(SelectionError, match="more than guardrails.max_pods=2"):
        select_pods(_pods(5), Amount(count=3), seed=0, allow_kube_system=False, max_pods=2, what="x")


def test_node_selection_by_zone_never_picks_the_control_plane() -> None:
    chosen = select_nodes(_nodes(), NodeSelector(zone="zone-a"), seed=1, allow_control_plane=False, max_nodes=5)
    assert [n.name for n in chosen] == ["sim-a1", "sim-a2"]
    with pytest.raises(SelectionError, match="control-plane node"):
        select_nodes(_nodes(), NodeSelector(names=("cp-1",)), seed=1, allow_control_plane=False, max_nodes=5)
    chosen = select_nodes(_nodes(), NodeSelector(names=("cp-1",)), seed=1, allow_control_plane=True, max_nodes=5)
    assert [n.name for n in chosen] == ["cp-1"]


def test_node_selection_prefers_nodes_running_the_target() -> None:
    for seed in range(10):
        chosen = select_nodes(_nodes(), NodeSelector(count=1), seed=seed, allow_control_plane=False,
                              max_nodes=1, target_nodes={"sim-b2"})
        assert [n.name for n in chosen] == ["sim-b2"]


def test_node_selection_errors_name_what_exists() -> None:
    with pytest.raises(SelectionError, match="zones: zone-a, zone-b, zone-c"):
        select_nodes(_nodes(), NodeSelector(zone="zone-x"), seed=0, allow_control_plane=False, max_nodes=5)
    with pytest.raises(SelectionError, match="unknown node"):
        select_nodes(_nodes(), NodeSelector(names=("nope",)), seed=0, allow_control_plane=False, max_nodes=5)
    with pytest.raises(SelectionError, match="max_nodes=1"):
        select_nodes(_nodes(), NodeSelector(zone="zone-b"), seed=0, allow_control_plane=False, max_nodes=1)


def test_label_selector_parsing() -> None:
    assert parse_label_selector("app=web, tier=front") == {"app": "web", "tier": "front"}
    assert parse_label_selector("app==web") == {"app": "web"}
    assert parse_label_selector(None) == {}
    with pytest.raises(SelectionError, match="KEY=VALUE"):
        parse_label_selector("app")


def test_a_budget_counts_distinct_nodes_and_pods_over_the_whole_experiment() -> None:
    from resilience_tests.cluster.selection import Budget

    budget = Budget(max_nodes=1, max_pods=2)
    budget.take("pod-kill round 1", pods=["demo/a"])
    budget.take("pod-kill round 1 again", pods=["demo/a"])  # the same pod twice counts once
    budget.take("drain of n1", nodes=["n1"], pods=["demo/b"])
    with pytest.raises(SelectionError, match="pod-kill round 2 would bring the pods this experiment disrupts to 3, "
                                             "more than guardrails.max_pods=2"):
        budget.take("pod-kill round 2", pods=["demo/c"])
    with pytest.raises(SelectionError, match=r"drain of n2 would bring the nodes this experiment touches to 2 "
                                             r"\(n1, n2\), more than guardrails.max_nodes=1"):
        budget.take("drain of n2", nodes=["n2"])
    assert budget.pods == {"demo/a", "demo/b"} and budget.nodes == {"n1"}  # a refused take takes nothing


def test_losing_a_node_disrupts_its_pods_but_not_daemonsets_and_kube_system_needs_leave() -> None:
    from resilience_tests.cluster.selection import node_pods

    pods = [PodInfo("web-1", "demo", "n1", controller="ReplicaSet"), PodInfo("proxy", "kube-system", "n1",
                                                                             controller="DaemonSet"),
            PodInfo("static", "kube-system", "n1", mirror=True), PodInfo("job-1", "demo", "n1", finished=True)]
    assert [p.key for p in node_pods(pods, allow_kube_system=False, what="x")] == ["demo/web-1"]
    dns = [*pods, PodInfo("coredns-1", "kube-system", "n1", controller="ReplicaSet")]
    with pytest.raises(SelectionError, match="drain of n1 would disrupt kube-system pods: kube-system/coredns-1"):
        node_pods(dns, allow_kube_system=False, what="drain of n1")
    assert len(node_pods(dns, allow_kube_system=True, what="x")) == 2


@pytest.mark.parametrize("text", ["pod/web", "deployment/", "web", "deployment/a/b", ""])
def test_a_workload_that_is_not_kind_slash_name_is_refused_saying_the_form(text: str) -> None:
    with pytest.raises(SelectionError, match="workload must be KIND/NAME with KIND one of deployment, statefulset"):
        parse_workload(text)


def test_workloads_and_selectors_parse_once_and_print_in_the_api_servers_form() -> None:
    assert parse_workload("StatefulSet/db") == ("statefulset", "db")
    labels = parse_label_selector("tier=front, app=web")
    assert labels == {"app": "web", "tier": "front"} and selector_text(labels) == "app=web,tier=front"
    assert selector_text({}) == ""
