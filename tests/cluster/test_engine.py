"""The runner, timeline, dry-run, guardrails and cleanup after a killed run, on the local cluster."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from resilience_tests.chaos import Chaos
from resilience_tests.cli import main
from resilience_tests.cluster.cleanup import cleanup
from resilience_tests.cluster.kube import Kube
from resilience_tests.cluster.leases import LEASE_SECONDS
from resilience_tests.cluster.timeline import Timeline
from resilience_tests.experiment.runner import PreflightError
from resilience_tests.faults.node_drain import DrainBlocked
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.waiting import wait_until
from tests.cluster.helpers import cleanup_as_the_cli_does, create_pdb, ctrl_c_reaches_it, running_pods


def snapshot(kube: Kube, namespace: str) -> dict[str, Any]:
    """What faults may change: node schedulability, taints, labels, annotations; replicas and templates."""
    nodes = {n.metadata.name: {"unschedulable": bool(n.spec.unschedulable),
                               "taints": sorted(f"{t.key}:{t.effect}" for t in (n.spec.taints or [])),
                               "labels": n.metadata.labels,
                               "annotations": {k: v for k, v in (n.metadata.annotations or {}).items()
                                               if k.startswith("resilience-tests.io/")}}
             for n in kube.raw.core.list_node().items}
    deps = {d.metadata.name: {"replicas": d.spec.replicas,
                              "images": [c.image for c in d.spec.template.spec.containers],
                              "annotations": {k: v for k, v in (d.metadata.annotations or {}).items()
                                              if k.startswith("resilience-tests.io/")}}
            for d in kube.raw.apps.list_namespaced_deployment(namespace).items}
    return {"nodes": nodes, "deployments": deps}


def _experiment(namespace: str, faults: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": "engine-test", "target": {"namespace": namespace, "workload": "deployment/web"},
            "faults": faults, "settle": "1s", **extra}


def test_run_records_faults_and_what_the_cluster_did(chaos: Chaos, web: str) -> None:
    result = chaos.run(_experiment(web, [{"type": "pod-kill", "at": "1s", "count": 1},
                                         {"type": "scale", "at": "2s", "replicas": 3, "duration": "3s"}]))
    assert result.errors == () and result.revert_errors == ()
    assert [(w.type, w.end is not None) for w in sorted(result.windows, key=lambda w: w.index)] == [
        ("pod-kill", True), ("scale", True)]
    scale = next(w for w in result.windows if w.type == "scale")
    assert 2.5 < scale.end - scale.start < 8, "scale held for its duration, then reverted"
    changes = {(r.kind, r.change) for r in result.records}
    assert {("fault", "start"), ("fault", "end"), ("pod", "deleted"), ("pod", "added")} <= changes
    deleted = [r for r in result.records if r.kind == "pod" and r.change == "deleted"]
    assert all(r.pod is not None and r.pod.exits.get("app") == 0 for r in deleted), \
        "simulated pods end with exit code 0"


def test_a_run_shows_its_id_and_plan_first_and_its_outcome_last(local_cluster: LocalCluster, web: str,
                                                                 tmp_path: Path) -> None:
    path = tmp_path / "progress.yaml"
    path.write_text(json.dumps(_experiment(web, [{"type": "scale", "replicas": 3, "duration": "1s"}])))
    proc = subprocess.run([sys.executable, "-m", "resilience_tests.cli", "run", str(path), "--kubeconfig",
                           str(local_cluster.kubeconfig), "--pytest-args", "-q"],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [re.sub(r"^\[resilience \d\d:\d\d:\d\d\] ", "", x) for x in proc.stdout.splitlines()
             if x.startswith("[resilience ")]
    run_id = re.search(r"^report: .*/(\d{8}-\d{6}-[0-9a-f]{4})/html/index.html$", proc.stdout, re.M)
    assert run_id, proc.stdout  # the run's id names its results folder; its first experiment is <run id>-1
    started = re.match(rf"experiment ({run_id.group(1)}-1) started: engine-test, 1 fault\(s\), context kwok-resilience "
                       r"\(if this process dies, `resilience cleanup --run \1` undoes what it changed\)", lines[0])
    assert started, lines
    assert lines[1].startswith("plan: ") and "scale" in lines[1], lines
    # Not a terminal: the status line comes as a plain line (the first at once, then every 10 s).
    assert any(re.match(r"t[+-]\d+s \| ", line) for line in lines), lines
    assert re.match(rf"experiment {re.escape(started.group(1))} ended after \d+ s: every change reverted$",
                    lines[-1]), lines


def test_revert_runs_when_a_later_fault_fails(chaos: Chaos, cluster: Kube, web: str) -> None:
    create_pdb(cluster.raw.policy, web, "web-pdb", "web", min_available=6)
    before = snapshot(cluster, web)
    with pytest.raises(DrainBlocked, match="did not finish in 2 s.*blocked by PDB web-pdb"):
        chaos.run(_experiment(web, [{"type": "scale", "at": 0, "replicas": 5},
                                    {"type": "node-drain", "at": "1s", "timeout": "2s",
                                     "nodes": {"zone": "zone-a", "count": 1}}]))
    assert snapshot(cluster, web) == before


def test_dry_run_prints_the_plan_and_changes_nothing(chaos: Chaos, cluster: Kube, web: str) -> None:
    before = snapshot(cluster, web)
    pods_before = {p.metadata.name for p in running_pods(cluster.raw.core, web, "web")}
    result = chaos.run(_experiment(web, [{"type": "node-drain", "nodes": {"zone": "zone-a", "count": 1}},
                                         {"type": "zone-outage", "at": "10s", "zone": "zone-c", "duration": "30s"}],
                                   guardrails={"max_nodes": 4}), dry_run=True)  # 1 + the 3 nodes of zone-c
    text = "\n".join(result.plan)
    assert "[0] at 0 s: node-drain" in text and "cordon sim-a" in text and "evict from sim-a" in text
    assert re.search(rf"evict from sim-a\d \(\d+ pods, every namespace\): .*{web}/web-", text), text
    assert "[1] at 10 s: zone-outage, held 30 s" in text and "sim-c1, sim-c2" in text
    assert re.search(rf"disrupts \d+ pods \(every namespace\): .*{web}/web-", text), text
    assert snapshot(cluster, web) == before
    assert {p.metadata.name for p in running_pods(cluster.raw.core, web, "web")} == pods_before


def test_preflight_refuses_bad_targets_before_touching_anything(chaos: Chaos, cluster: Kube, web: str) -> None:
    before = snapshot(cluster, web)
    with pytest.raises(PreflightError, match="namespace 'nope' does not exist"):
        chaos.run({**_experiment(web, [{"type": "pod-kill"}]), "target": {"namespace": "nope"}})
    with pytest.raises(PreflightError, match="deployment/ghost in .* does not exist"):
        chaos.run({**_experiment(web, [{"type": "pod-kill"}]),
                   "target": {"namespace": web, "workload": "deployment/ghost"}})
    with pytest.raises(PreflightError, match="no running pod matches 'app=none'"):
        chaos.run({**_experiment(web, [{"type": "pod-kill"}]), "target": {"namespace": web, "selector": "app=none"}})
    with pytest.raises(PreflightError, match="kube-system|no running pod"):
        chaos.run({**_experiment(web, [{"type": "pod-kill"}]), "target": {"namespace": "kube-system",
                                                                           "selector": "x=y"}})
    with pytest.raises(PreflightError, match="names no namespace; set target.namespace or pass --namespace"):
        chaos.run({**_experiment(web, [{"type": "pod-kill"}]), "target": {"workload": "deployment/web"}})
    assert snapshot(cluster, web) == before


def test_namespace_option_applies_when_the_experiment_names_none(cluster: Kube, web: str) -> None:
    from resilience_tests.faults.base import load_registry

    chaos = Chaos(cluster, load_registry(), namespace=web)
    result = chaos.run({**_experiment(web, [{"type": "pod-kill", "count": 1}]),
                        "target": {"workload": "deployment/web"}, "settle": "4s"})
    assert result.errors == () and any(r.kind == "pod" and r.change == "deleted" for r in result.records)


def test_timeline_event_latency_and_resume_after_api_server_restart(local_cluster: LocalCluster, cluster: Kube,
                                                                    web: str) -> None:
    timeline = Timeline(cluster, web, watch_timeout=3).start()
    try:
        started = time.time()
        cluster.raw.apps.patch_namespaced_deployment_scale("web", web, {"spec": {"replicas": 7}})
        record = timeline.wait_for(lambda r: r.kind == "pod" and r.change == "added", timeout=10, since=started)
        assert record is not None
        print(f"event-to-record latency: {record.t - started:.3f} s")

        local_cluster.kwokctl.run("stop", "cluster")
        local_cluster.kwokctl.run("start", "cluster", timeout=120)
        wait_until("API server back", lambda: local_cluster.state() == "running", timeout=60)
        restarted = time.time()
        cluster.raw.apps.patch_namespaced_deployment_scale("web", web, {"spec": {"replicas": 8}})
        record = timeline.wait_for(lambda r: r.kind == "pod" and r.change == "added", timeout=30, since=restarted)
        assert record is not None, "no pod record after the API server came back"
        assert timeline.resumes >= 1
    finally:
        timeline.stop()


def _kubeconfig_with_context(source: Path, tmp_path: Path, name: str) -> Path:
    config = yaml.safe_load(source.read_text())
    old = config["current-context"]
    for ctx in config["contexts"]:
        if ctx["name"] == old:
            ctx["name"] = name
    config["current-context"] = name
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_context_that_is_not_allowed_is_refused(local_cluster: LocalCluster, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    prod = _kubeconfig_with_context(local_cluster.kubeconfig, tmp_path, "prod-eu")
    assert main(["cleanup", "--kubeconfig", str(prod)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("error: context 'prod-eu' is not allowed for experiments; "
                   "pass --allow-context prod-eu if you mean to run against it")
    assert main(["cleanup", "--kubeconfig", str(prod), "--allow-context", "prod-*", "--dry-run"]) == 0


def test_cleanup_reverts_what_a_sigkilled_run_left_behind(local_cluster: LocalCluster, cluster: Kube, web: str,
                                                          tmp_path: Path) -> None:
    before = snapshot(cluster, web)
    exp = _experiment(web, [{"type": "scale", "replicas": 2},
                            {"type": "node-drain", "nodes": {"zone": "zone-c", "count": 1}},
                            {"type": "rollout", "action": "image", "image": "registry.local/demo:9", "wait": False},
                            {"type": "node-failure", "nodes": {"names": ["sim-b2"]}}],
                      guardrails={"max_nodes": 2}, settle="5m")  # the drained node and sim-b2
    path = tmp_path / "long.yaml"
    path.write_text(json.dumps(exp))
    proc = subprocess.Popen([sys.executable, "-m", "resilience_tests.cli", "run", str(path), "--kubeconfig",
                             str(local_cluster.kubeconfig), "--pytest-args", "-q -s"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until("faults injected", lambda: snapshot(cluster, web)["nodes"]["sim-b2"]["labels"].get(
            "resilience-tests.io/heartbeat") == "off", timeout=90)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = time.monotonic()
    during = snapshot(cluster, web)
    assert during != before
    assert during["deployments"]["web"]["replicas"] == 2

    # Its lease has not expired, but its process on this host is gone: cleanup knows it is dead and acts at once.
    planned = cleanup(cluster, dry_run=True)
    assert planned and not any(a.action.startswith("left alone") for a in planned), planned
    assert any(a.action.startswith("the run is dead") for a in planned), planned
    print(f"cleanup planned {time.monotonic() - killed:.1f} s after the run was killed")
    assert main(["cleanup", "--kubeconfig", str(local_cluster.kubeconfig)]) == 0
    # The control plane still has to see sim-b2 heartbeat again and lift its unreachable taints.
    wait_until("cluster back to its state before the run", lambda: snapshot(cluster, web) == before, timeout=60,
               pending=lambda: _diff(snapshot(cluster, web), before))


def test_cleanup_stops_load_generators_of_dead_runs_of_this_cluster_only(cluster: Kube) -> None:
    """Stand-ins for Locust processes (their command line says locust; they carry the run's environment)."""
    import os

    from resilience_tests.cluster.leases import RunLease

    live = RunLease(cluster, "live-run-1").start()
    here = cluster.server
    stand_ins = {}
    try:
        for label, run, server in (("dead here", "dead-run-1", here), ("dead elsewhere", "dead-run-2",
                                                                        "https://10.9.9.9:6443"),
                                   ("alive here", "live-run-1", here)):
            stand_ins[label] = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(120)", "locust"],
                env={**os.environ, "RT_RUN_ID": run, "RT_CLUSTER": server})
        actions = cleanup_as_the_cli_does(cluster)
        stopped = {a.run_id: a.action for a in actions
                   if a.target == "this machine" and a.action.startswith("stopped load generator")}
        assert stopped == {"dead-run-1": f"stopped load generator pid {stand_ins['dead here'].pid} left running"}
        assert stand_ins["dead here"].wait(timeout=10) == -signal.SIGKILL
        assert stand_ins["dead elsewhere"].poll() is None and stand_ins["alive here"].poll() is None
    finally:
        live.stop()
        for proc in stand_ins.values():
            proc.kill()
            proc.wait()


def _diff(now: dict[str, Any], before: dict[str, Any]) -> str:
    out = []
    for section in before:
        for name, state in before[section].items():
            if now[section].get(name) != state:
                out.append(f"{section}/{name}: {now[section].get(name)} (was {state})")
    return "; ".join(out) or "nothing"


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "pytest-timeout"])
def test_interrupted_runs_revert_before_exiting(local_cluster: LocalCluster, cluster: Kube, web: str,
                                                tmp_path: Path, how: str) -> None:
    before = snapshot(cluster, web)
    exp = _experiment(web, [{"type": "scale", "replicas": 3},
                            {"type": "node-drain", "nodes": {"zone": "zone-c", "count": 1}}], settle="2m")
    path = tmp_path / "long.yaml"
    path.write_text(json.dumps(exp))
    extra = "-q -p no:randomly" + (" --timeout 15" if how == "pytest-timeout" else "")
    proc = subprocess.Popen([sys.executable, "-m", "resilience_tests.cli", "run", str(path), "--kubeconfig",
                             str(local_cluster.kubeconfig), "--pytest-args", extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=ctrl_c_reaches_it)
    try:
        wait_until("faults injected", lambda: snapshot(cluster, web)["deployments"]["web"]["replicas"] == 3
                   and any(n["unschedulable"] for n in snapshot(cluster, web)["nodes"].values()), timeout=60)
        if how != "pytest-timeout":
            proc.send_signal(getattr(signal, how))
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:  # it did not end: kill it, and undo what it left so later tests start clean
            proc.kill()
            proc.wait()
            time.sleep(LEASE_SECONDS + 2)  # its lease expires: the run counts as dead
            left = cleanup_as_the_cli_does(cluster)
            pytest.fail(f"the run did not end within 90 s of {how}; killed, cleanup undid: "
                        f"{[a.action for a in left]}", pytrace=False)
    assert proc.returncode != 0, output
    assert snapshot(cluster, web) == before, output


def test_guardrails_are_budgets_for_the_whole_experiment(chaos: Chaos, cluster: Kube, web: str) -> None:
    """max_pods and max_nodes count every fault and every round, and every pod a drain or a failure disrupts."""
    before = snapshot(cluster, web)
    with pytest.raises(PreflightError, match=r"drain of sim-b\d would bring the pods this experiment disrupts to \d+, "
                                             "more than guardrails.max_pods=0"):
        chaos.run(_experiment(web, [{"type": "node-drain", "nodes": {"zone": "zone-b", "count": 1}}],
                              guardrails={"max_pods": 0}))
    with pytest.raises(PreflightError, match="zone-outage of .*sim-a1, sim-a2.* more than guardrails.max_pods=1"):
        chaos.run(_experiment(web, [{"type": "zone-outage", "zone": "zone-a", "duration": "1s"}],
                              guardrails={"max_pods": 1, "max_nodes": 3}))
    with pytest.raises(PreflightError, match="would bring the nodes this experiment touches to 2"):
        chaos.run(_experiment(web, [{"type": "node-drain", "nodes": {"names": ["sim-a1"]}, "duration": "1s"},
                                    {"type": "node-drain", "at": "2s", "nodes": {"names": ["sim-b1"]}}],
                              guardrails={"max_pods": 10, "max_nodes": 1}))
    assert snapshot(cluster, web) == before
    # Rounds of a repeated pod-kill count too: the third round would be the third pod of a budget of two.
    result = chaos.run(_experiment(web, [{"type": "pod-kill", "count": 1, "every": "1s", "times": 5,
                                          "duration": "5s"}], guardrails={"max_pods": 2}))
    kills = [r for r in result.records if r.kind == "action" and r.name == "pod-kill"]
    stopped = [r for r in result.records if r.kind == "action" and r.name == "pod-kill-error"]
    assert len(kills) == 2 and stopped and "more than guardrails.max_pods=2" in str(stopped[0].get("error"))


def test_each_round_of_a_repeated_pod_kill_is_recorded_under_it_while_a_drain_runs_beside_it(chaos: Chaos,
                                                                                             web: str) -> None:
    """pod-kill with every: kills its later rounds from its own thread; each round is recorded under the pod-kill,
    also while the drain is being injected, and the journal's touched lists them under the pod-kill only."""
    result = chaos.run(_experiment(web, [
        {"type": "pod-kill", "count": 1, "every": "1s", "times": 6, "duration": "8s"},
        {"type": "node-drain", "at": "2s", "nodes": {"zone": "zone-b", "count": 1}, "duration": "4s"}],
        guardrails={"max_pods": 20, "max_nodes": 1}))
    assert result.errors == () and result.revert_errors == (), (result.errors, result.revert_errors)
    kills = [r for r in result.records if r.kind == "action" and r.name == "pod-kill"]
    assert [r.get("round") for r in kills] == [str(n) for n in range(6)]
    assert {r.get("fault") for r in kills} == {"0:pod-kill"}
    drain_actions = [r for r in result.records if r.kind == "action" and r.name in ("cordon", "evicted", "drained")]
    assert drain_actions and {r.get("fault") for r in drain_actions} == {"1:node-drain"}
    windows = {w.label: w for w in result.windows}
    drain = windows["1:node-drain"]
    assert drain.end is not None
    beside = [r for r in kills if drain.start <= r.t <= drain.end]
    assert len(beside) >= 2, "rounds ran while the drain was active"
    journal = {f["label"]: f["touched"] for f in result.to_json(samples=False)["faults"]}
    assert journal["0:pod-kill"] == [f"pod-kill: node {r.get('node')}, pod {r.get('pod')}" for r in kills]
    assert journal["1:node-drain"] and not any(t.startswith("pod-kill") for t in journal["1:node-drain"])


def test_a_drain_refuses_pods_no_controller_owns_unless_forced(chaos: Chaos, cluster: Kube, web: str) -> None:
    from kubernetes import client

    bare = client.V1Pod(metadata=client.V1ObjectMeta(name="bare"), spec=client.V1PodSpec(
        node_name="sim-c2", containers=[client.V1Container(name="app", image="registry.local/demo:1")]))
    cluster.raw.core.create_namespaced_pod(web, bare)
    wait_until("bare pod running", lambda: cluster.raw.core.read_namespaced_pod("bare", web).status.phase == "Running",
               timeout=30)
    drain = {"type": "node-drain", "nodes": {"names": ["sim-c2"]}, "timeout": "30s"}
    before = snapshot(cluster, web)
    with pytest.raises(PreflightError, match=f"sim-c2 runs pods that no controller owns, which a drain deletes for "
                                             f"good: {web}/bare; drain another node, or set force: true"):
        chaos.run(_experiment(web, [drain], guardrails={"max_pods": 10}))
    assert snapshot(cluster, web) == before
    plan = chaos.run(_experiment(web, [{**drain, "force": True}], guardrails={"max_pods": 10}), dry_run=True).plan
    assert any(f"gone for good (no controller, force: true): {web}/bare" in line for line in plan), plan
    result = chaos.run(_experiment(web, [{**drain, "force": True}], guardrails={"max_pods": 10}))
    assert not result.errors and not result.revert_errors
    assert snapshot(cluster, web) == before
