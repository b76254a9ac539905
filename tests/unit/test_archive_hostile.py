"""Hostile backup archives, built here, each refused with one line before anything is applied; the restore
target's guard; the pure checks a restore makes with the server's discovery. No cluster."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from resilience_tests.backup import archive as archives
from resilience_tests.backup import bounded
from resilience_tests.backup.archive import Archive, ArchiveError
from resilience_tests.backup.run import RestoreError, conflicts, plan, restore, served
from resilience_tests.cluster.resources import Resource
from resilience_tests.errors import ResilienceError, UsageError

KEY = b"a key of more than sixteen bytes"
SALT = b"0123456789abcdef"


def _obj(kind: str, name: str, api: str = "v1", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name}, **extra}


def _member(obj: dict[str, Any]) -> str:
    group = obj["apiVersion"].rpartition("/")[0] or "core"
    return f"objects/{group}/{obj['kind']}/{obj['metadata']['name']}.json"


def _tar(path: Path, members: list[tuple[str, bytes]], **options: Any) -> None:
    with tarfile.open(path, "w:gz", **options) as tar:
        for name, blob in members:
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def forge(path: Path, objects: list[dict[str, Any]] | None = None, *, raw: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
          namespace: str = "shop", key: bytes | None = None, secrets: dict[str, Any] | None = None,
          manifest: dict[str, Any] | None = None, mac_key: bytes | None = None) -> Path:
    """An archive as an attacker would write it: checksums recomputed, a MAC if they hold ``key``."""
    members = [(_member(o), json.dumps(o).encode()) for o in objects or []] + list(raw)
    if secrets:
        box = archives._fernet(key or KEY, SALT)
        members += [(f"secrets/{name}.json.enc", box.encrypt(json.dumps(s).encode())) for name, s in secrets.items()]
    head = {"format": 2, "namespace": namespace, "secrets": "encrypted" if secrets else "none",
            "salt": base64.b64encode(SALT).decode(),
            "checksums": {n: __import__("hashlib").sha256(b).hexdigest() for n, b in members}}
    text = json.dumps(head if manifest is None else manifest).encode()
    mac = [("manifest.mac", archives._mac(mac_key or key, SALT, text).encode())] if (mac_key or key) else []
    _tar(path, [("manifest.json", text), *mac, *members])
    return path


def refused(path: Path, key: bytes | None = KEY, pattern: str = "") -> str:
    with pytest.raises(ResilienceError) as info:
        archives.read(path, key)
    text = str(info.value)
    assert "\n" not in text and re.search(pattern, text), text
    assert isinstance(info.value, ArchiveError | UsageError)
    return text


GOOD = [_obj("Namespace", "shop", metadata={"name": "shop", "labels": {"team": "a"}}),
        _obj("ConfigMap", "settings", data={"a": "1"}), _obj("Deployment", "web", "apps/v1", spec={"replicas": 1})]


def test_a_good_archive_is_accepted_and_authenticated_with_its_key(tmp_path: Path) -> None:
    taken = archives.read(forge(tmp_path / "a.tar.gz", GOOD, key=KEY, secrets={"db": _obj("Secret", "db")}), KEY)
    assert taken.authenticated and len(taken.objects) == 3 and taken.secrets[0]["metadata"]["name"] == "db"
    assert plan(taken, None)[0] == "shop"
    written = Archive(namespace="shop", objects=GOOD, created=1.0)
    archives.write(written, tmp_path / "w.tar.gz", KEY)
    assert archives.read(tmp_path / "w.tar.gz", KEY).authenticated
    assert not archives.read(tmp_path / "w.tar.gz", None).authenticated  # a MAC nobody checked


CLUSTER_SCOPED = [
    _obj("ClusterRoleBinding", "own", "rbac.authorization.k8s.io/v1",
         roleRef={"kind": "ClusterRole", "name": "cluster-admin"}),
    _obj("ClusterRole", "all", "rbac.authorization.k8s.io/v1", rules=[{"apiGroups": ["*"], "verbs": ["*"]}]),
    _obj("Node", "fake-node"), _obj("PersistentVolume", "host", spec={"hostPath": {"path": "/"}}),
    _obj("MutatingWebhookConfiguration", "hook", "admissionregistration.k8s.io/v1"),
    _obj("ValidatingWebhookConfiguration", "hook", "admissionregistration.k8s.io/v1"),
    _obj("CustomResourceDefinition", "widgets.example.com", "apiextensions.k8s.io/v1"),
    _obj("APIService", "v1.example.com", "apiregistration.k8s.io/v1"),
    _obj("StorageClass", "fast", "storage.k8s.io/v1"), _obj("PriorityClass", "top", "scheduling.k8s.io/v1"),
]


@pytest.mark.parametrize("obj", CLUSTER_SCOPED, ids=[o["kind"] for o in CLUSTER_SCOPED])
def test_cluster_scoped_kinds_are_refused_even_in_a_keyed_archive(tmp_path: Path, obj: dict[str, Any]) -> None:
    text = refused(forge(tmp_path / "a.tar.gz", [*GOOD, obj], key=KEY), KEY, "cluster-scoped, not part of a")
    assert obj["kind"] in text and "refused before anything is applied" in text


@pytest.mark.parametrize(("objects", "secrets", "pattern"), [
    ([*GOOD, _obj("Namespace", "kube-system")], None, r"core/Namespace kube-system: another namespace"),
    ([_obj("Namespace", "other")], None, r"core/Namespace other: another namespace than the backup's \(shop\)"),
    ([_obj("ConfigMap", "x", metadata={"name": "x", "namespace": "kube-system"})], None,
     r"core/ConfigMap x: in namespace 'kube-system', not shop"),
    ([], {"db": _obj("ClusterRoleBinding", "own", "rbac.authorization.k8s.io/v1")}, r"secrets/db.json.enc: holds "
     r"rbac.authorization.k8s.io/ClusterRoleBinding own, not the v1 Secret"),
    ([], {"db": _obj("Secret", "other")}, r"holds core/Secret other, not the v1 Secret its name says"),
    ([], {"db": ["not", "an", "object"]}, r"a JSON list, not an object"),
])
def test_what_one_namespace_cannot_hold_is_refused(tmp_path: Path, objects: list[Any], secrets: Any,
                                                   pattern: str) -> None:
    refused(forge(tmp_path / "a.tar.gz", objects, key=KEY, secrets=secrets), KEY, pattern)


def test_a_member_whose_path_disagrees_with_its_content_is_refused(tmp_path: Path) -> None:
    binding = json.dumps(_obj("ClusterRoleBinding", "x", "rbac.authorization.k8s.io/v1")).encode()
    refused(forge(tmp_path / "a.tar.gz", raw=[("objects/core/ConfigMap/x.json", binding)]), KEY,
            r"objects/core/ConfigMap/x.json: holds rbac.authorization.k8s.io/ClusterRoleBinding x \(a member's path")


@pytest.mark.parametrize("name", ["../../kube-system/configmaps/x", "x?dryRun=All", "..", "X", "a%2F", "a" * 254,
                                  "", "caf\u00e9"])
def test_names_that_are_not_the_apis_are_refused(tmp_path: Path, name: str) -> None:
    obj = _obj("ConfigMap", name)
    member = f"objects/core/ConfigMap/{name}.json".replace("/../..", "/x/y")  # a valid tar name either way
    refused(forge(tmp_path / "a.tar.gz", raw=[(member, json.dumps(obj).encode())]), KEY,
            r"is not a valid object name|is not one a backup archive holds")


@pytest.mark.parametrize("member", ["../../etc/passwd", "/etc/passwd", "data/export/../../x", "notes.txt",
                                    "data/export/..", "secrets/../x.json.enc"])
def test_members_outside_the_layout_are_refused_before_they_are_read(tmp_path: Path, member: str) -> None:
    refused(forge(tmp_path / "a.tar.gz", GOOD, raw=[(member, b"x")]), KEY, "not one a backup archive holds")


def test_a_tampered_keyed_archive_is_refused_even_with_its_checksums_recomputed(tmp_path: Path) -> None:
    path = forge(tmp_path / "a.tar.gz", GOOD, key=KEY)
    forge(path, [*GOOD, _obj("ConfigMap", "extra")], mac_key=b"not the key the backup was made with")
    refused(path, KEY, "does not match its MAC: the archive was altered")
    # without the MAC it reads, but only as unauthenticated: a restore refuses it without the flag
    stripped = archives.read(forge(tmp_path / "b.tar.gz", GOOD), KEY)
    assert not stripped.authenticated
    with pytest.raises(RestoreError, match="unauthenticated.*nothing was applied; pass --key-file .* or "
                                           "--unauthenticated"):
        restore(None, stripped)  # type: ignore[arg-type]  # refused before the cluster is touched


def test_a_format_1_archive_still_reads_as_unauthenticated(tmp_path: Path) -> None:
    path = forge(tmp_path / "a.tar.gz", GOOD)
    with tarfile.open(path) as tar:
        members = [(i.name, tar.extractfile(i).read()) for i in tar]  # type: ignore[union-attr]
    manifest = json.loads(members[0][1])
    manifest["format"] = 1
    _tar(path, [("manifest.json", json.dumps(manifest).encode()), *members[1:]])
    taken = archives.read(path, KEY)
    assert not taken.authenticated and len(taken.objects) == 3


@pytest.mark.parametrize(("manifest", "pattern"), [
    ([1, 2], "is not a manifest"), ({"format": "1"}, "is not a manifest"), ({"format": True}, "is not a manifest"),
    ({"format": 2, "namespace": "shop", "checksums": ["x"]}, "checksums are not a mapping"),
    ({"format": 2, "namespace": "shop", "checksums": {"objects/core/ConfigMap/settings.json": 7}},
     "checksums are not a mapping"),
    ({"format": 2, "namespace": 5}, "namespace is not a string"),
    ({"format": 2, "namespace": "shop", "source": []}, "source is not a mapping"),
    ({"format": 2, "namespace": "shop", "created": "yesterday"}, "created is not a time"),
    ({"format": 2, "namespace": "shop", "omitted_secrets": ["../x"]}, "not an object name"),
    ({"format": 2, "namespace": "Kube System"}, "not a namespace name"),
    ({"format": 10**30}, "not valid JSON .*integer of 31 digits"),
])
def test_malformed_manifests_are_one_line(tmp_path: Path, manifest: Any, pattern: str) -> None:
    refused(forge(tmp_path / "a.tar.gz", [], manifest=manifest), None, pattern)


@pytest.mark.parametrize(("blob", "pattern"), [
    (b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x\xff"}}', "is not UTF-8"),
    (b"[1, 2, 3]", "a JSON list, not an object"),
    (b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": ' + b"9" * 5000 + b"}",
     "integer of 5000 digits"),
    (b"[" * 10000 + b"]" * 10000, "nested more than 64 levels"),
    (b'{"a": NaN}', "NaN is not a JSON number"),
    (b'{"a": ', "is not valid JSON"),
])
def test_malformed_members_are_one_line(tmp_path: Path, blob: bytes, pattern: str) -> None:
    refused(forge(tmp_path / "a.tar.gz", raw=[("objects/core/ConfigMap/x.json", blob)]), KEY, pattern)


def test_not_regular_and_duplicated_members_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        link = tarfile.TarInfo("objects/core/ConfigMap/x.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(link)
    refused(path, KEY, "is not a regular file")
    text = json.dumps(GOOD[1]).encode()
    forge(path, raw=[(_member(GOOD[1]), text), (_member(GOOD[1]), text)])
    refused(path, KEY, "twice")


def test_size_and_count_bombs_stop_at_their_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.tar.gz"
    _tar(big, [("objects/core/ConfigMap/x.json", b" " * (bounded.MAX_JSON + 1))])
    refused(big, KEY, "holds 8388609 bytes, more than the 8388608 such a member may hold")
    monkeypatch.setattr(bounded, "MAX_TOTAL", 1 << 20)
    _tar(big, [(f"data/export/p{i}", bytes(300_000)) for i in range(5)])
    refused(big, KEY, "more than 1 MiB uncompressed")
    monkeypatch.setattr(bounded, "MAX_MEMBERS", 50)
    forge(big, [_obj("ConfigMap", f"c{i}") for i in range(51)])
    refused(big, KEY, "more than 50 members")
    with tarfile.open(big, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("objects/core/ConfigMap/x.json")
        info.size, info.pax_headers = 2, {"comment": "x" * 100_000}
        tar.addfile(info, io.BytesIO(b"{}"))
    refused(big, KEY, "an extended header of 100[0-9]+ bytes")
    _tar(big, [("objects/core/ConfigMap/x.json", b"{}")], pax_headers={"comment": "x"})
    refused(big, KEY, r"is not a regular file \(tar type b'g'\)")  # a global header: tar would apply it to all


def test_long_names_through_pax_and_gnu_headers_are_read(tmp_path: Path) -> None:
    long = _obj("ConfigMap", "a" * 200)
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        path = tmp_path / f"{fmt}.tar.gz"
        text = json.dumps(long).encode()
        members = [(_member(long), text)]
        manifest = {"format": 2, "namespace": "shop",
                    "checksums": {_member(long): __import__("hashlib").sha256(text).hexdigest()}}
        _tar(path, [("manifest.json", json.dumps(manifest).encode()), *members], format=fmt)
        assert archives.read(path, None).objects == [long]


@pytest.mark.parametrize("damage", ["not gzip", "truncated", "empty"])
def test_files_that_are_not_archives_are_one_line(tmp_path: Path, damage: str) -> None:
    path = forge(tmp_path / "a.tar.gz", GOOD, key=KEY)
    data = path.read_bytes()
    path.write_bytes({"not gzip": b"PK\x03\x04 a zip", "truncated": data[: len(data) // 2], "empty": b""}[damage])
    refused(path, KEY, "not a readable backup archive|cut short")
    refused(tmp_path, KEY, "is not a regular file")
    refused(tmp_path / "missing.tar.gz", KEY, "no such archive")


def test_a_key_file_is_a_small_regular_file(tmp_path: Path) -> None:
    for path, pattern in [("/dev/zero", "is not a regular file"), (str(tmp_path), "is not a regular file"),
                          ("", "no file named")]:
        with pytest.raises(UsageError, match=pattern):
            archives.read_key(path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="is not a regular file"):
        archives.read_key(str(fifo))
    huge = tmp_path / "huge.key"
    huge.write_bytes(b"k" * 4097)
    with pytest.raises(UsageError, match="holds 4097 bytes; a key file holds at most 4096"):
        archives.read_key(str(huge))
    huge.write_bytes(b"k" * 4096)
    assert archives.read_key(str(huge)) == b"k" * 4096


def test_backup_output_must_be_a_new_or_regular_file_and_is_written_0600(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    (tmp_path / "to-dir").symlink_to(tmp_path / "dir")
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    for target, what in [("/dev/null", "a device"), ("/dev/full", "a device"), (tmp_path / "fifo", "a FIFO"),
                         (tmp_path / "dir", "a folder"), (tmp_path / "to-dir", "a folder"),
                         (tmp_path / "dangling", "a symbolic link to nothing"),
                         (tmp_path / "no" / "a.tar.gz", "no folder")]:
        with pytest.raises(UsageError, match=what):
            archives.write(Archive(namespace="shop", objects=GOOD), Path(target), KEY)
    assert Path("/dev/null").is_char_device()
    old = tmp_path / "old.tar.gz"
    old.write_text("an older archive")
    old.chmod(0o644)
    archives.write(Archive(namespace="shop", objects=GOOD), old, KEY)
    assert old.stat().st_mode & 0o777 == 0o600 and archives.read(old, KEY).authenticated
    assert sorted(p.name for p in tmp_path.iterdir() if ".part" in p.name) == []


def test_the_restore_target_is_guarded_like_an_experiments(tmp_path: Path) -> None:
    taken = Archive(namespace="shop", objects=GOOD, authenticated=True)
    for into, pattern in [("", "restore into '': not a namespace name"), ("Kube System", "not a namespace name"),
                          ("kube-system", "one of the cluster's own namespaces.*--allow-system-namespace"),
                          ("default", "own namespaces"), ("resilience-tests", "safety records of every run")]:
        with pytest.raises(UsageError, match=pattern):
            plan(taken, into)
    assert plan(taken, "kube-system", allow_system=True)[0] == "kube-system"
    with pytest.raises(UsageError, match="safety records"):
        plan(taken, "resilience-tests", allow_system=True)
    system = Archive(namespace="kube-system", objects=[_obj("ConfigMap", "x")])
    with pytest.raises(UsageError, match="restore into kube-system: refused"):
        plan(system, None)
    assert plan(system, None, allow_system=True)[0] == "kube-system"


def test_plan_refuses_an_in_memory_archive_holding_what_one_namespace_cannot() -> None:
    taken = Archive(namespace="shop", objects=[*GOOD, CLUSTER_SCOPED[0], _obj("ConfigMap", "x?dryRun=All")])
    with pytest.raises(RestoreError) as info:
        plan(taken, None)
    assert "ClusterRoleBinding own: cluster-scoped" in str(info.value)
    assert "'x?dryRun=All' is not a valid object name" in str(info.value) and "\n" not in str(info.value)


def _resource(kind: str, plural: str, namespaced: bool = True, group: str = "") -> Resource:
    return Resource(group, "v1", kind, plural, namespaced, frozenset({"get", "list", "patch"}))


class FakeResources:
    """Discovery and reads of a pretend API server."""

    def __init__(self, live_namespace: dict[str, Any] | None = None) -> None:
        self.kinds = [_resource("Namespace", "namespaces", False), _resource("ConfigMap", "configmaps"),
                      _resource("Widget", "widgets", False, "example.com"),
                      Resource("apps", "v1", "Deployment", "deployments", True, frozenset())]
        self.live_namespace = live_namespace

    def find(self, api_version: str, kind: str) -> Resource | None:
        group = api_version.rpartition("/")[0]
        return next((r for r in self.kinds if (r.group, r.kind) == (group, kind)), None)

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        return self.live_namespace

    def list(self, resource: Resource, namespace: str) -> list[dict[str, Any]]:
        return []


def test_the_servers_discovery_refuses_custom_cluster_scoped_kinds() -> None:
    _, objects, _ = plan(Archive(namespace="shop", objects=[*GOOD, _obj("Widget", "w", "example.com/v1")]), None)
    with pytest.raises(RestoreError, match=r"example.com/Widget w: cluster-scoped \(the server says so\)"):
        served(FakeResources(), objects)  # type: ignore[arg-type]
    _, objects, _ = plan(Archive(namespace="shop", objects=GOOD), None)
    assert set(served(FakeResources(), objects)) == {  # type: ignore[arg-type]
        "core/Namespace shop", "core/ConfigMap settings", "apps/Deployment web"}


def test_the_namespaces_labels_are_compared_and_a_weaker_pod_security_is_named() -> None:
    enforced = {"metadata": {"name": "shop", "labels": {"team": "a", "pod-security.kubernetes.io/enforce": "restricted",
                                                        "pod-security.kubernetes.io/warn": "baseline"}}}
    privileged = _obj("Namespace", "shop", metadata={"name": "shop", "labels": {
        "team": "a", "pod-security.kubernetes.io/enforce": "privileged"}})
    _, objects, _ = plan(Archive(namespace="shop", objects=[privileged, GOOD[1]]), None)
    fake = FakeResources(enforced)
    differ, weakened = conflicts(fake, served(fake, objects), "shop", objects)  # type: ignore[arg-type]
    assert differ == ["core/Namespace shop (labels or annotations)"]
    assert weakened == ["pod-security.kubernetes.io/enforce: restricted -> privileged",
                        "pod-security.kubernetes.io/warn: baseline -> (none)"]
    _, same, _ = plan(Archive(namespace="shop", objects=[GOOD[0]]), None)
    fake = FakeResources({"metadata": {"name": "shop", "labels": {"team": "a", "other": "x"}}})
    assert conflicts(fake, served(fake, same), "shop", same) == ([], [])  # type: ignore[arg-type]
    fake = FakeResources(None)  # no namespace yet: nothing to compare
    assert conflicts(fake, served(fake, objects), "shop", objects) == ([], [])  # type: ignore[arg-type]


def test_every_url_segment_is_quoted() -> None:
    configmaps = _resource("ConfigMap", "configmaps")
    assert configmaps.path("shop", "../../kube-system/configmaps/x") == \
        "/api/v1/namespaces/shop/configmaps/..%2F..%2Fkube-system%2Fconfigmaps%2Fx"
    assert configmaps.path("shop", "x?dryRun=All") == "/api/v1/namespaces/shop/configmaps/x%3FdryRun%3DAll"
    assert configmaps.path("..", "..") == "/api/v1/namespaces/%2E%2E/configmaps/%2E%2E"
    assert configmaps.path("shop", "web") == "/api/v1/namespaces/shop/configmaps/web"


def test_the_cli_says_bad_backup_and_restore_input_in_one_line(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from resilience_tests.cli import main

    good = forge(tmp_path / "a.tar.gz", GOOD, key=KEY)
    (tmp_path / "k").write_bytes(KEY)
    for argv, code, pattern in [
        (["backup", ""], 2, "'' is not a namespace name"),
        (["backup", "shop", "-o", "/dev/null"], 2, "it is a device"),
        (["backup", "shop", "--key-file", "/dev/zero"], 2, "is not a regular file"),
        (["restore", str(good), "--key-file", str(tmp_path / "k"), "--into", ""], 2, "not a namespace name"),
        (["restore", str(good), "--key-file", str(tmp_path / "k"), "--into", "kube-system"], 2,
         "--allow-system-namespace"),
        (["restore", str(tmp_path / "k")], 1, "not a readable backup archive"),
    ]:
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(pattern, err), (argv, err)
