"""The ``chaos`` fixture's faults work under one budget, as an experiment's do: a drain stops at ``max_pods``."""

from __future__ import annotations

import pytest

from resilience_tests.chaos import Chaos
from resilience_tests.cluster.kube import Kube
from resilience_tests.cluster.ledger import LEDGER_ANNOTATION
from resilience_tests.cluster.selection import SelectionError, node_pods
from resilience_tests.waiting import wait_until
from tests.cluster.helpers import ready, running_pods


def _cordoned(cluster: Kube, node: str) -> bool:
    found = cluster.raw.core.read_node(node)
    return bool(found.spec.unschedulable) or LEDGER_ANNOTATION in (found.metadata.annotations or {})


def _web_nodes(cluster: Kube, namespace: str) -> list[str]:
    """Simulated nodes running web's pods, the busiest first."""
    nodes = [p.spec.node_name for p in running_pods(cluster.raw.core, namespace, "web")]
    return sorted({n for n in nodes if n.startswith("sim-")}, key=lambda n: (-nodes.count(n), n))


def _disrupted(cluster: Kube, node: str) -> int:
    """Pods a drain of ``node`` would evict (every namespace), counted the way the budget counts them."""
    return len([p for p in node_pods(cluster.pods_on_nodes([node]), allow_kube_system=True, what=node)
                if not p.terminating])


def test_the_chaos_fixtures_drain_stops_at_max_pods(chaos: Chaos, cluster: Kube, web: str) -> None:
    node = _web_nodes(cluster, web)[0]
    evicted = _disrupted(cluster, node)
    assert evicted >= 1
    pods_before = sorted(p.metadata.name for p in running_pods(cluster.raw.core, web, "web"))
    with pytest.raises(SelectionError, match=rf"^drain of {node} would bring the pods this experiment disrupts to "
                                             rf"\d+, more than guardrails.max_pods={evicted - 1} "):
        chaos.inject("node-drain", namespace=web, workload="deployment/web", nodes={"names": [node]},
                     max_pods=evicted - 1, timeout=60)
    assert not _cordoned(cluster, node)  # refused before the cordon: nothing was written
    assert sorted(p.metadata.name for p in running_pods(cluster.raw.core, web, "web")) == pods_before

    # With room for its pods it drains; a second node in the same test is beyond the same budget.
    with chaos.fault("node-drain", namespace=web, workload="deployment/web", nodes={"names": [node]},
                     max_pods=evicted, max_nodes=2, timeout=60) as drain:
        assert drain.cordoned == [node]  # type: ignore[attr-defined]
        wait_until("web back to 6 ready", lambda: len([p for p in running_pods(cluster.raw.core, web, "web")
                                                       if ready(p)]) == 6, timeout=60)
        other = next(n for n in _web_nodes(cluster, web) if n != node)
        with pytest.raises(SelectionError, match=rf"^drain of {other} would bring the pods this experiment "
                                                 rf"disrupts to \d+, more than guardrails.max_pods={evicted} "):
            chaos.inject("node-drain", namespace=web, workload="deployment/web", nodes={"names": [other]},
                         timeout=60)
        assert not _cordoned(cluster, other)
    assert not _cordoned(cluster, node)


def test_the_chaos_fixtures_scale_up_beyond_the_budget_is_never_sent(chaos: Chaos, cluster: Kube, web: str) -> None:
    with pytest.raises(SelectionError, match=r"from 6 to 1000000000 replicas would bring the pods this experiment "
                                             r"disrupts or starts to 999999994, more than guardrails.max_pods=10"):
        chaos.inject("scale", namespace=web, workload="deployment/web", replicas=1_000_000_000)
    deployment = cluster.raw.apps.read_namespaced_deployment("web", web)
    assert deployment.spec.replicas == 6
    assert not any(k.startswith("resilience-tests.io/") for k in deployment.metadata.annotations or {})
