"""The local cluster behaves like a real multi-zone cluster: scheduling, PDBs, zone loss."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.waiting import wait_until
from tests.cluster.helpers import create_pdb, deployment, ready, running_pods, zones_of


def _wait_available(apps: client.AppsV1Api, namespace: str, name: str, replicas: int, timeout: float = 60) -> None:
    def probe() -> bool:
        status = apps.read_namespaced_deployment_status(name, namespace).status
        return (status.available_replicas or 0) == replicas

    wait_until(f"deployment {name} Available", probe, timeout=timeout, pending=f"{replicas} available replicas")


def test_nodes_carry_zone_and_region_labels(local_cluster: LocalCluster, core: client.CoreV1Api) -> None:
    nodes = core.list_node().items
    zones = sorted({n.metadata.labels["topology.kubernetes.io/zone"] for n in nodes})
    assert zones == ["zone-a", "zone-b", "zone-c"]
    assert all(n.metadata.labels["topology.kubernetes.io/region"] == "local-1" for n in nodes)
    server = client.VersionApi(core.api_client).get_code()
    assert server.git_version.startswith("v1.36.")


def test_spread_deployment_lands_two_per_zone(apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web", 6))
    _wait_available(apps, namespace, "web", 6)
    pods = running_pods(core, namespace, "web")
    assert all(ready(p) for p in pods)
    assert zones_of(core, pods) == {"zone-a": 2, "zone-b": 2, "zone-c": 2}


def _evict(core: client.CoreV1Api, namespace: str, pod: str) -> None:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=namespace))
    core.create_namespaced_pod_eviction(pod, namespace, body)


def test_eviction_is_refused_while_the_pdb_allows_no_disruption(
    apps: client.AppsV1Api, core: client.CoreV1Api, policy: client.PolicyV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("db", 2))
    _wait_available(apps, namespace, "db", 2)
    create_pdb(policy, namespace, "db-pdb", "db", min_available=2)
    victim = running_pods(core, namespace, "db")[0].metadata.name

    with pytest.raises(ApiException) as refused:
        _evict(core, namespace, victim)
    assert refused.value.status == 429
    assert "disruption budget db-pdb" in refused.value.body

    policy.patch_namespaced_pod_disruption_budget("db-pdb", namespace, {"spec": {"minAvailable": 1}})
    wait_until("PDB allowing one disruption", lambda: policy.read_namespaced_pod_disruption_budget(
        "db-pdb", namespace).status.disruptions_allowed == 1, timeout=30)
    _evict(core, namespace, victim)
    wait_until(f"evicted pod {victim} gone", lambda: victim not in
               {p.metadata.name for p in core.list_namespaced_pod(namespace).items}, timeout=30)


def test_zone_loss_evicts_pods_to_other_zones_and_restore_brings_nodes_back(
    local_cluster: LocalCluster, apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("svc", 6, spread=False))
    _wait_available(apps, namespace, "svc", 6)
    zone_a = local_cluster.zone_nodes("zone-a")
    before = zones_of(core, running_pods(core, namespace, "svc"))
    assert before["zone-a"] > 0, f"nothing scheduled in zone-a to evict: {before}"

    started = time.monotonic()
    local_cluster.fail_nodes(zone_a)
    try:
        local_cluster.wait_nodes_ready(zone_a, ready=False, timeout=60)
        not_ready_after = time.monotonic() - started

        def moved() -> bool:
            pods = [p for p in running_pods(core, namespace, "svc") if ready(p)]
            spread = zones_of(core, pods)
            return len(pods) == 6 and spread["zone-a"] == 0

        wait_until("pods of zone-a recreated in other zones", moved, timeout=90,
                   pending=lambda: str(dict(zones_of(core, running_pods(core, namespace, "svc")))))
        moved_after = time.monotonic() - started
        taints = {t.key for n in zone_a for t in (core.read_node(n).spec.taints or [])}
        assert "node.kubernetes.io/unreachable" in taints
        print(f"zone-a NotReady after {not_ready_after:.1f} s, pods moved after {moved_after:.1f} s")
        assert moved_after < 90
    finally:
        local_cluster.restore_nodes(zone_a)
    local_cluster.wait_nodes_ready(zone_a, timeout=60)

    def untainted() -> bool:
        return not any(t.key.startswith("node.kubernetes.io/") for n in zone_a
                       for t in (core.read_node(n).spec.taints or []))

    wait_until("zone-a taints removed", untainted, timeout=60)

    def settled() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector="app=svc").items
        return len(pods) == 6 and all(p.metadata.deletion_timestamp is None and ready(p) for p in pods)

    wait_until("pods evicted from zone-a gone once it is back", settled, timeout=30,
               pending=lambda: ", ".join(f"{p.metadata.name}@{p.spec.node_name}" for p in core.list_namespaced_pod(
                   namespace, label_selector="app=svc").items if p.metadata.deletion_timestamp))
