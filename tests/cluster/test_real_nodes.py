"""Real nodes: real containers, Services and traffic from the host through a NodePort on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client

from resilience_tests import procs
from resilience_tests.chaos import Chaos
from resilience_tests.cluster.kube import Kube, Workload
from resilience_tests.cluster.timeline import Timeline
from resilience_tests.faults.base import FaultError
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.testbed.images import DEMO_IMAGE
from resilience_tests.testbed.topology import Topology
from resilience_tests.waiting import wait_until
from tests.cluster.helpers import answers, deploy_demo, ready, running_pods
from tests.cluster.traffic import RequestLoop


def restart_under_load(cluster: Kube, namespace: str, port: int) -> RequestLoop:
    """Roll every pod of the demo Deployment while requests (each held 20 ms by the app) flow."""
    web = Workload(kind="deployment", name="web", namespace=namespace)
    with RequestLoop(port, path="/?sleep=20ms", max_seconds=150) as loop:
        time.sleep(1)
        cluster.restart(web)
        wait_until("rollout complete", lambda: not cluster.rollout_pending(web), timeout=120, interval=0.5)
        time.sleep(2)
    return loop


def test_rolling_restart_of_the_graceful_app_fails_no_request(
        local_cluster: LocalCluster, cluster: Kube, core: client.CoreV1Api, namespace: str,
        real_nodes: list[str]) -> None:
    port = deploy_demo(local_cluster, core, namespace)
    loop = restart_under_load(cluster, namespace, port)
    pods = {o.pod for o in loop.outcomes if o.ok}
    assert len(loop.outcomes) > 200 and len(pods) >= 8, loop.summary()  # old and new pods both answered
    assert not loop.failures, loop.summary()


def test_rolling_restart_of_the_exit_at_once_app_fails_requests(
        local_cluster: LocalCluster, cluster: Kube, core: client.CoreV1Api, namespace: str,
        real_nodes: list[str]) -> None:
    port = deploy_demo(local_cluster, core, namespace, misbehave="exit-on-term", prestop=False)
    loop = restart_under_load(cluster, namespace, port)
    assert len(loop.outcomes) > 200, loop.summary()
    assert loop.failures, loop.summary()


def test_draining_a_real_node_moves_its_pods_while_traffic_flows(
        local_cluster: LocalCluster, chaos: Chaos, cluster: Kube, core: client.CoreV1Api, namespace: str,
        real_nodes: list[str]) -> None:
    port = deploy_demo(local_cluster, core, namespace)
    victim = real_nodes[0]
    with Timeline(cluster, namespace) as timeline, RequestLoop(port, max_seconds=120) as loop:
        time.sleep(1)
        with chaos.fault("node-drain", namespace=namespace, workload="deployment/web",  # every pod of the node
                         nodes={"names": [victim]}, timeout=90, max_pods=200):  # counts against max_pods
            wait_until("pods moved off the drained node", lambda: all(
                p.spec.node_name != victim and ready(p) for p in running_pods(core, namespace, "web"))
                and len(running_pods(core, namespace, "web")) == 4, timeout=90)
            during = len(loop.outcomes)
            time.sleep(1)
    after = {p.spec.node_name for p in running_pods(core, namespace, "web")}
    assert victim not in after and after <= set(real_nodes), after
    assert during > 100, loop.summary()
    assert not loop.failures, f"{loop.summary()}\n{failure_context(loop, timeline, local_cluster)}"


def failure_context(loop: RequestLoop, timeline: Timeline, local_cluster: LocalCluster) -> str:
    """What the cluster did around each failed request (pod and endpoint changes within 3 s), and how long
    kube-proxy took to program endpoint changes: enough to tell a slow kube-proxy from an app that went early."""
    lines = []
    for failure in loop.failures[:5]:
        lines.append(f"request at {failure.t:.2f} failed: {failure.error or failure.status}")
        lines += [f"  {r.t - failure.t:+.2f} s {r.kind} {r.name} {r.change} {r.details}"
                  for r in timeline.records() if r.kind in ("pod", "endpoints") and abs(r.t - failure.t) < 3]
    return "\n".join([*lines, kube_proxy_programming(local_cluster)])


def kube_proxy_programming(local_cluster: LocalCluster) -> str:
    """kube-proxy's own histogram of endpoint change -> rules programmed (its metrics port on 127.0.0.1)."""
    import json
    import urllib.request

    config = json.loads((local_cluster.real.dir / "kube-proxy.yaml").read_text())
    url = f"http://{config['metricsBindAddress']}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            text = response.read().decode()
    except OSError as exc:
        return f"kube-proxy metrics unreadable: {exc}"
    buckets = [line for line in text.splitlines()
               if line.startswith("kubeproxy_network_programming_duration_seconds_bucket")]
    return "kube-proxy network programming (cumulative by le): " + ", ".join(
        f"{line.split('le=')[1].split('}')[0]}:{line.rsplit(' ', 1)[1]}" for line in buckets[:12])


def test_a_sigterm_ignoring_pod_is_killed_and_its_exit_137_is_observed(
        local_cluster: LocalCluster, cluster: Kube, core: client.CoreV1Api, namespace: str,
        real_nodes: list[str]) -> None:
    deploy_demo(local_cluster, core, namespace, misbehave="ignore-term", prestop=False, replicas=1, grace=3)
    (pod,) = running_pods(core, namespace, "web")
    key = f"{namespace}/{pod.metadata.name}"
    with Timeline(cluster, namespace) as timeline:
        deleted = time.time()
        core.delete_namespaced_pod(pod.metadata.name, namespace)
        gone = timeline.wait_for(lambda r: r.kind == "pod" and r.name == key and r.change == "deleted", timeout=60)
    assert gone is not None, "the pod was never removed"
    exits = [r for r in timeline.records("pod") if r.name == key and r.pod is not None and "web" in r.pod.exits]
    assert exits, "no final container status was recorded before the pod disappeared"
    assert exits[0].pod is not None and exits[0].pod.exits["web"] == 137
    # Killed after the 3 s grace period, not before.
    assert 3 <= exits[0].t - deleted < 20, exits[0].t - deleted


def test_a_frozen_real_node_goes_not_ready_and_comes_back(
        local_cluster: LocalCluster, core: client.CoreV1Api, namespace: str,
        real_nodes: list[str]) -> None:
    deploy_demo(local_cluster, core, namespace)
    victim = real_nodes[0]
    before = [p.metadata.name for p in running_pods(core, namespace, "web") if p.spec.node_name == victim]
    assert before
    local_cluster.fail_nodes([victim])
    try:
        local_cluster.wait_nodes_ready([victim], ready=False, timeout=45)
        wait_until("replacements ready on the other real nodes", lambda: sum(
            ready(p) for p in running_pods(core, namespace, "web") if p.spec.node_name != victim) == 4, timeout=90)
    finally:
        local_cluster.restore_nodes([victim], timeout=60)
    # Back: Ready again and able to run pods (the stranded pods finish terminating).
    wait_until("stranded pods gone", lambda: not any(
        p.metadata.name in before for p in core.list_namespaced_pod(namespace).items), timeout=60)
    assert local_cluster.real.frozen(next(n for n in local_cluster.real.recorded() if n.name == victim)) is False


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "resilience_tests.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})}, check=False)


def test_missing_packages_are_named_and_nothing_starts(real_nodes: list[str]) -> None:
    proc = _cli("cluster", "up", "--name", "rt-missing", "--real-nodes", "2", env={"PATH": "/nonexistent"})
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: real nodes need Debian packages"), proc.stderr
    assert "apt-get install -y" in proc.stderr and "containerd" in proc.stderr, proc.stderr
    assert LocalCluster("rt-missing").state() == "absent"


def test_a_second_cluster_with_real_nodes_is_refused(real_nodes: list[str]) -> None:
    proc = _cli("cluster", "up", "--name", "rt-second", "--real-nodes", "1")
    assert proc.returncode == 2, proc.stderr
    assert "already has real nodes" in proc.stderr and "--real-nodes 0" in proc.stderr, proc.stderr
    assert LocalCluster("rt-second").state() == "absent"


def test_an_image_that_is_not_imported_stops_the_rollout_with_the_fix(
        local_cluster: LocalCluster, chaos: Chaos, cluster: Kube, core: client.CoreV1Api, namespace: str,
        real_nodes: list[str]) -> None:
    deploy_demo(local_cluster, core, namespace, replicas=2)
    started = time.monotonic()
    with pytest.raises(FaultError) as caught:
        chaos.inject("rollout", namespace=namespace, workload="deployment/web", action="image",
                     image="registry.local/demo:404", timeout=90)
    message = str(caught.value)
    assert "image registry.local/demo:404 cannot be pulled" in message, message
    assert "load-image" in message, message
    assert time.monotonic() - started < 60
    # Pulls go to 127.0.0.1:1, never to a registry off this machine.
    assert "127.0.0.1:1" in message or "ImagePullBackOff" in message, message
    chaos.revert_all()
    web = Workload(kind="deployment", name="web", namespace=namespace)
    wait_until("rolled back", lambda: not cluster.rollout_pending(web), timeout=90)
    assert cluster.read_workload(web).spec.template.spec.containers[0].image == "registry.local/demo:1"


def test_a_killed_containerd_is_repaired_by_up(
        local_cluster: LocalCluster, core: client.CoreV1Api, namespace: str,
        real_nodes: list[str]) -> None:
    port = deploy_demo(local_cluster, core, namespace, replicas=2)
    victim = real_nodes[-1]
    (record,) = [r for r in procs.records(local_cluster.real.dir) if r.name == f"containerd-{victim}"]
    os.kill(record.pid, signal.SIGKILL)
    wait_until("containerd gone", lambda: not procs.is_running(record), timeout=10)
    status = local_cluster.status()
    assert status.state == "stale" and f"containerd-{victim}" in status.problem, status
    local_cluster.up(local_cluster._saved_topology() or Topology(), log=False)
    assert local_cluster.state() == "running"
    local_cluster.wait_nodes_ready(real_nodes, timeout=60)
    wait_until("demo serving again", lambda: answers(port) and sum(
        ready(p) for p in running_pods(core, namespace, "web")) == 2, timeout=120)


def test_up_on_a_running_cluster_imports_an_image_rebuilt_since(
        local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], real_nodes: list[str]) -> None:
    from resilience_tests.testbed import images

    topology = local_cluster._saved_topology() or Topology()
    current = images.image_archives()
    assert local_cluster.real.imported_images() == {tag: str(path) for tag, path in current.items()}
    rebuilt = tmp_path / "demoapp-rebuilt.tar"
    shutil.copy(current[DEMO_IMAGE], rebuilt)
    monkeypatch.setattr(images, "image_archives", lambda: {**current, DEMO_IMAGE: rebuilt})
    try:
        local_cluster.up(topology)
        assert f"re-imported {DEMO_IMAGE} into the real nodes" in capsys.readouterr().out
        assert local_cluster.real.imported_images()[DEMO_IMAGE] == str(rebuilt)
        local_cluster.up(topology)
        assert "re-imported" not in capsys.readouterr().out  # nothing changed since
    finally:
        monkeypatch.undo()
        local_cluster.up(topology, log=False)
    assert local_cluster.real.imported_images()[DEMO_IMAGE] == str(current[DEMO_IMAGE])
