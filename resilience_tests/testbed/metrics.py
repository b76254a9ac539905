"""Resource metrics on the local cluster: metrics-server as a host process, serving ``metrics.k8s.io``.

metrics-server (``sigs.k8s.io/metrics-server`` :data:`VERSION`, built from the Go module proxy into the cache like
the cluster's other binaries) runs with its own identity from the cluster CA, ``system:metrics-server``:

- towards the API server: the read rights a metrics server needs (pods, nodes, ``nodes/metrics``), token and
  access reviews for its own callers (``system:auth-delegator``), and the front proxy's settings it reads from
  ``kube-system`` (``extension-apiserver-authentication-reader``);
- towards the kubelets: the same client certificate. The real kubelets admit no anonymous caller and ask the API
  server whether ``system:metrics-server`` may read ``nodes/metrics`` (it may, by the role above); their serving
  certificates are checked against the cluster CA (no ``--kubelet-insecure-tls``).
- the simulated nodes' "kubelet" is the kwok controller on 127.0.0.1, which serves the same resource-metrics text
  from :func:`kwok_documents` over TLS with a certificate of the cluster CA (:func:`kwok_tls`).

The API server reaches it through the APIService ``v1beta1.metrics.k8s.io`` and an ExternalName Service
``kube-system/metrics-server`` for 127.0.0.1 (the aggregator resolves ExternalName Services to their name), and
checks its serving certificate against the cluster CA (the APIService's ``caBundle``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resilience_tests import procs
from resilience_tests.errors import TestbedError
from resilience_tests.net import free_port
from resilience_tests.testbed.pki import Authority, Pair
from resilience_tests.testbed.topology import SIM_METRICS_PATH

MODULE = "sigs.k8s.io/metrics-server"
VERSION = "v0.8.0"
PROCESS = "metrics-server"
USER = "system:metrics-server"
API_SERVICE = "v1beta1.metrics.k8s.io"
# metrics-server refuses a resolution below 10 s. A new pod needs two scrapes before it has a CPU rate, so a
# replica counts for the autoscaler 10-20 s after it started.
RESOLUTION = "10s"
# Simulated pods use what this annotation says (a Kubernetes quantity: "250m"); 1m of CPU when absent.
SIM_CPU_ANNOTATION = "resilience-tests.io/usage-cpu"
SIM_MEMORY_ANNOTATION = "resilience-tests.io/usage-memory"
Kubectl = Callable[..., str]


def binary() -> Path:
    """metrics-server's binary (built on first use, then reused from the cache)."""
    from resilience_tests.cache import cache_root

    folder = cache_root() / "programs" / f"metrics-server-{VERSION}"
    path = folder / "metrics-server"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(folder), "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    ldflags = f"-s -w -X k8s.io/client-go/pkg/version.gitVersion={VERSION}"  # where its Makefile stamps it
    proc = subprocess.run(["go", "install", "-trimpath", "-ldflags", ldflags, f"{MODULE}/cmd/metrics-server@{VERSION}"],
                          env=env, capture_output=True, text=True, check=False, timeout=1800)
    if proc.returncode != 0:
        raise TestbedError(f"building metrics-server {VERSION} failed: {proc.stderr.strip()[-800:]}",
                           hint="install Go >= 1.26 (go on PATH) and check GOPROXY")
    return path


def kwok_tls(authority: Authority, folder: Path) -> Pair:
    """The kwok controller's serving certificate for 127.0.0.1 (metrics-server and the API server check it)."""
    return authority.issue(folder, "kwok-server", common_name="kwok", ips=("127.0.0.1",), server=True)


def kwok_documents() -> list[dict[str, Any]]:
    """kwok configuration: the resource-metrics endpoint of every simulated node, and where its pods' usage
    comes from (the pod's annotations, read at every scrape)."""

    def metric(name: str, dimension: str, kind: str, value: str) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "dimension": dimension, "kind": kind, "value": value,
                               "help": f"{name} of the simulated {dimension}"}
        if dimension == "container":
            out["labels"] = [{"name": "container", "value": "container.name"},
                             {"name": "namespace", "value": "pod.metadata.namespace"},
                             {"name": "pod", "value": "pod.metadata.name"}]
        return out

    metrics = [
        metric("scrape_error", "node", "gauge", "0"),
        # A node's own use besides its pods (20m of CPU, 64 MiB), so an idle node reports too.
        metric("node_cpu_usage_seconds_total", "node", "counter",
               'node.CumulativeUsage("cpu") + node.SinceSecond() * 0.02'),
        metric("node_memory_working_set_bytes", "node", "gauge", 'node.Usage("memory") + 67108864.0'),
        metric("container_start_time_seconds", "container", "gauge", "pod.SinceSecond()"),
        metric("container_cpu_usage_seconds_total", "container", "counter",
               'pod.CumulativeUsage("cpu", container.name)'),
        metric("container_memory_working_set_bytes", "container", "gauge", 'pod.Usage("memory", container.name)'),
    ]

    def usage(annotation: str, default: str) -> dict[str, str]:
        return {"expression": f'"{annotation}" in pod.metadata.annotations'
                              f' ? Quantity(pod.metadata.annotations["{annotation}"]) : Quantity("{default}")'}

    return [
        {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Metric", "metadata": {"name": "resource-metrics"},
         "spec": {"path": SIM_METRICS_PATH.replace("{node}", "{nodeName}"), "metrics": metrics}},
        {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterResourceUsage", "metadata": {"name": "usage"},
         "spec": {"usages": [{"usage": {"cpu": usage(SIM_CPU_ANNOTATION, "1m"),
                                        "memory": usage(SIM_MEMORY_ANNOTATION, "1Mi")}}]}},
    ]


def manifests(port: int, ca: bytes) -> list[dict[str, Any]]:
    """RBAC of ``system:metrics-server``, the aggregated read role, the Service and the APIService."""
    rbac = "rbac.authorization.k8s.io"
    user = [{"apiGroup": rbac, "kind": "User", "name": USER}]
    labels = {"app.kubernetes.io/managed-by": "resilience-tests", "component": "metrics-server"}

    def binding(kind: str, name: str, role_kind: str, role: str, namespace: str = "") -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "labels": labels, **({"namespace": namespace} if namespace else {})}
        return {"apiVersion": f"{rbac}/v1", "kind": kind, "metadata": meta,
                "roleRef": {"apiGroup": rbac, "kind": role_kind, "name": role}, "subjects": user}

    return [
        {"apiVersion": f"{rbac}/v1", "kind": "ClusterRole", "metadata": {"name": USER, "labels": labels},
         "rules": [{"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                   {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}]},
        # Who may read metrics.k8s.io: what view, edit and admin aggregate (as upstream's manifests do).
        {"apiVersion": f"{rbac}/v1", "kind": "ClusterRole",
         "metadata": {"name": "system:aggregated-metrics-reader",
                      "labels": {**labels, "rbac.authorization.k8s.io/aggregate-to-view": "true",
                                 "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                                 "rbac.authorization.k8s.io/aggregate-to-admin": "true"}},
         "rules": [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"],
                    "verbs": ["get", "list", "watch"]}]},
        binding("ClusterRoleBinding", USER, "ClusterRole", USER),
        binding("ClusterRoleBinding", "metrics-server:system:auth-delegator", "ClusterRole",
                "system:auth-delegator"),
        binding("RoleBinding", "metrics-server-auth-reader", "Role", "extension-apiserver-authentication-reader",
                "kube-system"),
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "metrics-server", "namespace": "kube-system", "labels": labels},
         "spec": {"type": "ExternalName", "externalName": "127.0.0.1", "ports": [{"name": "https", "port": port}]}},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": API_SERVICE, "labels": labels},
         "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                  "versionPriority": 100, "caBundle": base64.b64encode(ca).decode(),
                  "service": {"name": "metrics-server", "namespace": "kube-system", "port": port}}},
    ]


def start(run_dir: Path, authority: Authority, server: str, kubectl: Kubectl, *, timeout: float = 60) -> None:
    """Issue metrics-server's identity, apply its objects (``kubectl`` runs kubectl as the cluster's admin),
    start it and wait until the API server serves ``metrics.k8s.io`` through it."""
    path = binary()
    folder = run_dir / PROCESS
    client = authority.issue(folder, "client", common_name=USER)
    serving = authority.issue(folder, "serving", common_name="metrics-server", ips=("127.0.0.1",),
                              dns=("metrics-server.kube-system.svc",), server=True)
    kubeconfig = authority.kubeconfig(folder / "kubeconfig", server, USER, client)
    port = free_port()
    kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": manifests(port, authority.ca_path.read_bytes())}))
    argv = [str(path), f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", "--bind-address=127.0.0.1", f"--secure-port={port}",
            f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
            f"--kubelet-certificate-authority={authority.ca_path}", f"--kubelet-client-certificate={client.cert}",
            f"--kubelet-client-key={client.key}", "--kubelet-preferred-address-types=InternalIP",
            "--kubelet-use-node-status-port", f"--metric-resolution={RESOLUTION}",
            # The scrape timeout must stay below 0.9 x the resolution, or metrics-server refuses to start.
            "--kubelet-request-timeout=5s", f"--cert-dir={folder}"]
    record = procs.start(PROCESS, argv, run_dir=run_dir, marker=str(folder))

    procs.wait_started(f"the API server serving {API_SERVICE} through metrics-server",
                       lambda: api_service_available(kubectl, API_SERVICE), record, timeout=timeout)


def api_service_available(kubectl: Kubectl, name: str) -> bool:
    """Whether the APIService ``name`` is Available (False while kubectl cannot tell)."""
    try:
        status = kubectl("get", "apiservice", name, "-o",
                         "jsonpath={.status.conditions[?(@.type=='Available')].status}")
    except TestbedError:
        return False
    return status.strip() == "True"
