"""KEDA on the local cluster: the operator and metrics adapter as host processes; a ScaledObject with a
metrics-api trigger (Prometheus text served by the test on 127.0.0.1) scales simulated pods by the rule
"one replica per 10 requests/s", through the HPA KEDA makes and the APIService external.metrics.k8s.io."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from resilience_tests.cluster.kube import Kube
from resilience_tests.errors import TestbedError
from resilience_tests.testbed import keda
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.waiting import wait_until


class _Gauge(http.server.BaseHTTPRequestHandler):
    """``/metrics``: one Prometheus gauge whose value the test sets (``server.value``)."""

    def do_GET(self) -> None:
        value = self.server.value  # type: ignore[attr-defined]
        body = (f"# HELP demo_requests_per_second Requests per second over the last seconds.\n"
                f"# TYPE demo_requests_per_second gauge\ndemo_requests_per_second {value}\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def gauge() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gauge)
    server.value = 35  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def keda_running(local_cluster: LocalCluster, cluster: Kube) -> Iterator[None]:
    """KEDA as host processes on the shared cluster; stopped and removed after (APIService, CRDs, namespace)."""
    local_cluster.start_keda()
    yield
    local_cluster.stop_keda()
    assert not cluster.namespace_exists(keda.NAMESPACE)


def _objects(port: int) -> list[dict[str, Any]]:
    labels = {"app": "busy"}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "busy"},
                  "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": labels}, "spec": {
                               "nodeSelector": {"resilience-tests.io/node-kind": "simulated"},
                               "containers": [{"name": "app", "image": "registry.local/demo:1"}]}}}}
    scaled = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "busy"},
              "spec": {"scaleTargetRef": {"name": "busy"}, "minReplicaCount": 1, "maxReplicaCount": 10,
                       "pollingInterval": 5,
                       "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                           "scaleUp": {"stabilizationWindowSeconds": 0},
                           "scaleDown": {"stabilizationWindowSeconds": 0}}}},
                       "triggers": [{"type": "metrics-api", "metricType": "AverageValue", "metadata": {
                           "url": f"http://127.0.0.1:{port}/metrics", "format": "prometheus",
                           "valueLocation": "demo_requests_per_second", "targetValue": "10"}}]}}
    return [deployment, scaled]


def test_keda_scales_simulated_pods_by_one_replica_per_ten_requests_per_second(
        keda_running: None, gauge: http.server.ThreadingHTTPServer, local_cluster: LocalCluster, cluster: Kube,
        namespace: str) -> None:
    local_cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": _objects(gauge.server_address[1])}))

    def replicas() -> int:
        return int(cluster.raw.apps.read_namespaced_deployment("busy", namespace).spec.replicas or 0)

    wait_until("35 requests/s at 10 per replica: 4 replicas", lambda: replicas() == 4, timeout=120)
    hpa = client.AutoscalingV2Api(cluster.raw.client).read_namespaced_horizontal_pod_autoscaler("keda-hpa-busy",
                                                                                             namespace)
    assert hpa.spec.max_replicas == 10 and hpa.spec.metrics[0].type == "External"
    assert hpa.spec.metrics[0].external.target.average_value == "10"
    wait_until("the HPA's status showing the value KEDA read", lambda: _external_value(cluster, namespace) == "35",
               timeout=60)
    ready = json.loads(local_cluster.kubectl("get", "scaledobject", "busy", "-n", namespace, "-o", "json"))
    assert {c["type"]: c["status"] for c in ready["status"]["conditions"]}["Ready"] == "True"

    # The adapter asks the API server whether its caller may read: an account without rights may not.
    path = (f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/s0-metric-api-demo_requests_per_second"
            "?labelSelector=scaledobject.keda.sh%2Fname%3Dbusy")
    assert '"value":"35"' in local_cluster.kubectl("get", "--raw", path)
    with pytest.raises(TestbedError, match="(?i)forbidden"):
        local_cluster.kubectl(f"--as=system:serviceaccount:{namespace}:default", "get", "--raw", path)

    gauge.value = 12  # type: ignore[attr-defined]
    wait_until("12 requests/s: back down to 2 replicas", lambda: replicas() == 2, timeout=120)


def _external_value(cluster: Kube, namespace: str) -> str:
    status = client.AutoscalingV2Api(cluster.raw.client).read_namespaced_horizontal_pod_autoscaler_status(
        "keda-hpa-busy", namespace).status
    metrics = status.current_metrics or []
    return str(metrics[0].external.current.average_value) if metrics and metrics[0].external else ""
