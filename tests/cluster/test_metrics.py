"""Resource metrics on the local cluster: metrics-server serves metrics.k8s.io from the real kubelets (with their
authentication) and from the simulated nodes (usage from pod annotations), and the HPA acts on them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from kubernetes import client

from resilience_tests.cluster.kube import Kube
from resilience_tests.errors import TestbedError
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.testbed.metrics import SIM_CPU_ANNOTATION
from resilience_tests.waiting import wait_until
from tests.cluster.helpers import deploy_demo, service_account_kubeconfig


def _top(local_cluster: LocalCluster, *args: str) -> dict[str, str]:
    """``kubectl top ... --no-headers`` as name -> CPU column ({} while metrics are not there yet)."""
    try:
        out = local_cluster.kubectl("top", *args, "--no-headers")
    except TestbedError:  # "metrics not available yet" is an error exit
        return {}
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}


def test_kubectl_top_reads_real_and_simulated_nodes(local_cluster: LocalCluster, real_nodes: list[str]) -> None:
    names = [n.name for n in local_cluster.nodes()]
    def measured() -> dict[str, str]:  # a node restarted by an earlier test reads <unknown> until two scrapes
        return {n: v for n, v in _top(local_cluster, "nodes").items() if v.endswith("m")}

    wait_until("every node measured in kubectl top", lambda: set(measured()) >= set(names), timeout=90,
               pending=lambda: str(_top(local_cluster, "nodes")))
    top = measured()
    assert all(top[n].endswith("m") and int(top[n][:-1]) > 0 for n in real_nodes), top  # a kubelet really uses CPU
    status = json.loads(local_cluster.kubectl("get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "json"))
    assert "insecureSkipTLSVerify" not in status["spec"] and status["spec"]["caBundle"]


def test_a_real_pod_reports_the_cpu_it_burns_and_a_simulated_pod_what_its_annotation_says(
        local_cluster: LocalCluster, cluster: Kube, core: client.CoreV1Api, namespace: str,
        real_nodes: list[str]) -> None:
    deploy_demo(local_cluster, core, namespace, replicas=1)
    template = {"metadata": {"labels": {"app": "busy"}, "annotations": {SIM_CPU_ANNOTATION: "250m"}},
                "spec": {"nodeSelector": {"resilience-tests.io/node-kind": "simulated"},
                         "containers": [{"name": "app", "image": "registry.local/demo:1"}]}}
    local_cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "busy"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "busy"}}, "template": template}}))

    def pods() -> dict[str, str]:
        return _top(local_cluster, "pods", "-n", namespace)

    wait_until("both pods in kubectl top", lambda: len(pods()) == 2, timeout=90)
    top = pods()
    busy = next(v for k, v in top.items() if k.startswith("busy-"))
    assert 240 <= int(busy.removesuffix("m")) <= 260, top  # what the annotation says (a rate over two scrapes)
    web = next(v for k, v in top.items() if k.startswith("web-"))
    assert web.endswith("m"), top  # measured by the real kubelet (an idle app may read 0m or 1m)


def test_an_account_without_rights_reads_no_metrics(local_cluster: LocalCluster, core: client.CoreV1Api,
                                                    namespace: str, tmp_path: Path) -> None:
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="nobody")))
    kubeconfig = service_account_kubeconfig(local_cluster, core, tmp_path / "sa.kubeconfig", namespace=namespace,
                                            account="nobody")
    for path in ("/apis/metrics.k8s.io/v1beta1/nodes", f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"):
        done = subprocess.run([str(local_cluster.binaries / "kubectl"), "--kubeconfig", str(kubeconfig), "get",
                               "--raw", path], capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode != 0 and "forbidden" in done.stderr.lower(), done.stderr


def test_an_hpa_scales_simulated_pods_whose_annotation_says_they_are_busy(
        local_cluster: LocalCluster, cluster: Kube, namespace: str) -> None:
    """Each pod uses 100m of its 100m request: at a 50 % target the HPA doubles until maxReplicas (3)."""
    template = {"metadata": {"labels": {"app": "busy"}, "annotations": {SIM_CPU_ANNOTATION: "100m"}},
                "spec": {"nodeSelector": {"resilience-tests.io/node-kind": "simulated"},
                         "containers": [{"name": "app", "image": "registry.local/demo:1",
                                         "resources": {"requests": {"cpu": "100m"}}}]}}
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "busy"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "busy"},
                    "minReplicas": 1, "maxReplicas": 3,
                    "metrics": [{"type": "Resource", "resource": {
                        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
                    "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0}}}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "busy"},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "busy"}}, "template": template}}
    local_cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [deployment, hpa]}))

    def replicas() -> int:
        return int(cluster.raw.apps.read_namespaced_deployment("busy", namespace).spec.replicas or 0)

    wait_until("the HPA at maxReplicas", lambda: replicas() == 3, timeout=180)  # about 70 s when idle
    status = client.AutoscalingV2Api(cluster.raw.client).read_namespaced_horizontal_pod_autoscaler_status(
        "busy", namespace).status
    assert status.current_metrics and status.current_metrics[0].resource.current.average_utilization >= 90

