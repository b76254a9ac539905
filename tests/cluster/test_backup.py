"""`resilience backup` / `resilience restore` against the local cluster: a namespace lost with its objects
(a custom resource, a Secret, the stateful demo) comes back equal to its backup; bad input changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from resilience_tests.backup import archive as archives
from resilience_tests.backup.clean import diff
from resilience_tests.cluster.kube import Kube
from resilience_tests.cluster.resources import ResourceError
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.waiting import wait_until
from tests.cluster.helpers import REPO, delete_namespace, service_account_kubeconfig
from tests.cluster.test_storage import stateful_manifests

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def cli(local_cluster: LocalCluster, *args: str, kubeconfig: Path | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("KUBECONFIG", None)
    return subprocess.run([sys.executable, "-m", "resilience_tests.cli", *args, "--kubeconfig",
                           str(kubeconfig or local_cluster.kubeconfig)],
                          capture_output=True, text=True, env=env, timeout=timeout, check=False)


def _objects(cluster: Kube, namespace: str) -> list[dict[str, Any]]:
    """Every object of the namespace, as a backup would read it (the test's own independent listing)."""
    resources = cluster.resources()
    found: list[dict[str, Any]] = []
    for resource in resources.discover():
        if resource.namespaced and {"list", "get"} <= resource.verbs:
            try:
                found += resources.list(resource, namespace)
            except ResourceError:  # kinds this admin cannot list are in no backup either
                continue
    return found


@pytest.fixture(scope="module")
def widgets(local_cluster: LocalCluster) -> None:
    local_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(CRD))
    local_cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=60s",
                          timeout=90)


def _fill(local_cluster: LocalCluster, namespace: str) -> None:
    items = [*stateful_manifests(namespace, replicas=1, quick_stop=True),
             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
              "data": {"mode": "fast"}},
             {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": namespace},
              "stringData": {"password": "s3cret-value"}},
             {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": namespace},
              "spec": {"size": 3}}]
    local_cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def test_a_lost_namespace_comes_back_equal_to_its_backup(local_cluster: LocalCluster, cluster: Kube,
                                                         core: client.CoreV1Api, widgets: None,
                                                         tmp_path: Path) -> None:
    namespace = "t-backup-roundtrip"
    delete_namespace(core, namespace)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels={"team": "a"})))
    try:
        _fill(local_cluster, namespace)
        wait_until("records ready", lambda: (cluster.raw.apps.read_namespaced_stateful_set(
            "records", namespace).status.ready_replicas or 0) == 1, timeout=120)
        before = _objects(cluster, namespace)
        key = tmp_path / "backup.key"
        key.write_text("0123456789abcdef0123456789abcdef\n")
        archive = tmp_path / "ns.tar.gz"
        done = cli(local_cluster, "backup", namespace, "-o", str(archive), "--key-file", str(key))
        assert done.returncode == 0, done.stderr
        assert f"from {namespace}" in done.stdout and "secrets: 1 encrypted" in done.stdout
        assert b"s3cret" not in archive.read_bytes()
        kinds = archives.read(archive, key.read_bytes().strip()).kinds()
        assert kinds["example.com/Widget"] == 1 and kinds["apps/StatefulSet"] == 1 and kinds["core/Secret"] == 1

        delete_namespace(core, namespace)  # the disaster
        done = cli(local_cluster, "restore", str(archive), "--key-file", str(key), "--timeout", "120")
        assert done.returncode == 0, done.stderr
        assert f"into {namespace}" in done.stdout and "workloads ready" in done.stdout
        missing, changed, _ = diff(before, _objects(cluster, namespace))
        assert (missing, changed) == ([], [])
        secret = core.read_namespaced_secret("db", namespace)
        assert secret.data["password"] == "czNjcmV0LXZhbHVl"  # base64 of s3cret-value
        assert core.read_namespace(namespace).metadata.labels["team"] == "a"

        # restoring again over an unchanged namespace is no conflict; a changed object is, unless --overwrite
        local_cluster.kubectl("-n", namespace, "patch", "configmap", "settings", "-p", '{"data":{"mode":"slow"}}')
        done = cli(local_cluster, "restore", str(archive), "--key-file", str(key), "--timeout", "0")
        assert done.returncode == 1 and done.stdout.startswith("archive: authenticated")
        assert "applied" not in done.stdout
        assert done.stderr.startswith(f"error: {namespace} holds 1 object(s) that differ from the backup: "
                                      "core/ConfigMap settings; nothing was applied")
        assert core.read_namespaced_config_map("settings", namespace).data == {"mode": "slow"}
        done = cli(local_cluster, "restore", str(archive), "--key-file", str(key), "--overwrite", "--timeout", "0")
        assert done.returncode == 0, done.stderr
        assert core.read_namespaced_config_map("settings", namespace).data == {"mode": "fast"}

        # a damaged archive, or Secrets without their key, apply nothing
        delete_namespace(core, namespace)
        cut = tmp_path / "cut.tar.gz"
        cut.write_bytes(archive.read_bytes()[:-200])
        for bad, extra, said in ((cut, ["--key-file", str(key)], "is not a readable backup archive"),
                                 (archive, [], "encrypted Secret(s) and no key was given")):
            done = cli(local_cluster, "restore", str(bad), *extra)
            assert done.returncode == 1 and said in done.stderr and len(done.stderr.splitlines()) <= 2, done.stderr
            assert not cluster.namespace_exists(namespace)
    finally:
        delete_namespace(core, namespace)


def test_backup_names_what_it_cannot_read_and_a_missing_namespace_is_one_line(
        local_cluster: LocalCluster, cluster: Kube, core: client.CoreV1Api, namespace: str, widgets: None,
        tmp_path: Path) -> None:
    _fill(local_cluster, namespace)
    rbac = [d for d in yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text())
            if d and d["metadata"].get("namespace") != "demo"]  # its binding in demo is not needed here
    local_cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac}))
    local_cluster.kubectl("-n", namespace, "create", "rolebinding", "rt", "--clusterrole=resilience-tests-workloads",
                          "--serviceaccount=resilience-tests:resilience-tests")
    limited = service_account_kubeconfig(local_cluster, core, tmp_path / "sa.kubeconfig")
    archive = tmp_path / "partial.tar.gz"
    done = cli(local_cluster, "backup", namespace, "-o", str(archive), kubeconfig=limited)
    assert done.returncode == 1 and not archive.exists()
    first = done.stderr.splitlines()[0]
    assert first.startswith("error: the account may not read ") and "nothing was written; grant list on" in first
    assert "core/ConfigMap" in first and "core/Secret" in first and "example.com/Widget" in first
    done = cli(local_cluster, "backup", namespace, "-o", str(archive), "--skip-unreadable", kubeconfig=limited)
    assert done.returncode == 0, done.stderr
    assert "not backed up (not readable by this account): " in done.stdout and "core/ConfigMap" in done.stdout
    assert archives.read(archive, None).unreadable

    done = cli(local_cluster, "backup", "no-such-namespace", "-o", str(tmp_path / "x.tar.gz"))
    assert (done.returncode, done.stderr.splitlines()[0]) == (2, "error: namespace 'no-such-namespace' does not "
                                                                 "exist; name a namespace of this cluster")
    assert not (tmp_path / "x.tar.gz").exists()


def _experiment(namespace: str, *, restore: dict[str, Any] | None = None, backup: dict[str, Any] | None = None,
                http: bool = False) -> dict[str, Any]:
    """Backup, disaster, restore of the stateful demo; no load (experiments/backup-restore.yaml runs under load
    in test_examples.py). The hooks are commands run in the pod, or with ``http`` calls to its /records
    endpoints through the API server's pod proxy."""
    def hook(verb: str) -> Any:
        return {"port": 8080, "path": f"/records/{verb}"} if http else ["/demoapp", verb, "--data", "/data"]

    return {
        "name": "lost-namespace", "target": {"namespace": namespace, "workload": "statefulset/records"},
        "faults": [{"type": "backup", "at": "1s", "probe": hook("checksum"), "export": hook("export"),
                    **(backup or {})},
                   {"type": "disaster", "at": "2s", "timeout": "90s"},
                   {"type": "restore", "at": "3s", "import": hook("import"), "timeout": "60s", **(restore or {})}],
        "settle": "1s",
        "slas": [{"type": "rto", "max": "90s"}, {"type": "restored-objects"}, {"type": "data-intact"}],
    }


@pytest.fixture
def records(local_cluster: LocalCluster, cluster: Kube, core: client.CoreV1Api) -> Any:
    """The stateful demo (one replica) in its own namespace with 12 records; the namespace is deleted after."""
    namespace = "t-backup-steps"
    delete_namespace(core, namespace)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    local_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": stateful_manifests(namespace, replicas=1, quick_stop=True)}))
    wait_until("records ready", lambda: (cluster.raw.apps.read_namespaced_stateful_set(
        "records", namespace).status.ready_replicas or 0) == 1, timeout=120)
    lines = "".join(json.dumps({"id": i, "value": f"v{i}"}) + "\n" for i in range(1, 13))
    assert cluster.exec("records-0", namespace, ["/demoapp", "import", "--data", "/data"], stdin=lines)[0] == 0
    yield namespace
    delete_namespace(core, namespace)


@pytest.mark.parametrize(("change", "failed", "evidence"), [
    # no import hook: the pods come back on empty volumes
    ({"restore": {"import": []}}, {"data-intact"}, "after restore: count 0"),
    # the ConfigMap the pods need is left out of the backup: it is missing, and the pods never start
    ({"backup": {"exclude": ["ConfigMap"]}, "restore": {"timeout": "25s"}}, {"rto", "restored-objects",
                                                                             "data-intact"},
     "missing: core/ConfigMap records-settings"),
])
def test_backup_disaster_restore_fails_naming_the_cause(records: str, cluster: Kube, change: dict[str, Any],
                                                         failed: set[str], evidence: str) -> None:
    from resilience_tests.chaos import Chaos
    from resilience_tests.faults.base import load_registry

    journal = Chaos(cluster, load_registry()).run(_experiment(records, **change))
    assert journal.outcome == "sla-violated", (journal.errors, journal.revert_errors)
    assert {v.check for v in journal.verdicts if not v.passed} == failed
    lines = [line for v in journal.verdicts for line in v.evidence]
    assert any(evidence in line for line in lines), lines
    if "rto" in failed:
        rto = next(v for v in journal.verdicts if v.check == "rto")
        assert rto.measured == "never recovered" and "records" in rto.evidence[0]


def test_a_run_killed_after_its_disaster_is_restored_by_cleanup_with_its_data(
        records: str, local_cluster: LocalCluster, cluster: Kube, core: client.CoreV1Api, tmp_path: Path) -> None:
    """SIGKILL between the disaster and the restore: the namespace is gone and the run with it. The backup was
    written to this machine first and recorded in the cluster, so `resilience cleanup` restores the namespace
    and imports each pod's data. The hooks here are HTTP calls through the API server (probe, export, and the
    import that cleanup replays from its record)."""
    import signal

    from resilience_tests.backup import pending
    from resilience_tests.backup.hooks import HttpHook
    from resilience_tests.cli import main

    before = json.loads(cluster.exec("records-0", records, ["/demoapp", "checksum", "--data", "/data"])[1])
    exp = _experiment(records, http=True)
    exp["faults"][2]["at"] = "10m"  # the restore never comes: the run is killed first
    path = tmp_path / "killed.yaml"
    path.write_text(json.dumps(exp))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("KUBECONFIG", None)
    proc = subprocess.Popen([sys.executable, "-m", "resilience_tests.cli", "run", str(path), "--kubeconfig",
                             str(local_cluster.kubeconfig), "--results-dir", str(tmp_path / "results"),
                             "--no-report"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_until("the disaster struck", lambda: not cluster.namespace_exists(records), timeout=150)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (left,) = [p for p in pending.recorded(cluster) if p.namespace == records]
    assert left.import_hook == HttpHook(port=8080, path="/records/import")  # as the experiment said
    assert Path(left.archive).is_file() and oct(Path(left.archive).stat().st_mode & 0o777) == "0o600"
    assert main(["cleanup", "--run", left.run_id, "--force", "--kubeconfig", str(local_cluster.kubeconfig)]) == 0
    assert cluster.namespace_exists(records)
    after = json.loads(cluster.exec("records-0", records, ["/demoapp", "checksum", "--data", "/data"])[1])
    assert after == before and before["count"] == 12  # the data, imported back by cleanup
    assert [p for p in pending.recorded(cluster) if p.namespace == records] == []
    assert not Path(left.archive).exists() and not Path(left.key_path).exists()


def test_engine_velero_where_velero_does_not_run_is_refused_before_anything_happens(
        records: str, cluster: Kube) -> None:
    from resilience_tests.chaos import Chaos
    from resilience_tests.experiment.runner import PreflightError
    from resilience_tests.faults.base import load_registry

    with pytest.raises(PreflightError) as refused:
        Chaos(cluster, load_registry()).run(_experiment(records, backup={"engine": "velero"}))
    assert "engine velero: this cluster does not run Velero" in str(refused.value)
    assert cluster.namespace_exists(records)


@pytest.fixture
def velero_running(local_cluster: LocalCluster, cluster: Kube) -> Any:
    """Velero and its object store as host processes on the shared cluster; stopped and removed after (its
    namespace and CRDs too), so the other tests see a cluster without Velero."""
    local_cluster.start_velero()
    yield
    local_cluster.stop_velero()
    assert not cluster.namespace_exists("velero")


def test_a_lost_namespace_comes_back_through_velero_with_the_same_verdicts(
        velero_running: None, records: str, local_cluster: LocalCluster, cluster: Kube) -> None:
    """Where Velero runs, the same steps (engine auto) back up and restore through Velero's Backup and Restore
    objects; the verdicts are those of the built-in archive: back in time, every object equal, the data intact.
    (The checks read the same records whichever engine ran: test_backup_disaster_restore_fails_naming_the_cause
    shows each failing for its reason.)"""
    from resilience_tests.chaos import Chaos
    from resilience_tests.faults.base import load_registry

    journal = Chaos(cluster, load_registry()).run(_experiment(records))
    assert journal.outcome == "passed", [(v.check, v.message) for v in journal.verdicts] + list(journal.errors)
    steps = {r.name: r.values() for r in journal.records
             if r.kind == "action" and r.name in ("backup", "restored")}
    assert steps["backup"]["engine"] == "velero" and steps["restored"]["engine"] == "velero", steps
    for kind, key in (("backups.velero.io", "velero_backup"), ("restores.velero.io", "velero_restore")):
        name = str((steps["backup"] if kind.startswith("backups") else steps["restored"])[key]).split("/")[1]
        phase = local_cluster.kubectl("get", kind, "-n", "velero", name, "-o", "jsonpath={.status.phase}")
        assert phase == "Completed", (kind, name, phase)
