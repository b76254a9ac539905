"""Every fault against the local cluster: it does what it says, and its revert undoes it."""

from __future__ import annotations

import pytest
from kubernetes import client

from resilience_tests.chaos import Chaos
from resilience_tests.cluster.kube import Kube
from resilience_tests.cluster.ledger import LEDGER_ANNOTATION, RUN_LABEL, parse
from resilience_tests.faults.node_drain import DrainBlocked
from resilience_tests.faults.node_failure import NodeFailure
from resilience_tests.faults.zone_outage import ZoneOutage
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.waiting import wait_until
from tests.cluster.helpers import create_pdb, ready, running_pods, zones_of


def _node(cluster: Kube, name: str) -> client.V1Node:
    return cluster.raw.core.read_node(name)


def test_drain_evicts_every_pod_then_revert_uncordons(chaos: Chaos, cluster: Kube, web: str) -> None:
    with chaos.fault("node-drain", namespace=web, workload="deployment/web",
                     nodes={"zone": "zone-a", "count": 1}, timeout=60) as drain:
        (node,) = drain.cordoned  # type: ignore[attr-defined]
        assert _node(cluster, node).spec.unschedulable
        (entry,) = parse((_node(cluster, node).metadata.annotations or {})[LEDGER_ANNOTATION])
        assert (entry.run, entry.field, entry.before, entry.after) == (chaos.run_id, "unschedulable", False, True)
        assert (_node(cluster, node).metadata.labels or {})[RUN_LABEL] == "true"
        left = [p.metadata.name for p in cluster.raw.core.list_namespaced_pod(web).items
                if p.spec.node_name == node and p.metadata.deletion_timestamp is None]
        assert left == []
        wait_until("web back to 6 ready", lambda: len([p for p in running_pods(cluster.raw.core, web, "web")
                                                       if ready(p)]) == 6, timeout=30)
    assert not _node(cluster, node).spec.unschedulable
    assert LEDGER_ANNOTATION not in (_node(cluster, node).metadata.annotations or {})
    assert RUN_LABEL not in (_node(cluster, node).metadata.labels or {})


def test_drain_blocked_by_a_pdb_names_the_pdb_and_still_uncordons(chaos: Chaos, cluster: Kube, web: str) -> None:
    create_pdb(cluster.raw.policy, web, "web-pdb", "web", min_available=6)
    with pytest.raises(DrainBlocked) as blocked:
        chaos.inject("node-drain", namespace=web, workload="deployment/web",
                     nodes={"zone": "zone-b", "count": 1}, timeout=6)
    message = str(blocked.value)
    assert message.startswith("drain of sim-b")
    assert "did not finish in 6 s; still waiting for" in message
    assert "blocked by PDB web-pdb" in message
    node = blocked.value.node
    assert _node(cluster, node).spec.unschedulable
    chaos.revert_all()
    assert not _node(cluster, node).spec.unschedulable


def test_pod_kill_deletes_the_chosen_pods_and_they_are_replaced(chaos: Chaos, cluster: Kube, web: str) -> None:
    before = {p.metadata.name for p in running_pods(cluster.raw.core, web, "web")}
    kill = chaos.inject("pod-kill", namespace=web, workload="deployment/web", count=2)
    killed = set(kill.killed)  # type: ignore[attr-defined]
    assert len(killed) == 2 and killed <= before

    def replaced() -> bool:
        now = {p.metadata.name for p in running_pods(cluster.raw.core, web, "web") if ready(p)}
        return len(now) == 6 and not (killed & now)

    wait_until("killed pods replaced", replaced, timeout=30)


def test_pod_kill_every_n_seconds_kills_again_until_reverted(chaos: Chaos, cluster: Kube, web: str) -> None:
    kill = chaos.inject("pod-kill", namespace=web, workload="deployment/web", count=1, every="1s", times=3)
    wait_until("three rounds of kills", lambda: len(kill.killed) == 3, timeout=30)  # type: ignore[attr-defined]
    chaos.revert_all()
    killed = list(kill.killed)  # type: ignore[attr-defined]
    assert len(set(killed)) == 3, killed


def test_scale_and_revert(chaos: Chaos, cluster: Kube, web: str) -> None:
    with chaos.fault("scale", namespace=web, workload="deployment/web", replicas=2):
        assert cluster.raw.apps.read_namespaced_deployment("web", web).spec.replicas == 2
        assert len(running_pods(cluster.raw.core, web, "web")) == 2
    assert cluster.raw.apps.read_namespaced_deployment("web", web).spec.replicas == 6


def test_rollout_of_a_new_image_and_its_revert(chaos: Chaos, cluster: Kube, web: str) -> None:
    def images() -> set[str]:
        return {p.spec.containers[0].image for p in running_pods(cluster.raw.core, web, "web")}

    with chaos.fault("rollout", namespace=web, workload="deployment/web", action="image",
                     image="registry.local/demo:2", timeout=60):
        wait_until("old pods gone", lambda: images() == {"registry.local/demo:2"}, timeout=30)
    template = cluster.raw.apps.read_namespaced_deployment("web", web).spec.template
    assert template.spec.containers[0].image == "registry.local/demo:1"
    wait_until("rolled back", lambda: images() == {"registry.local/demo:1"}, timeout=30)


def test_rollout_env_revert_removes_added_variables(chaos: Chaos, cluster: Kube, web: str) -> None:
    with chaos.fault("rollout", namespace=web, workload="deployment/web", action="env",
                     env={"FAULTY": "1"}, timeout=60):
        env = cluster.raw.apps.read_namespaced_deployment("web", web).spec.template.spec.containers[0].env
        assert [(e.name, e.value) for e in env] == [("FAULTY", "1")]
    env = cluster.raw.apps.read_namespaced_deployment("web", web).spec.template.spec.containers[0].env
    assert not env


def test_node_failure_makes_the_node_not_ready_and_revert_recovers_it(chaos: Chaos, cluster: Kube,
                                                                      web: str) -> None:
    def ready_status(node: str) -> str:
        conds = _node(cluster, node).status.conditions or []
        return next((c.status for c in conds if c.type == "Ready"), "Unknown")

    with chaos.fault("node-failure", namespace=web, workload="deployment/web",
                     nodes={"names": ["sim-c1"]}) as failure:
        assert isinstance(failure, NodeFailure) and failure.outage.provider().name == "local"
        wait_until("sim-c1 NotReady", lambda: ready_status("sim-c1") != "True", timeout=45)
    wait_until("sim-c1 Ready again", lambda: ready_status("sim-c1") == "True", timeout=45)


def test_zone_outage_fails_every_node_of_the_zone(chaos: Chaos, cluster: Kube, web: str,
                                                  local_cluster: LocalCluster) -> None:
    zone_b = sorted(local_cluster.zone_nodes("zone-b"))  # simulated and real nodes alike
    simulated = [n for n in zone_b if n.startswith("sim-")]
    real = [n for n in local_cluster.real.recorded() if n.name in zone_b]
    # every pod of every namespace on the zone's nodes counts against max_pods
    with chaos.fault("zone-outage", namespace=web, workload="deployment/web", zone="zone-b",
                     max_nodes=len(zone_b), max_pods=200) as out:
        assert isinstance(out, ZoneOutage) and sorted(out.outage.failed) == zone_b
        labels = {n: _node(cluster, n).metadata.labels["resilience-tests.io/heartbeat"] for n in simulated}
        assert set(labels.values()) == {"off"}
        assert all(local_cluster.real.frozen(n) for n in real)
    assert {_node(cluster, n).metadata.labels["resilience-tests.io/heartbeat"] for n in simulated} == {"on"}
    assert not any(local_cluster.real.frozen(n) for n in real)
    wait_until("zone-b Ready", lambda: all(
        next(c.status for c in _node(cluster, n).status.conditions if c.type == "Ready") == "True"
        for n in zone_b), timeout=60)


def test_zone_outage_over_the_blast_radius_is_refused_before_touching_anything(
        chaos: Chaos, cluster: Kube, web: str) -> None:
    from resilience_tests.cluster.selection import SelectionError

    with pytest.raises(SelectionError, match="more than guardrails.max_nodes=1"):
        chaos.inject("zone-outage", namespace=web, workload="deployment/web", zone="zone-a")
    assert {_node(cluster, n).metadata.labels["resilience-tests.io/heartbeat"] for n in ("sim-a1", "sim-a2")} == {"on"}
    core = cluster.raw.core
    assert zones_of(core, running_pods(core, web, "web")) == {"zone-a": 2, "zone-b": 2, "zone-c": 2}
