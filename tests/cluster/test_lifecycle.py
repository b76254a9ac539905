"""`cluster up` / `down` are idempotent, refuse conflicts and clean up after crashes.

Uses its own cluster name so the session's cluster is left alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from resilience_tests.cli import main
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.testbed.topology import Topology
from resilience_tests.waiting import wait_until

NAME = "rt-lifecycle"
SMALL = Topology(zones=2, nodes_per_zone=1)


def _processes_of(cluster: LocalCluster) -> list[int]:
    """Every process on the machine whose command line points into the cluster's state."""
    markers = (str(cluster.kwokctl.cluster_dir), str(cluster.run_dir))
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if any(m in cmd for m in markers):
                found.append(int(proc.name))
    return found


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster(NAME)
    cluster.down(log=False)
    yield cluster
    cluster.down(log=False)
    assert _processes_of(cluster) == [], "processes left behind by down"


def test_up_twice_then_down_twice(cluster: LocalCluster, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["cluster", "up", "--name", NAME, "--zones", "2", "--nodes-per-zone", "1", "--real-nodes", "0"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.strip().splitlines()[-1] == str(cluster.kubeconfig)
    pids = sorted(_processes_of(cluster))
    assert len(pids) >= 5

    assert main(argv) == 0
    second = capsys.readouterr()
    assert "already running" in second.out, second
    assert sorted(_processes_of(cluster)) == pids, "second up restarted processes"

    assert main(["cluster", "up", "--name", NAME, "--zones", "3", "--real-nodes", "0"]) == 2
    assert "already runs with 2 zones x 1 simulated nodes" in capsys.readouterr().err

    assert main(["cluster", "status", "--name", NAME]) == 0
    status = capsys.readouterr().out
    assert "running" in status and "sim-b1" in status, status

    assert main(["cluster", "down", "--name", NAME]) == 0
    assert _processes_of(cluster) == []
    assert not cluster.kwokctl.cluster_dir.exists() and not cluster.run_dir.exists()
    assert main(["cluster", "down", "--name", NAME]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_up_after_a_killed_component_cleans_the_leftovers(cluster: LocalCluster) -> None:
    cluster.up(SMALL, log=False)
    apiserver = cluster.kwokctl.pids()["kube-apiserver"]
    os.kill(apiserver, signal.SIGKILL)
    wait_until("API server gone", lambda: cluster.state() == "stale", timeout=30)
    assert "the API server does not answer" in cluster.status().problem

    cluster.up(SMALL, log=False)
    assert cluster.state() == "running"
    assert cluster.kwokctl.pids()["kube-apiserver"] != apiserver
    assert apiserver not in _processes_of(cluster)


def test_up_after_the_up_command_itself_was_killed(cluster: LocalCluster) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "resilience_tests.cli", "cluster", "up", "--name", NAME,
                             "--zones", "2", "--nodes-per-zone", "1", "--real-nodes", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until("control plane half started", lambda: cluster.kwokctl.pids() or proc.poll() is not None,
               timeout=60)
    time.sleep(1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert cluster.state() != "absent"

    cluster.up(SMALL, log=False)
    assert cluster.state() == "running"
    cluster.wait_nodes_ready(SMALL.node_names(), timeout=30)
