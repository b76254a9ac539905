"""Storage on the local cluster: the stateful demo's claims are provisioned as node-local volumes on the real
nodes, data survives a pod restarting on its node, and deleting the namespace deletes the volumes and their
folders. A claim the provisioner cannot serve stays Pending and says why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.testbed.storage import STORAGE_CLASS, volumes_dir
from resilience_tests.waiting import wait_until
from tests.cluster.helpers import REPO, delete_namespace


def stateful_manifests(namespace: str, replicas: int = 3, *, quick_stop: bool = False) -> list[dict[str, Any]]:
    """deploy/demo-stateful.yaml moved into ``namespace``: no Namespace object, no fixed NodePort; with
    ``quick_stop`` its pods stop at once (no preStop, no drain), for tests about other things than shutdown."""
    docs = [d for d in yaml.safe_load_all((REPO / "deploy" / "demo-stateful.yaml").read_text())
            if d and d["kind"] != "Namespace"]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "StatefulSet":
            doc["spec"]["replicas"] = replicas
            if quick_stop:
                pod = doc["spec"]["template"]["spec"]
                pod["terminationGracePeriodSeconds"] = 2
                container = pod["containers"][0]
                container.pop("lifecycle")
                container["args"] = [a for a in container["args"] if not a.startswith("--drain")] + ["--drain=0s"]
        if doc["kind"] == "Service" and doc["spec"].get("type") == "NodePort":
            doc["spec"]["ports"][0].pop("nodePort")
    return docs


def _checksum(local_cluster: LocalCluster, namespace: str, pod: str) -> dict[str, Any]:
    out = local_cluster.kubectl("-n", namespace, "exec", pod, "--", "/demoapp", "checksum", "--data", "/data")
    return dict(json.loads(out))


def _ready(core: client.CoreV1Api, namespace: str, pod: str) -> bool:
    try:
        status = core.read_namespaced_pod(pod, namespace).status
    except client.ApiException:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])


def _uid(core: client.CoreV1Api, namespace: str, pod: str) -> str:
    try:
        return str(core.read_namespaced_pod(pod, namespace).metadata.uid)
    except client.ApiException:
        return ""


def test_stateful_demo_keeps_its_data_on_node_local_volumes_until_its_namespace_goes(
        local_cluster: LocalCluster, core: client.CoreV1Api) -> None:
    namespace = "t-storage-stateful"
    root = volumes_dir(local_cluster.run_dir / "real")
    folders_before = sorted(p.relative_to(root) for p in root.glob("*/*"))
    pvs_before = {pv.metadata.name for pv in core.list_persistent_volume().items}
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        local_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": stateful_manifests(namespace)}))
        pods = [f"records-{i}" for i in range(3)]
        wait_until("records ready", lambda: all(_ready(core, namespace, p) for p in pods), timeout=120)

        claims = {c.metadata.name: c for c in core.list_namespaced_persistent_volume_claim(namespace).items}
        assert sorted(claims) == [f"data-{p}" for p in pods]
        nodes = {p: core.read_namespaced_pod(p, namespace).spec.node_name for p in pods}
        assert len(set(nodes.values())) == 3 and all(n.startswith("real-") for n in nodes.values())
        for pod, node in nodes.items():
            claim = claims[f"data-{pod}"]
            assert claim.status.phase == "Bound" and claim.spec.storage_class_name == STORAGE_CLASS
            pv = core.read_persistent_volume(claim.spec.volume_name)
            assert pv.spec.local.path == str(root / node / pv.metadata.name)
            (term,) = pv.spec.node_affinity.required.node_selector_terms
            assert term.match_expressions[0].values == [node]

        for i in range(6):  # written in the pod's own volume (exec: no Service needed)
            local_cluster.kubectl("-n", namespace, "exec", "-i", "records-0", "--", "/demoapp", "import",
                                  "--data", "/data", stdin=json.dumps({"id": i + 1, "value": f"v{i}"}) + "\n")
        before = _checksum(local_cluster, namespace, "records-0")
        assert before["count"] == 6
        old = _uid(core, namespace, "records-0")
        core.delete_namespaced_pod("records-0", namespace)
        wait_until("records-0 replaced", lambda: _uid(core, namespace, "records-0") not in ("", old)
                   and _ready(core, namespace, "records-0"), timeout=90)
        assert core.read_namespaced_pod("records-0", namespace).spec.node_name == nodes["records-0"]
        assert _checksum(local_cluster, namespace, "records-0") == before  # the same records, same order
        assert _checksum(local_cluster, namespace, "records-1")["count"] == 0
    finally:
        delete_namespace(core, namespace, timeout=120)

    def released() -> bool:
        return {pv.metadata.name for pv in core.list_persistent_volume().items} == pvs_before

    wait_until("volumes deleted", released, timeout=60)
    wait_until("folders removed", lambda: sorted(p.relative_to(root) for p in root.glob("*/*")) == folders_before,
               timeout=30)


def test_a_claim_the_provisioner_cannot_serve_stays_pending_and_says_why(
        local_cluster: LocalCluster, core: client.CoreV1Api, namespace: str) -> None:
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": "shared", "namespace": namespace},
             "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Mi"}}}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user", "namespace": namespace},
           "spec": {"nodeSelector": {"resilience-tests.io/node-kind": "real"},
                    "tolerations": [{"key": "resilience-tests.io/real-node", "operator": "Exists"}],
                    "containers": [{"name": "app", "image": "registry.local/demo:1",
                                    "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                    "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "shared"}}]}}
    local_cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                 "items": [claim, pod]}))

    def said() -> str:
        events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=shared").items
        return next((e.message for e in events if e.reason == "ProvisioningFailed"), "")

    wait_until("provisioning refused", said, timeout=60)
    assert "ReadWriteMany is not supported: a node-local volume is ReadWriteOnce" in said()
    assert core.read_namespaced_persistent_volume_claim("shared", namespace).status.phase == "Pending"


def test_volumes_live_in_the_clusters_run_directory(local_cluster: LocalCluster) -> None:
    root = volumes_dir(local_cluster.run_dir / "real")
    assert root.is_dir() and oct(root.stat().st_mode & 0o777) == "0o700"
    assert Path(local_cluster.run_dir) in root.parents
