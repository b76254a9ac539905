"""Every example experiment runs cleanly against the demo app (as the main job deploys it) and leaves the
cluster as it found it, run as the least-privilege account of deploy/rbac.yaml (a ServiceAccount token only)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from resilience_tests.chaos import Chaos
from resilience_tests.cluster.client import ClusterRef
from resilience_tests.cluster.kube import Kube, Workload
from resilience_tests.faults.base import load_registry
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.waiting import wait_until
from tests.cluster.helpers import service_account_kubeconfig

ROOT = Path(__file__).parents[2]
EXAMPLES = sorted((ROOT / "experiments").glob("*.yaml"))


@pytest.fixture(scope="module")
def account(local_cluster: LocalCluster, cluster: Kube, demo: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """A client that is the ServiceAccount of deploy/rbac.yaml and nothing more."""
    local_cluster.kubectl("apply", "-f", str(ROOT / "deploy" / "rbac.yaml"))
    path = service_account_kubeconfig(local_cluster, cluster.raw.core, tmp_path_factory.mktemp("rbac") / "kubeconfig")
    kube = Kube.connect(ClusterRef(str(path), local_cluster.context))
    yield kube
    kube.close()


STATEFUL = ("backup-restore",)  # run against the stateful demo, as the cluster's admin (see docs/backup.md)


@pytest.fixture(scope="module")
def stateful(local_cluster: LocalCluster, cluster: Kube) -> Iterator[str]:
    """deploy/demo-stateful.yaml as the main job deploys it, with 30 records written through its Service."""
    import json

    local_cluster.kubectl("apply", "-f", str(ROOT / "deploy" / "demo-stateful.yaml"))
    records = Workload("statefulset", "demo-stateful", "records")
    wait_until("records ready", lambda: not cluster.rollout_pending(records), timeout=180,
               pending=lambda: cluster.rollout_pending(records))
    for i in range(30):
        cluster.exec(f"records-{i % 3}", "demo-stateful", ["/demoapp", "import", "--data", "/data"],
                     stdin=json.dumps({"id": 1000 + i, "value": f"seed-{i}"}) + "\n")
    yield "demo-stateful"
    local_cluster.kubectl("delete", "namespace", "demo-stateful", "--wait=false")  # nothing after needs it gone


# Load only, against the autoscaling demos as the main job deploys them, as the account: the HPA demo
# (deploy/demo-hpa.yaml) and the KEDA demo (deploy/demo-keda.yaml, with KEDA started).
AUTOSCALING = {"autoscale-ramp": "demo-hpa", "keda-ramp": "demo-keda"}


def _autoscaling_demo(local_cluster: LocalCluster, namespace: str) -> Iterator[str]:
    """deploy/<namespace>.yaml applied (one replica ready), with the account's RoleBinding of deploy/rbac.yaml
    copied into its namespace."""
    import json

    local_cluster.kubectl("apply", "-f", str(ROOT / "deploy" / f"{namespace}.yaml"))
    local_cluster.kubectl("-n", namespace, "rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "resilience-tests-workloads", "namespace": namespace},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "resilience-tests-workloads"},
               "subjects": [{"kind": "ServiceAccount", "name": "resilience-tests", "namespace": "resilience-tests"}]}
    local_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(binding))
    yield namespace
    local_cluster.kubectl("delete", "namespace", namespace, "--wait=false")  # nothing after needs it gone


@pytest.fixture(scope="module")
def demo_hpa(local_cluster: LocalCluster, real_nodes: list[str]) -> Iterator[str]:
    yield from _autoscaling_demo(local_cluster, "demo-hpa")


@pytest.fixture(scope="module")
def demo_keda(local_cluster: LocalCluster, real_nodes: list[str]) -> Iterator[str]:
    local_cluster.start_keda()
    yield from _autoscaling_demo(local_cluster, "demo-keda")


def _records(cluster: Kube) -> int:
    import json

    return sum(json.loads(cluster.exec(f"records-{i}", "demo-stateful", ["/demoapp", "count", "--data", "/data"])[1])
               ["count"] for i in range(3))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_experiment_runs_and_reverts(path: Path, demo: str, account: Kube, cluster: Kube,
                                             local_cluster: LocalCluster, request: pytest.FixtureRequest) -> None:
    web = Workload("deployment", demo, "web")
    replicas = cluster.replicas(web)
    if path.stem in STATEFUL:
        request.getfixturevalue("stateful")
        before = _records(cluster)
        result = Chaos(cluster, load_registry()).run(path)
        assert result.outcome == "passed", "\n".join(v.message for v in result.failed_verdicts)
        assert _records(cluster) == before  # counted here, through the pods, apart from the run's own probe
        return
    if path.stem in AUTOSCALING:  # load only: the ramp is the disturbance, the HPA answers it
        request.getfixturevalue(AUTOSCALING[path.stem].replace("-", "_"))
        result = Chaos(account, load_registry()).run(path)
        assert result.errors == () and result.windows == () and result.experiment.faults == ()
        assert result.outcome == "passed", "\n".join(v.message for v in result.failed_verdicts)
        return
    result = Chaos(account, load_registry()).run(path)
    assert result.errors == () and result.revert_errors == ()
    assert result.experiment.slas, "every example asserts SLAs"
    assert result.outcome == "passed", "\n".join(v.message for v in result.failed_verdicts)
    assert len(result.windows) == len(result.experiment.faults)
    assert not any(n.unschedulable for n in cluster.nodes())
    simulated = [n for n in cluster.nodes() if n.labels.get("resilience-tests.io/node-kind") == "simulated"]
    assert {n.labels.get("resilience-tests.io/heartbeat") for n in simulated} == {"on"}
    assert not any(local_cluster.real.frozen(n) for n in local_cluster.real.recorded())
    assert cluster.replicas(web) == replicas
    wait_until("web back to all its ready replicas", lambda: not cluster.rollout_pending(web), timeout=90,
               pending=lambda: cluster.rollout_pending(web))


def test_a_fault_the_account_may_not_do_fails_in_one_line_naming_verb_and_resource(
        account: Kube, cluster: Kube, web: str) -> None:
    """deploy/rbac.yaml binds the workload rights in namespace demo only: scaling elsewhere is refused."""
    from resilience_tests.cluster.client import Forbidden

    with pytest.raises(Forbidden) as refused:
        Chaos(account, load_registry()).run({"name": "not-mine", "target": {"namespace": web,
                                             "workload": "deployment/web"},
                                             "faults": [{"type": "scale", "replicas": 1}], "settle": "1s"})
    line = str(refused.value)
    assert "\n" not in line
    assert re.search(r'cannot (patch|get|list|watch) resource "\w+"', line), line
    assert "system:serviceaccount:resilience-tests:resilience-tests" in line and "deploy/rbac.yaml" in line
    assert cluster.replicas(Workload("deployment", web, "web")) == 6  # nothing changed
    # The run gave its lease back and stopped its watches: nothing of it lives on in this process.
    assert [t.name for t in threading.enumerate() if t.name.startswith(("lease-run-not-mine", "timeline-"))] == []
    leases = cluster.raw.coordination.list_namespaced_lease("resilience-tests").items
    assert not [x.metadata.name for x in leases if x.metadata.name.startswith("run-not-mine")]
