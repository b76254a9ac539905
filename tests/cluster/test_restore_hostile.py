"""Hostile archives restored against the local cluster: each is refused in one line, and the API server's own
audit log shows that no write request reached it for the archive's objects (``local_cluster.audit_log``: one
JSON event per line). Runs through the real CLI, with the cluster's admin kubeconfig and a key, so that only
the archive's contents are refused, not the caller."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resilience_tests.testbed.cluster import LocalCluster
from tests.cluster.helpers import AuditLog
from tests.cluster.test_backup import cli
from tests.unit.test_archive_hostile import CLUSTER_SCOPED, KEY, _obj, forge


def _corpus(tmp_path: Path, namespace: str) -> list[tuple[str, Path, list[str], str]]:
    """(what, archive, extra CLI args, expected refusal) for each hostile archive."""
    ns = _obj("Namespace", namespace)
    web = _obj("ConfigMap", "settings", data={"a": "1"})
    binding = json.dumps(CLUSTER_SCOPED[0]).encode()
    keyed: list[tuple[str, Path, list[str], str]] = [
        (f"cluster-scoped {o['kind']}", forge(tmp_path / f"{o['kind']}.tar.gz", [ns, web, o], namespace=namespace,
                                              key=KEY), [], "cluster-scoped") for o in CLUSTER_SCOPED]
    return [*keyed,
            ("another namespace", forge(tmp_path / "other.tar.gz", [ns, web, _obj(
                "ConfigMap", "x", metadata={"name": "x", "namespace": "kube-system"})], namespace=namespace, key=KEY),
             [], "in namespace 'kube-system'"),
            ("mislabelled member", forge(tmp_path / "label.tar.gz", [ns, web], namespace=namespace, key=KEY,
                                         raw=[("objects/core/ConfigMap/own.json", binding)]), [], "a member's path"),
            ("secret holding a binding", forge(tmp_path / "secret.tar.gz", [ns, web], namespace=namespace, key=KEY,
                                               secrets={"own": CLUSTER_SCOPED[0]}), [], "not the v1 Secret"),
            ("traversal name", forge(tmp_path / "traversal.tar.gz", [ns, web], namespace=namespace, key=KEY, raw=[
                ("objects/core/ConfigMap/x?dryRun=All.json",
                 json.dumps(_obj("ConfigMap", "x?dryRun=All")).encode())]), [], "not a valid object name"),
            ("tampered keyed archive", forge(tmp_path / "tampered.tar.gz", [ns, web], namespace=namespace,
                                             mac_key=b"another key than the right one"), [], "does not match its MAC"),
            ("unauthenticated", forge(tmp_path / "plain.tar.gz", [ns, web], namespace=namespace), [],
             "unauthenticated"),
            ("into kube-system", forge(tmp_path / "system.tar.gz", [ns, web], namespace=namespace, key=KEY),
             ["--into", "kube-system"], "--allow-system-namespace"),
            ("into resilience-tests", forge(tmp_path / "runs.tar.gz", [ns, web], namespace=namespace, key=KEY),
             ["--into", "resilience-tests", "--allow-system-namespace"], "safety records of every run"),
            ("malformed manifest", forge(tmp_path / "manifest.tar.gz", [], manifest=[1, 2]), [], "not a manifest")]


def _restore(local_cluster: LocalCluster, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``resilience restore ARGS`` in this process (the CLI's own main(), without a Python start per archive)."""
    from resilience_tests.cli import main

    code = main(["restore", *args, "--kubeconfig", str(local_cluster.kubeconfig)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_hostile_archives_are_refused_and_the_api_server_saw_no_write(
        local_cluster: LocalCluster, namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "backup.key"
    key.write_bytes(KEY)
    names = {namespace, "settings", "x", "own", "x?dryRun=All", "kube-system"} | \
        {o["metadata"]["name"] for o in CLUSTER_SCOPED}
    for what, archive, extra, refusal in _corpus(tmp_path, namespace):
        log = AuditLog(local_cluster.audit_log)
        code, out, err = _restore(local_cluster, capsys, str(archive), "--key-file", str(key), "--overwrite", *extra)
        assert code in (1, 2), (what, out, err)
        assert err.count("\n") == 1 and refusal in err, (what, err)
        assert "Traceback" not in err + out
        # The audit backend is blocking: a write would be in the log before the API server had answered it.
        ours = [e for e in log.writes() if e["objectRef"].get("name") in names]  # type: ignore[attr-defined]
        assert ours == [], (what, AuditLog.describe(ours))


def test_a_good_keyed_archive_is_still_restored(local_cluster: LocalCluster, namespace: str, tmp_path: Path) -> None:
    key = tmp_path / "backup.key"
    key.write_bytes(KEY)
    good = forge(tmp_path / "good.tar.gz", [_obj("Namespace", namespace), _obj("ConfigMap", "settings")],
                 namespace=namespace, key=KEY)
    done = cli(local_cluster, "restore", str(good), "--key-file", str(key), "--timeout", "0")
    assert done.returncode == 0, done.stderr
    assert "archive: authenticated" in done.stdout and "2 object(s) applied" in done.stdout


pytestmark = pytest.mark.usefixtures("local_cluster")
