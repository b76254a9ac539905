"""`resilience cleanup` against the local cluster acts only on the pending-restore records this host wrote.

Records planted by whoever may write ConfigMaps in `resilience-tests` (a forged MAC, an archive elsewhere on
this host, a kube-system exec hook) are refused one line each and nothing is done for them; the record this
host wrote, in the same cleanup, is restored. And a run SIGKILLed on this host is cleaned at once, without
waiting for its lease to expire.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client

from resilience_tests.backup import pending
from resilience_tests.backup.run import backup
from resilience_tests.cluster.kube import Kube
from resilience_tests.cluster.leases import LEASE_NAMESPACE, RunLease, run_state
from resilience_tests.testbed.cluster import LocalCluster
from tests.cluster.helpers import REPO


def _cleanup(local_cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("KUBECONFIG", None)
    return subprocess.run([sys.executable, "-m", "resilience_tests.cli", "cleanup", *args, "--kubeconfig",
                           str(local_cluster.kubeconfig)], capture_output=True, text=True, env=env, timeout=300)


def _plant(cluster: Kube, run: str, data: dict[str, str]) -> None:
    resources = cluster.resources()
    configmaps = resources.find("v1", "ConfigMap")
    assert configmaps is not None
    resources.apply(configmaps, LEASE_NAMESPACE, {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": f"disaster-{run}", "labels": {pending.LABEL: "true"}}, "data": {**data, "run": run}},
        force=True)


def test_planted_records_are_refused_and_the_record_of_this_host_is_restored(
        local_cluster: LocalCluster, cluster: Kube, core: client.CoreV1Api, namespace: str, tmp_path: Path) -> None:
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings"), data={"a": "1"}))
    RunLease(cluster, f"lease-{namespace}").start().stop()  # a run's lease makes the namespace records go in
    good = pending.record(cluster, f"good-{namespace}", backup(cluster, namespace, key=None))
    core.delete_namespaced_config_map("settings", namespace)  # what the disaster took
    victim = tmp_path / "victim.tar.gz"
    victim.write_bytes(Path(good.archive).read_bytes())  # any file of this host
    Path(str(victim).removesuffix(".tar.gz") + ".key").write_bytes(Path(good.key_path).read_bytes())
    recorded = {p.run_id: p for p in pending.recorded(cluster)}[good.run_id]
    fields = recorded.fields()
    forged = f"forged-{namespace}"
    _plant(cluster, forged, {**fields, "archive": str(victim), "mac": "0" * 64,
                             "import": json.dumps(["sh", "-c", "touch /tmp/owned"])})
    system = f"system-{namespace}"
    _plant(cluster, system, {**fields, "namespace": "kube-system", "mac": "0" * 64})

    done = _cleanup(local_cluster)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith(f"refused: namespace/{namespace} ({forged}): its MAC does not verify")
               for line in lines), lines
    assert any(line.startswith(f"refused: namespace/kube-system ({system}):") for line in lines), lines
    assert any(line.startswith(f"done: namespace/{namespace} ({good.run_id}): restored") for line in lines), lines
    assert core.read_namespaced_config_map("settings", namespace).data == {"a": "1"}
    assert victim.exists() and not Path(good.archive).exists()  # the planted file was not deleted
    left = {p.run_id for p in pending.recorded(cluster)}
    assert {forged, system} <= left and good.run_id not in left
    for run in (forged, system):
        core.delete_namespaced_config_map(f"disaster-{run}", LEASE_NAMESPACE)


def test_a_run_sigkilled_on_this_host_is_dead_at_once(local_cluster: LocalCluster, cluster: Kube) -> None:
    """The lease of a killed process is judged dead as soon as it is gone, not 30 s later."""
    run = f"killed-{os.getpid()}"
    code = ("import sys, time; from resilience_tests.cluster.client import ClusterRef; "
            "from resilience_tests.cluster.kube import Kube; from resilience_tests.cluster.leases import RunLease; "
            f"RunLease(Kube.connect(ClusterRef({str(local_cluster.kubeconfig)!r})), {run!r}).start(); "
            "print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert run_state(cluster, run).alive
        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        proc.wait()
        state = run_state(cluster, run)
        took = time.monotonic() - killed
    finally:
        proc.kill()
        proc.wait()
        RunLease(cluster, run).stop()
    assert not state.alive and state.describe() == f"dead: pid {proc.pid} on this host is gone"
    assert took < 2.0
