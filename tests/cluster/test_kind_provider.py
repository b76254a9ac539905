"""The kind node provider against real containers: a private Docker engine runs containers named like the
cluster's nodes (as kind's are); node-failure with provider kind pauses them and unpauses them at the revert."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from resilience_tests.chaos import Chaos
from resilience_tests.cluster.kube import Kube
from resilience_tests.experiment.runner import PreflightError
from resilience_tests.faults.base import FaultError
from resilience_tests.testbed.images import PAUSE_IMAGE, image_archives
from tests.cluster.docker import DockerEngine, docker_engine
from tests.cluster.host import host_state
from tests.cluster.test_engine import snapshot

NODE = "sim-c2"  # a node of the local cluster; on kind, node names are container names


@pytest.fixture(scope="module")
def engine() -> Iterator[DockerEngine]:
    if not shutil.which("dockerd"):
        pytest.fail("dockerd is missing: apt-get install docker.io (scripts/setup installs it)", pytrace=False)
    before = host_state()
    with docker_engine() as running:
        running.docker("load", "-i", str(image_archives()[PAUSE_IMAGE]))
        yield running
    assert before.diff(host_state()) == []  # no rule, link, route or setting of the engine is left behind


@pytest.fixture
def node_container(engine: DockerEngine) -> Iterator[str]:
    engine.docker("run", "-d", "--name", NODE, "--network", "none", PAUSE_IMAGE)
    yield NODE
    engine.docker("rm", "-f", NODE, check=False)


def _failure(namespace: str, node: str) -> dict[str, object]:
    return {"name": "kind-node-failure", "target": {"namespace": namespace, "workload": "deployment/web"},
            "faults": [{"type": "node-failure", "provider": "kind", "nodes": {"names": [node]},
                        "duration": "2s"}], "settle": "1s", "guardrails": {"max_pods": 20}}


def test_a_kind_node_is_paused_for_the_fault_and_unpaused_at_the_revert(
        engine: DockerEngine, node_container: str, chaos: Chaos, cluster: Kube, web: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    before = snapshot(cluster, web)
    states: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # what docker says of the container while the experiment runs
        while not stop.wait(0.2):
            states.append(engine.state(NODE))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = chaos.run(_failure(web, node_container))
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert run.errors == () and run.revert_errors == ()
    assert "paused" in states, states
    assert engine.state(NODE) == "running"  # unpaused at the revert
    assert snapshot(cluster, web) == before


def test_a_missing_container_is_one_line_and_nothing_stays_changed(
        engine: DockerEngine, chaos: Chaos, cluster: Kube, web: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    before = snapshot(cluster, web)
    with pytest.raises(FaultError) as failed:
        chaos.run(_failure(web, "sim-c1"))  # a node with no container of that name
    assert str(failed.value) == ("no docker container for node(s) sim-c1 (a kind node's container has the "
                                 "node's name); check the context is the kind cluster's, or use provider: generic")
    chaos.revert_all()
    assert snapshot(cluster, web) == before  # nothing was recorded or changed


def test_an_engine_that_does_not_answer_is_one_line(chaos: Chaos, web: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(FaultError) as failed:
        chaos.run(_failure(web, NODE))
    message = str(failed.value)
    assert message.startswith(f"docker cannot inspect {NODE}: ") and "\n" not in message
    assert message.endswith("start Docker, or set DOCKER_HOST to the engine kind runs on")


def test_without_the_docker_cli_the_fault_says_what_to_install(
        chaos: Chaos, web: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to run there
    with pytest.raises(PreflightError) as refused:  # at the plan, before anything is recorded or changed
        chaos.run(_failure(web, NODE))
    assert str(refused.value) == ("faults[0] (node-failure): node-failure on kind needs the docker CLI; "
                                  "install docker or use provider: generic")
