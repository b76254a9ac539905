"""Backup archives and what goes into them: pure logic, no cluster. The archive refuses anything it cannot
trust before a restore applies anything."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from resilience_tests.backup import archive as archives
from resilience_tests.backup.archive import Archive, ArchiveError
from resilience_tests.backup.clean import clean, diff, keep, rank
from resilience_tests.backup.run import plan
from resilience_tests.errors import UsageError

KEY = b"a key of more than sixteen bytes"


def _obj(kind: str, name: str, api: str = "v1", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "shop"}, **extra}


def _archive() -> Archive:
    secret = _obj("Secret", "db", data={"password": "c2VjcmV0"})
    source = {"context": "ctx", "server": "https://127.0.0.1:6443", "version": "v1.36.3"}
    return Archive(namespace="shop", source=source,
                   objects=[_obj("ConfigMap", "settings", data={"a": "1"}),
                            _obj("Deployment", "web", "apps/v1", spec={"replicas": 2})],
                   secrets=[secret], secrets_mode="encrypted", data={"export/records-0": b'{"id": 1}\n'})


def test_an_archive_reads_back_what_was_written_with_its_secrets_encrypted(tmp_path: Path) -> None:
    path = tmp_path / "shop.tar.gz"
    archives.write(_archive(), path, KEY)
    with tarfile.open(path) as tar:
        names = tar.getnames()
        sealed = tar.extractfile("secrets/db.json.enc").read()  # type: ignore[union-attr]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert names[:2] == ["manifest.json", "manifest.mac"] and b"c2VjcmV0" not in sealed and b"password" not in sealed
    assert manifest["format"] == 2 and manifest["objects"] == 3 and manifest["secrets"] == "encrypted"
    assert manifest["kinds"] == {"apps/Deployment": 1, "core/ConfigMap": 1, "core/Secret": 1}
    assert manifest["source"]["version"] == "v1.36.3"
    back = archives.read(path, KEY)
    assert back.secrets == _archive().secrets and back.data == {"export/records-0": b'{"id": 1}\n'}
    assert sorted(o["metadata"]["name"] for o in back.objects) == ["settings", "web"]
    assert back.authenticated and path.stat().st_mode & 0o777 == 0o600


def _rewrite(path: Path, change: Any) -> None:
    """Rewrite an archive's members through ``change(name, blob) -> blob | None`` (None drops it)."""
    with tarfile.open(path) as tar:
        members = [(i.name, tar.extractfile(i).read()) for i in tar]  # type: ignore[union-attr]
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members:
            new = change(name, blob)
            if new is not None:
                info = tarfile.TarInfo(name)
                info.size = len(new)
                tar.addfile(info, io.BytesIO(new))


@pytest.mark.parametrize(("damage", "message"), [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not a readable backup archive"),
    (lambda p: _rewrite(p, lambda n, b: b.replace(b'"1"', b'"2"') if "settings" in n else b), "is corrupted"),
    (lambda p: _rewrite(p, lambda n, b: None if "web" in n else b), "is incomplete (truncated?)"),
    (lambda p: _rewrite(p, lambda n, b: b.replace(b'"format": 2', b'"format": 3') if n == "manifest.json" else b),
     "has format 3; this resilience-tests"),
    (lambda p: _rewrite(p, lambda n, b: None if n == "manifest.json" else b), "no manifest.json"),
    (lambda p: p.write_text("not an archive"), "not a readable backup archive"),
])
def test_a_damaged_or_newer_archive_is_refused_before_anything_is_applied(tmp_path: Path, damage: Any,
                                                                         message: str) -> None:
    path = tmp_path / "shop.tar.gz"
    archives.write(_archive(), path, KEY)
    damage(path)
    with pytest.raises(ArchiveError, match=re.escape(message)):
        archives.read(path, KEY)


def test_secrets_need_the_key_they_were_encrypted_with(tmp_path: Path) -> None:
    path = tmp_path / "shop.tar.gz"
    archives.write(_archive(), path, KEY)
    with pytest.raises(ArchiveError, match="1 encrypted Secret.* no key was given: pass --key-file"):
        archives.read(path, None)
    with pytest.raises(ArchiveError, match="or the key is not the one it was made with"):
        archives.read(path, b"another key, long enough")
    aside = archives.read(path, None, skip_encrypted=True)
    assert aside.secrets == [] and aside.omitted_secrets == ["db"]


def test_a_key_file_must_exist_and_hold_a_real_key(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_text("abc\n")
    with pytest.raises(UsageError, match="holds 3 bytes; a key needs at least 16"):
        archives.read_key(str(short))
    with pytest.raises(UsageError, match="no-such.key"):
        archives.read_key(str(tmp_path / "no-such.key"))
    (tmp_path / "good.key").write_bytes(KEY + b"\n")
    assert archives.read_key(str(tmp_path / "good.key")) == KEY


def test_cleaning_drops_what_the_server_set() -> None:
    live = _obj("Service", "web", metadata={"name": "web", "namespace": "shop", "uid": "u", "resourceVersion": "7",
                                            "creationTimestamp": "t", "managedFields": [{}], "labels": {"app": "web"},
                                            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
                spec={"clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"], "ports": [{"port": 80}]},
                status={"loadBalancer": {}})
    assert clean(live) == {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"app": "web"}},
                           "spec": {"ports": [{"port": 80}]}}
    headless = _obj("Service", "pods", spec={"clusterIP": "None"})
    assert clean(headless)["spec"] == {"clusterIP": "None"}
    claim = _obj("PersistentVolumeClaim", "data", spec={"volumeName": "pvc-1", "resources": {}},
                 metadata={"name": "data", "annotations": {"pv.kubernetes.io/bind-completed": "yes"}})
    assert clean(claim) == {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                            "spec": {"resources": {}}}


@pytest.mark.parametrize(("obj", "kept"), [
    (_obj("Pod", "web-1", metadata={"name": "web-1", "ownerReferences": [{"kind": "ReplicaSet", "controller": True}]}),
     False),
    (_obj("Pod", "loner"), True),
    (_obj("Event", "web.1"), False),
    (_obj("ConfigMap", "kube-root-ca.crt"), False),
    (_obj("ServiceAccount", "default"), False),
    (_obj("ServiceAccount", "web"), True),
    (_obj("Secret", "token", type="kubernetes.io/service-account-token"), False),
    (_obj("EndpointSlice", "web-x", "discovery.k8s.io/v1"), False),
    (_obj("Widget", "w", "example.com/v1"), True),
])
def test_what_the_cluster_makes_again_is_left_out(obj: dict[str, Any], kept: bool) -> None:
    assert keep(obj) is kept


def test_restore_order_puts_what_others_need_first() -> None:
    objects = [_obj("Widget", "w", "example.com/v1"), _obj("PodDisruptionBudget", "web", "policy/v1"),
               _obj("Deployment", "web", "apps/v1"), _obj("Service", "web"), _obj("PersistentVolumeClaim", "d"),
               _obj("Secret", "s"), _obj("ConfigMap", "c"), _obj("RoleBinding", "r", "rbac.authorization.k8s.io/v1"),
               _obj("ServiceAccount", "a"), _obj("Namespace", "shop")]
    assert [o["kind"] for o in sorted(objects, key=rank)] == [
        "Namespace", "ServiceAccount", "RoleBinding", "ConfigMap", "Secret", "PersistentVolumeClaim", "Service",
        "Deployment", "PodDisruptionBudget", "Widget"]


def test_a_restore_beside_the_original_moves_the_namespace_and_drops_node_ports() -> None:
    taken = Archive(namespace="shop", objects=[
        _obj("Namespace", "shop", metadata={"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop",
                                                                       "team": "a"}}),
        _obj("Service", "web", spec={"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]})])
    target, objects, dropped = plan(taken, "shop-copy")
    assert target == "shop-copy" and dropped == ["web"]
    assert objects[0]["metadata"] == {"name": "shop-copy", "labels": {"team": "a"}}
    assert objects[1]["spec"]["ports"] == [{"port": 80}]
    assert plan(taken, None)[2] == []  # the same namespace keeps its NodePorts


def test_the_diff_of_a_restore_names_missing_changed_and_added_objects_and_ignores_server_defaults() -> None:
    backed = [_obj("ConfigMap", "a", data={"k": "1"}), _obj("ConfigMap", "b", data={"k": "1"}),
              _obj("Deployment", "web", "apps/v1", spec={"replicas": 2})]
    restored = [_obj("ConfigMap", "a", data={"k": "1"}, metadata={"name": "a", "uid": "new", "resourceVersion": "1"}),
                _obj("Deployment", "web", "apps/v1", spec={"replicas": 3, "revisionHistoryLimit": 10}),
                _obj("ConfigMap", "c", data={})]
    assert diff(backed, restored) == (["core/ConfigMap b"], ["apps/Deployment web"], ["core/ConfigMap c"])
    defaults = [_obj("Deployment", "web", "apps/v1", spec={"replicas": 2, "revisionHistoryLimit": 10})]
    assert diff(backed[2:], defaults) == ([], [], [])
    # Velero's labels say which backup and restore an object came from, and change with every restore
    labelled = [_obj("ConfigMap", "a", data={"k": "1"},
                     metadata={"name": "a", "labels": {"app": "x", "velero.io/restore-name": "r1"}})]
    relabelled = [_obj("ConfigMap", "a", data={"k": "1"},
                       metadata={"name": "a", "labels": {"app": "x", "velero.io/restore-name": "r2",
                                                         "velero.io/backup-name": "b2"}})]
    assert diff(labelled, relabelled) == ([], [], [])
    relabelled[0]["metadata"]["labels"]["app"] = "y"
    assert diff(labelled, relabelled) == ([], ["core/ConfigMap a"], [])


# --- the checks of a backup/disaster/restore experiment -----------------------------------------------------

def _evidence(backup: dict[str, Any] | None = None, disaster: dict[str, Any] | None = None,
              restored: dict[str, Any] | None = None) -> Any:
    from resilience_tests.backup.actions import BackupTaken, DisasterStruck, Probe, Restored
    from resilience_tests.cluster.timeline import Record
    from resilience_tests.sla.evidence import Evidence, FaultWindow

    def typed(name: str, data: dict[str, Any]) -> Any:
        keys = {k: v for k, v in data.items() if k not in ("count", "sha256")}
        probe = Probe(data["count"], data.get("sha256", "")) if "count" in data else None
        if name == "backup":
            return BackupTaken("builtin", 3, probe=probe)
        if name == "disaster":
            return DisasterStruck("namespace", "/tmp/safety-copy", probe=probe)
        return Restored(**keys, probe=probe)

    records = [Record(t, "action", name, "done", (("fault", f"{i}:{name}"),), data=typed(name, data))
               for i, (t, name, data) in enumerate(((101.0, "backup", backup), (104.0, "disaster", disaster),
                                                    (130.0, "restored", restored))) if data is not None]
    windows = [FaultWindow(1, "disaster", 104.0, 131.0)] if disaster is not None else []
    return Evidence(started=100.0, ended=140.0, zero=100.0, records=records, faults=windows)


SUM = "a" * 64
RESTORED = {"engine": "builtin", "applied": 10, "started": 105.0, "recovered": 129.0, "count": 30, "sha256": SUM}


def test_rto_is_measured_from_the_disaster_to_ready_and_probe_answering() -> None:
    from resilience_tests.sla.checks import parse_check

    ev = _evidence({"count": 30, "sha256": SUM}, {"count": 30}, RESTORED)
    assert parse_check({"type": "rto", "max": "30s"}).evaluate(ev).measured == "25.0 s"
    assert not parse_check({"type": "rto", "max": "20s"}).evaluate(ev).passed
    never = parse_check({"type": "rto", "max": "10m"}).evaluate(_evidence(
        {"count": 30}, {"count": 30}, {**RESTORED, "not_ready": ("apps/StatefulSet records",)}))
    assert (never.passed, never.measured) == (False, "never recovered")
    assert "apps/StatefulSet records" in never.evidence[0]
    assert not parse_check({"type": "rto", "max": "10m"}).evaluate(_evidence({"count": 30})).passed


def test_restored_objects_lists_what_is_missing_or_changed() -> None:
    from resilience_tests.sla.checks import parse_check

    check = parse_check({"type": "restored-objects"})
    assert check.evaluate(_evidence({}, {}, RESTORED)).passed
    bad = check.evaluate(_evidence({}, {}, {**RESTORED, "missing": ("core/ConfigMap settings",),
                                            "changed": ("apps/Deployment web",)}))
    assert (bad.passed, bad.measured) == (False, "1 missing, 1 changed")
    assert bad.evidence == ("missing: core/ConfigMap settings", "changed: apps/Deployment web")
    assert not check.evaluate(_evidence({}, {})).passed  # no restore ran


def test_data_intact_compares_the_probe_at_backup_with_the_probe_after_restore() -> None:
    from resilience_tests.sla.checks import parse_check

    check = parse_check({"type": "data-intact"})
    assert check.evaluate(_evidence({"count": 30, "sha256": SUM}, {}, RESTORED)).passed
    lost = check.evaluate(_evidence({"count": 30, "sha256": SUM}, {}, {**RESTORED, "count": 0, "sha256": "b" * 64}))
    assert not lost.passed and lost.measured.startswith("differs (sha256 bbbb")
    assert "after restore: count 0" in lost.evidence[1]
    empty = check.evaluate(_evidence({"count": 0, "sha256": SUM}, {}, RESTORED))  # nothing to prove
    assert (empty.passed, empty.measured) == (False, "no data at backup")
    assert not check.evaluate(_evidence(None, {}, RESTORED)).passed
    unanswered = {k: v for k, v in RESTORED.items() if k not in ("count", "sha256")}
    assert check.evaluate(_evidence({"count": 30, "sha256": SUM}, {}, unanswered)).measured == \
        "no probe after restore"


def test_rpo_counts_what_was_written_after_the_backup_and_lost() -> None:
    from resilience_tests.sla.checks import parse_check

    ev = _evidence({"count": 30, "sha256": SUM}, {"count": 42}, RESTORED)
    verdict = parse_check({"type": "rpo"}).evaluate(ev)
    assert (verdict.passed, verdict.measured) == (False, "12 record(s) lost")
    assert verdict.evidence == ("12 record(s) written after the backup, 12 of them lost",)
    assert parse_check({"type": "rpo", "max": 12}).evaluate(ev).passed
    assert parse_check({"type": "rpo"}).evaluate(_evidence({"count": 30}, {"count": 30}, RESTORED)).passed


def test_a_hook_is_a_command_or_an_http_call_and_a_mistake_is_explained_for_the_form_meant() -> None:
    from resilience_tests.backup import hooks
    from resilience_tests.experiment.model import ExperimentError, parse_experiment
    from resilience_tests.faults.base import load_registry

    def backup(**keys: object) -> object:
        return parse_experiment({"name": "x", "target": {"namespace": "demo", "workload": "statefulset/records"},
                                 "faults": [{"type": "backup", **keys}]}, load_registry()).faults[0]

    step = backup(export={"port": 8080, "path": "/records/export"}, probe=["/demoapp", "checksum"])
    assert step.export == hooks.HttpHook(port=8080, path="/records/export")  # type: ignore[attr-defined]
    assert step.probe == ("/demoapp", "checksum")  # type: ignore[attr-defined]
    for hook in (step.export, step.probe):  # type: ignore[attr-defined]
        assert hooks.from_json(hooks.to_json(hook)) == hook  # as the disaster's record keeps it
    assert hooks.shown(step.export) == "`GET/POST :8080/records/export` (through the API server)"  # type: ignore
    for keys, problem in [({"export": {"port": 8080, "pth": "/x"}}, "faults[0].export.http.pth: unknown key"),
                          ({"export": {"port": 0}}, "faults[0].export.http.port: Input should be greater"),
                          ({"probe": {"port": 80, "path": "x"}}, "faults[0].probe.http.path: a path starts with /"),
                          ({"export": "export"}, "faults[0].export.command: Input should be a valid tuple")]:
        with pytest.raises(ExperimentError) as info:
            backup(**keys)
        assert problem in str(info.value) and "problems" not in str(info.value), info.value


def test_velero_object_names_are_dns_labels_of_the_run_and_the_engine_is_one_of_three() -> None:
    from resilience_tests.experiment.model import ExperimentError, parse_experiment
    from resilience_tests.faults.backup_restore import _velero_name
    from resilience_tests.faults.base import load_registry

    assert _velero_name("lost-namespace-1cab38ff", "backup") == "lost-namespace-1cab38ff-backup"
    name = _velero_name("Game_Day " + "x" * 80, "restore")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63 and name.endswith("-restore")
    with pytest.raises(ExperimentError, match=r"faults\[0\]\.engine: Input should be 'auto', 'builtin' or 'velero'"):
        parse_experiment({"name": "x", "target": {"namespace": "demo", "workload": "statefulset/records"},
                          "faults": [{"type": "backup", "engine": "restic"}]}, load_registry())


def test_the_journal_writes_a_steps_typed_record_as_a_json_object_and_the_checks_read_it_as_it_is() -> None:
    import json

    from resilience_tests.backup.actions import Probe, Restored
    from resilience_tests.cluster.timeline import Record

    restored = Restored("velero", 7, 105.0, ("apps/StatefulSet db",), probe=Probe(30, SUM, 3),
                        missing=("core/ConfigMap settings",), velero_restore="velero/r-restore", velero_s=4.5)
    record = Record(130.0, "action", "restored", "done", (("fault", "2:restore"),), data=restored)
    written = json.loads(json.dumps(record.to_json()))
    assert written["details"] == {
        "fault": "2:restore", "engine": "velero", "applied": 7, "started": 105.0,
        "not_ready": ["apps/StatefulSet db"], "recovered": None, "count": 30, "sha256": SUM, "probe_error": "",
        "missing": ["core/ConfigMap settings"], "changed": [], "velero_restore": "velero/r-restore", "velero_s": 4.5}
    ev = _evidence({"count": 30, "sha256": SUM}, {"count": 30}, None)
    ev.records.append(record)
    from resilience_tests.sla.checks import parse_check

    verdict = parse_check({"type": "restored-objects"}).evaluate(ev)
    assert (verdict.passed, verdict.evidence) == (False, ("missing: core/ConfigMap settings",))
    assert parse_check({"type": "rto", "max": "1m"}).evaluate(ev).evidence == (
        "not ready when the restore step gave up: apps/StatefulSet db",)
