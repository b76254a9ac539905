"""Every example experiment runs cleanly against the demo app (as the main job deploys it) and leaves the
cluster as it found it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from resilience_tests.chaos import Chaos
from resilience_tests.cluster.kube import Kube, Workload
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.waiting import wait_until

ROOT = Path(__file__).parents[2]
EXAMPLES = sorted((ROOT / "experiments").glob("*.yaml"))


@pytest.fixture(scope="module")
def demo(local_cluster: LocalCluster, cluster: Kube) -> Iterator[str]:
    manifest = "demo.yaml" if local_cluster.real.recorded() else "demo-simulated.yaml"
    local_cluster.kubectl("apply", "-f", str(ROOT / "deploy" / manifest))
    local_cluster.kubectl("-n", "demo", "rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
    yield "demo"
    local_cluster.kubectl("delete", "namespace", "demo", "--wait=true", "--timeout=90s", timeout=100)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_experiment_runs_and_reverts(path: Path, demo: str, chaos: Chaos, cluster: Kube,
                                             local_cluster: LocalCluster) -> None:
    web = Workload("deployment", demo, "web")
    replicas = cluster.replicas(web)
    result = chaos.run(path)
    assert result.errors == [] and result.revert_errors == []
    assert len(result.windows) == len(result.experiment.faults)
    assert not any(n.unschedulable for n in cluster.nodes())
    simulated = [n for n in cluster.nodes() if n.labels.get("resilience-tests.io/node-kind") == "simulated"]
    assert {n.labels.get("resilience-tests.io/heartbeat") for n in simulated} == {"on"}
    assert not any(local_cluster.real.frozen(n) for n in local_cluster.real.recorded())
    assert cluster.replicas(web) == replicas
    wait_until("web back to all its ready replicas", lambda: not cluster.rollout_pending(web), timeout=90,
               pending=lambda: cluster.rollout_pending(web))
