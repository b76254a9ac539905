"""Fixtures for tests against the project's local cluster (real control plane, kwok nodes)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from resilience_tests.cluster.client import ClusterRef, api_client
from resilience_tests.cluster.kube import Kube
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.waiting import wait_until
from tests.cluster.helpers import delete_namespace, deployment
from tests.cluster.host import HostState, host_state

ROOT = Path(__file__).parents[2]


def _host_before_the_cluster() -> HostState | None:
    """The host as it was before this run started real nodes (None when they already ran, or without root)."""
    if os.geteuid() != 0 or LocalCluster().real.recorded():
        return None
    return host_state()


# Read while collecting, before any fixture starts the cluster.
HOST_BEFORE = _host_before_the_cluster()


@pytest.fixture(scope="session")
def api(local_cluster: LocalCluster) -> Iterator[client.ApiClient]:
    with api_client(ClusterRef(str(local_cluster.kubeconfig), local_cluster.context)) as api:
        yield api


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def policy(api: client.ApiClient) -> client.PolicyV1Api:
    return client.PolicyV1Api(api)


@pytest.fixture
def namespace(core: client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    name = f"t-{request.node.name[:40].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    name = "".join(c for c in name if c.isalnum() or c == "-")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    delete_namespace(core, name, timeout=90, quick=True)


@pytest.fixture
def web(cluster: Kube, namespace: str) -> str:
    """A Deployment 'web' of 6 replicas spread over the zones, Available, in the test's namespace."""
    cluster.raw.apps.create_namespaced_deployment(namespace, deployment("web", 6))
    wait_until("web available", lambda: (cluster.raw.apps.read_namespaced_deployment_status(
        "web", namespace).status.available_replicas or 0) == 6, timeout=60)
    return namespace


@pytest.fixture(scope="module")
def demo(local_cluster: LocalCluster, cluster: Kube) -> Iterator[str]:
    """The demo app as the main job deploys it (namespace demo, NodePort 127.0.0.1:30080), removed afterwards."""
    manifest = "demo.yaml" if local_cluster.real.recorded() else "demo-simulated.yaml"
    local_cluster.kubectl("apply", "-f", str(ROOT / "deploy" / manifest))
    local_cluster.kubectl("-n", "demo", "rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
    yield "demo"
    delete_namespace(cluster.raw.core, "demo", timeout=90, quick=True)


@pytest.fixture(scope="session")
def real_nodes(local_cluster: LocalCluster) -> list[str]:
    """Names of the local cluster's real nodes (skips the test when there are fewer than 2)."""
    names = [n.name for n in local_cluster.nodes() if n.kind == "real"]
    if len(names) < 2:
        pytest.skip("needs a local cluster with at least 2 real nodes (--real-nodes 2)")
    return sorted(names)
