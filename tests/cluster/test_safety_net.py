"""The safety net: a run SIGKILLed at any moment, or reverting while the API server is away, leaves nothing changed
once `resilience cleanup` has run. A few trials here; benchmarks/bench_safety_net.py runs many."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from resilience_tests.cli import main
from resilience_tests.cluster.kube import Kube
from resilience_tests.cluster.ledger import RUN_LABEL
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.waiting import wait_until
from tests.cluster.safety import cluster_state, diff, experiment, kill_and_clean

TRIALS = 3  # in CI; `python3 benchmarks/bench_safety_net.py --trials 50` for the full count


@pytest.mark.parametrize("seed", range(TRIALS))
def test_a_run_killed_at_a_random_moment_is_undone_by_cleanup(local_cluster: LocalCluster, cluster: Kube, web: str,
                                                               tmp_path: Path, seed: int) -> None:
    assert kill_and_clean(local_cluster, cluster, web, tmp_path, seed) == "nothing"


def test_reverts_wait_for_an_api_server_that_went_away(local_cluster: LocalCluster, cluster: Kube, web: str,
                                                       tmp_path: Path) -> None:
    """The API server stops just as the run is told to stop: its reverts retry until it is back, and finish."""
    before = cluster_state(cluster, web)
    path = tmp_path / "safety.yaml"
    path.write_text(json.dumps(experiment(web)))
    proc = subprocess.Popen([sys.executable, "-m", "resilience_tests.cli", "run", str(path), "--kubeconfig",
                             str(local_cluster.kubeconfig), "--pytest-args", "-q -s"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until("every fault injected", lambda: cluster_state(cluster, web)["workloads"]["web"]["replicas"] == 2
                   and any(n["unschedulable"] for n in cluster_state(cluster, web)["nodes"].values()), timeout=90)
        local_cluster.kwokctl.run("stop", "cluster")
        proc.send_signal(signal.SIGTERM)  # the reverts start while nothing answers
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=8)
        assert proc.poll() is None, "the run gave up its reverts while the API server was away"
        local_cluster.kwokctl.run("start", "cluster", timeout=120)
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_until("API server back", lambda: local_cluster.state() == "running", timeout=60)
    assert main(["cleanup", "--kubeconfig", str(local_cluster.kubeconfig)]) == 0  # nothing should be left for it
    wait_until("the cluster back to its state before the run", lambda: cluster_state(cluster, web) == before,
               timeout=90, pending=lambda: diff(cluster_state(cluster, web), before) + "\n" + output[-2000:])
    assert not [n.metadata.name for n in cluster.raw.core.list_node(label_selector=RUN_LABEL).items]
