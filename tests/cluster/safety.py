"""The safety net under test: kill a run at a random moment, clean up, compare the cluster with its state before.

Shared by tests/cluster/test_safety_net.py (a few trials in CI) and benchmarks/bench_safety_net.py (many).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from resilience_tests.cluster.kube import Kube
from resilience_tests.cluster.leases import LEASE_NAMESPACE
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.waiting import wait_until
from tests.cluster.helpers import cleanup_as_the_cli_does


def cluster_state(kube: Kube, namespace: str) -> dict[str, Any]:
    """Everything a fault may change, as plain data: every node's schedulability, taints, labels and our
    annotations; every workload's replicas, images, env, labels and annotations in ``namespace``."""
    nodes = {n.metadata.name: {"unschedulable": bool(n.spec.unschedulable),
                               "taints": sorted(f"{t.key}={t.value}:{t.effect}" for t in (n.spec.taints or [])
                                                if not t.key.startswith("node.kubernetes.io/")),
                               "labels": dict(n.metadata.labels or {}),
                               "annotations": _ours(n.metadata.annotations)}
             for n in kube.raw.core.list_node().items}
    workloads = {}
    for d in kube.raw.apps.list_namespaced_deployment(namespace).items:
        containers = d.spec.template.spec.containers
        workloads[d.metadata.name] = {
            "replicas": d.spec.replicas, "labels": dict(d.metadata.labels or {}),
            "annotations": _ours(d.metadata.annotations),
            "containers": {c.name: {"image": c.image, "env": sorted(f"{e.name}={e.value}" for e in (c.env or []))}
                           for c in containers}}
    return {"nodes": nodes, "workloads": workloads}


def _ours(annotations: dict[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (annotations or {}).items() if k.startswith("resilience-tests.io/")}


def diff(now: dict[str, Any], before: dict[str, Any]) -> str:
    """What differs, one clause per object ('nothing' when equal)."""
    out = []
    for section in before:
        for name in sorted(set(before[section]) | set(now[section])):
            if now[section].get(name) != before[section].get(name):
                out.append(f"{section}/{name}: {now[section].get(name)} (was {before[section].get(name)})")
    return "; ".join(out) or "nothing"


def experiment(namespace: str) -> dict[str, Any]:
    """Every kind of recorded change at once: replicas, an image and an env variable, a cordon, a failed node."""
    return {"name": "safety-net", "target": {"namespace": namespace, "workload": "deployment/web"},
            "guardrails": {"max_nodes": 2, "max_pods": 10}, "settle": "5m",
            "faults": [{"type": "scale", "at": "0s", "replicas": 4},
                       {"type": "rollout", "at": "1s", "action": "image", "image": "registry.local/demo:9",
                        "wait": False},
                       {"type": "rollout", "at": "2s", "action": "env", "env": {"MODE": "chaos"}, "wait": False},
                       {"type": "node-drain", "at": "3s", "nodes": {"zone": "zone-c", "count": 1},
                        "timeout": "60s"},
                       {"type": "node-failure", "at": "4s", "nodes": {"names": ["sim-b2"]}},
                       {"type": "scale", "at": "5s", "replicas": 2}]}


def kill_and_clean(local_cluster: LocalCluster, kube: Kube, namespace: str, workdir: Path, seed: int) -> str:
    """One trial: start the experiment in its own process, SIGKILL it after a random 0-7 s, force the cleanup of
    its run, and return what differs from the state before (``nothing`` when the safety net held)."""
    before = cluster_state(kube, namespace)
    delay = random.Random(seed).uniform(0.0, 7.0)
    path = workdir / f"safety-{seed}.yaml"
    path.write_text(json.dumps(experiment(namespace)))
    proc = subprocess.Popen([sys.executable, "-m", "resilience_tests.cli", "run", str(path), "--kubeconfig",
                             str(local_cluster.kubeconfig), "--seed", str(seed), "--pytest-args=-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    holder = f"/{proc.pid}/"  # user@host/PID/start/space
    try:
        wait_until("the run holds its lease", lambda: _run_id(kube, holder), timeout=60)
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run_id = _run_id(kube, holder)
    assert run_id, "the killed run left no lease"
    cleanup_as_the_cli_does(kube, run_id=run_id, force=True)
    # Let the control plane lift the unreachable taints once a failed node heartbeats again.
    try:
        wait_until("the cluster back to its state before the run", lambda: cluster_state(kube, namespace) == before,
                   timeout=60)
    except Exception:
        return diff(cluster_state(kube, namespace), before)
    return "nothing"


def _run_id(kube: Kube, holder_suffix: str) -> str:
    """The run whose lease a process holds (``holder_suffix``: ``/PID/``)."""
    for lease in kube.raw.coordination.list_namespaced_lease(LEASE_NAMESPACE).items:
        if holder_suffix in (lease.spec.holder_identity or "") + "/":
            return str(lease.metadata.name).removeprefix("run-")
    return ""
