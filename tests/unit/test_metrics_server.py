"""metrics-server's objects and kwok's resource-metrics configuration, as data (the cluster tests run them)."""

from __future__ import annotations

import base64

from resilience_tests.testbed import metrics
from resilience_tests.testbed.topology import SIM_METRICS_ANNOTATION, Topology, node_list


def test_the_api_service_trusts_only_the_cluster_ca_and_points_at_the_host_process() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in metrics.manifests(4443, b"CA PEM")}
    service = objects[("APIService", "v1beta1.metrics.k8s.io")]["spec"]
    assert base64.b64decode(service["caBundle"]) == b"CA PEM"
    assert "insecureSkipTLSVerify" not in service
    assert service["service"] == {"name": "metrics-server", "namespace": "kube-system", "port": 4443}
    external = objects[("Service", "metrics-server")]["spec"]
    assert external == {"type": "ExternalName", "externalName": "127.0.0.1",
                        "ports": [{"name": "https", "port": 4443}]}


def test_metrics_server_may_read_kubelet_metrics_and_nothing_it_could_change() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in metrics.manifests(4443, b"")}
    rules = objects[("ClusterRole", metrics.USER)]["rules"]
    verbs = {v for rule in rules for v in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}
    assert {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]} in rules
    bound = {o["roleRef"]["name"] for o in objects.values() if o["kind"].endswith("Binding")}
    assert bound == {metrics.USER, "system:auth-delegator", "extension-apiserver-authentication-reader"}
    assert all(o["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": metrics.USER}]
               for o in objects.values() if o["kind"].endswith("Binding"))


def test_kwok_serves_every_series_metrics_server_reads_for_each_simulated_node() -> None:
    metric, usage = metrics.kwok_documents()
    names = {m["name"] for m in metric["spec"]["metrics"]}
    # what metrics-server v0.8.0 decodes (pkg/scraper/client/resource/decode.go)
    assert {"node_cpu_usage_seconds_total", "node_memory_working_set_bytes", "container_cpu_usage_seconds_total",
            "container_memory_working_set_bytes", "container_start_time_seconds"} <= names
    assert metric["spec"]["path"] == "/metrics/nodes/{nodeName}/metrics/resource"
    cpu = usage["spec"]["usages"][0]["usage"]["cpu"]["expression"]
    assert metrics.SIM_CPU_ANNOTATION in cpu and 'Quantity("1m")' in cpu
    nodes = node_list(Topology(zones=2, nodes_per_zone=1))["items"]
    assert [n["metadata"]["annotations"][SIM_METRICS_ANNOTATION] for n in nodes] == [
        f"/metrics/nodes/{n['metadata']['name']}/metrics/resource" for n in nodes]


def test_the_hpa_controller_runs_every_five_seconds() -> None:
    from resilience_tests.testbed.kwokctl import Timings

    for nodes in (6, 1000):
        assert Timings.for_nodes(nodes).controller_manager_args()["horizontal-pod-autoscaler-sync-period"] == "5s"
