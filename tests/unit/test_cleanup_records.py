"""Pending-restore records the cluster cannot forge: each bad record is refused with its reason, nothing is done
for it, and the good records in the same cleanup are processed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from resilience_tests.backup import archive as archives
from resilience_tests.backup import pending
from resilience_tests.backup.run import Restored, RestoreError
from resilience_tests.cluster.cleanup import DONE, FAILED, LEFT_ALONE, REFUSED, CleanupAction
from resilience_tests.cluster.leases import RunState
from resilience_tests.cluster.resources import Resource, ResourceError
from resilience_tests.errors import ResilienceError

CONFIGMAPS = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"list", "create", "delete"}))


class FakeResources:
    """The ConfigMaps of namespace resilience-tests, in memory."""

    def __init__(self, store: dict[str, dict[str, Any]]) -> None:
        self.store = store

    def find(self, api_version: str, kind: str) -> Resource | None:
        return CONFIGMAPS if (api_version, kind) == ("v1", "ConfigMap") else None

    def apply(self, resource: Resource, namespace: str, obj: dict[str, Any], *, force: bool) -> dict[str, Any]:
        self.store[obj["metadata"]["name"]] = obj
        return obj

    def list(self, resource: Resource, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        return list(self.store.values())

    def delete(self, resource: Resource, namespace: str, name: str) -> None:
        self.store.pop(name, None)


class FakeKube:
    def __init__(self) -> None:
        self.store: dict[str, dict[str, Any]] = {}

    def resources(self) -> FakeResources:
        return FakeResources(self.store)


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    monkeypatch.setenv("RESILIENCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pending, "run_state", lambda kube, run: RunState(False))  # every run is dead
    return FakeKube()


def _taken(namespace: str) -> archives.Archive:
    return archives.Archive(namespace=namespace, objects=[
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}}])


def _record(kube: FakeKube, run: str, namespace: str = "demo") -> pending.Pending:
    return pending.record(kube, run, _taken(namespace))  # type: ignore[arg-type]


def _data(kube: FakeKube, run: str) -> dict[str, str]:
    data: dict[str, str] = kube.store[f"disaster-{run}"]["data"]
    return data


def _plant(kube: FakeKube, run: str, data: dict[str, str], *, sign: bool = True) -> None:
    """A record as someone with write access to the ConfigMaps would leave it (signed with this host's key when
    ``sign``, to show that the other checks hold on their own)."""
    data = {**data, "run": run}
    if sign:
        key = pending.record_key()
        assert key is not None
        data["mac"] = pending.mac(data, key)
    kube.store[f"disaster-{run}"] = {"metadata": {"name": f"disaster-{run}"}, "data": data}


class Restorer:
    def __init__(self, failing: str = "") -> None:
        self.calls: list[str] = []
        self.failing = failing

    def __call__(self, kube: Any, taken: archives.Archive, **kwargs: Any) -> Restored:
        if taken.namespace == self.failing:
            raise RestoreError(f"applying core/ConfigMap settings into {taken.namespace} failed: HTTP 500")
        self.calls.append(taken.namespace)
        return Restored(taken.namespace, applied=["core/Namespace demo", "core/ConfigMap settings"])


def _by_run(actions: list[CleanupAction]) -> dict[str, CleanupAction]:
    return {a.run_id: a for a in actions}


def test_planted_records_are_refused_each_with_its_reason_and_the_good_one_is_restored(
        kube: FakeKube, tmp_path: Path) -> None:
    good = _record(kube, "good")
    where = pending.folder()
    assert oct((where / pending.RECORD_KEY).stat().st_mode & 0o777) == "0o600"
    assert oct(Path(good.local_path).stat().st_mode & 0o777) == "0o600"
    # a record whose MAC was not made with this host's key
    _record(kube, "forged")
    _plant(kube, "forged", {**_data(kube, "forged"), "mac": "0" * 64}, sign=False)
    # an archive outside the pending folder (any file of this host)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    archives.write(_taken("demo"), outside / "x.tar.gz", None)
    _plant(kube, "outside", {**_data(kube, "good"), "archive": str(outside / "x.tar.gz")})
    # a symbolic link in the folder pointing out of it
    (where / "link.tar.gz").symlink_to(outside / "x.tar.gz")
    _plant(kube, "link", {**_data(kube, "good"), "archive": str(where / "link.tar.gz")})
    # a record naming another namespace than its archive holds (local copy changed the same way)
    other = _record(kube, "mismatch", namespace="other")
    changed = {**_data(kube, "mismatch"), "namespace": "demo"}
    changed.pop("mac")
    Path(other.local_path).write_text(json.dumps(changed))
    _plant(kube, "mismatch", changed)
    # an import hook that is not the one this host recorded
    _record(kube, "hooked")
    _plant(kube, "hooked", {**_data(kube, "hooked"), "import": json.dumps(["sh", "-c", "id"])})
    # a record naming one of the cluster's own namespaces
    _record(kube, "system", namespace="kube-system")
    # a run id carrying a terminal escape
    _plant(kube, "x\x1b]0;owned\x07", _data(kube, "good"))
    restorer = Restorer()

    actions = pending.cleanup(kube, restore=restorer)  # type: ignore[arg-type]

    seen = _by_run(actions)
    assert seen["good"].outcome == DONE and "restored 2 object(s)" in seen["good"].action
    assert restorer.calls == ["demo"]  # the good record only
    assert "disaster-good" not in kube.store and not Path(good.archive).exists()
    assert not Path(good.local_path).exists() and not Path(good.key_path).exists()
    reasons = {run: a.action for run, a in seen.items() if a.outcome == REFUSED}
    assert set(reasons) == {"forged", "outside", "link", "mismatch", "hooked", "system", "'x\\x1b]0;owned\\x07'"}
    assert reasons["'x\\x1b]0;owned\\x07'"] == "its run id is not one this tool makes"
    assert "MAC does not verify" in reasons["forged"]
    assert "is not a file of" in reasons["outside"]
    assert "is not a file of" in reasons["link"]
    assert "its archive holds namespace 'other'" in reasons["mismatch"]
    assert "differs from this host's copy" in reasons["hooked"] and reasons["hooked"].endswith("in: import")
    assert "kube-system: refused" in reasons["system"]
    # nothing was done for a refused record: its record and its files are still there
    for run in {"forged", "outside", "link", "mismatch", "hooked", "system"}:
        assert f"disaster-{run}" in kube.store
    assert (outside / "x.tar.gz").exists() and (where / "link.tar.gz").is_symlink()
    assert Path(other.archive).exists() and Path(other.key_path).exists()


def test_a_missing_record_key_refuses_every_record_and_crashes_nothing(kube: FakeKube) -> None:
    first = _record(kube, "one")
    _record(kube, "two")
    (pending.folder() / pending.RECORD_KEY).unlink()
    restorer = Restorer()

    actions = pending.cleanup(kube, restore=restorer)  # type: ignore[arg-type]

    assert [a.outcome for a in actions] == [REFUSED, REFUSED]
    assert all("record key" in a.action and "is missing" in a.action for a in actions)
    assert restorer.calls == [] and Path(first.archive).exists() and Path(first.key_path).exists()


def test_one_failing_restore_is_one_line_and_the_others_go_on(kube: FakeKube) -> None:
    _record(kube, "boom", namespace="broken")
    _record(kube, "fine", namespace="demo")
    restorer = Restorer(failing="broken")

    seen = _by_run(pending.cleanup(kube, restore=restorer))  # type: ignore[arg-type]

    assert seen["boom"].outcome == FAILED and "HTTP 500" in seen["boom"].action
    assert seen["fine"].outcome == DONE and restorer.calls == ["demo"]
    assert "disaster-boom" in kube.store  # not forgotten: it can be tried again


def test_an_unreadable_archive_or_a_missing_archive_key_is_refused(kube: FakeKube) -> None:
    broken = _record(kube, "garbled")
    Path(broken.archive).write_bytes(b"not a tar at all")
    keyless = _record(kube, "keyless")
    Path(keyless.key_path).unlink()
    _record(kube, "fine")

    seen = _by_run(pending.cleanup(kube, restore=Restorer()))  # type: ignore[arg-type]

    assert seen["garbled"].outcome == REFUSED and "archive cannot be used" in seen["garbled"].action
    assert seen["keyless"].outcome == REFUSED and "archive's key" in seen["keyless"].action
    assert seen["fine"].outcome == DONE


def test_a_live_run_or_a_record_of_another_host_is_left_alone(kube: FakeKube, monkeypatch: pytest.MonkeyPatch,
                                                              ) -> None:
    _record(kube, "live")
    _plant(kube, "far", {**_data(kube, "live"), "host": "another-host"}, sign=False)
    monkeypatch.setattr(pending, "run_state", lambda kube, run: RunState(run == "live", "me@here/1", 3.0))

    seen = _by_run(pending.cleanup(kube, restore=Restorer()))  # type: ignore[arg-type]

    assert seen["live"].outcome == LEFT_ALONE and "alive" in seen["live"].action
    assert seen["far"].outcome == LEFT_ALONE and "on host 'another-host'" in seen["far"].action


def test_verify_accepts_what_this_host_wrote_and_returns_the_local_copy(kube: FakeKube) -> None:
    from resilience_tests.backup.hooks import HttpHook

    hook = HttpHook(port=8080, path="/records/import")
    made = pending.record(kube, "run-1", _taken("demo"), selector="app=web", import_hook=hook)  # type: ignore[arg-type]

    checked, taken = pending.verify(_data(kube, "run-1"), pending.folder(), pending.record_key())

    assert checked == made and taken.namespace == "demo"
    assert pending.verify.__doc__
    with pytest.raises(pending.RecordRefused, match="is missing"):
        pending.verify(_data(kube, "run-1"), pending.folder(), None)
    with pytest.raises(pending.RecordRefused, match="missing or not text"):
        pending.verify({"run": "x"}, pending.folder(), pending.record_key())


def test_dry_run_plans_the_good_record_and_refuses_the_bad_one(kube: FakeKube) -> None:
    good = _record(kube, "good")
    _plant(kube, "bad", {**_data(kube, "good"), "namespace": "elsewhere"}, sign=False)

    seen = _by_run(pending.cleanup(kube, dry_run=True, restore=Restorer()))  # type: ignore[arg-type]

    assert seen["good"].outcome == DONE and seen["good"].action.startswith("restore from")
    assert seen["bad"].outcome == REFUSED
    assert Path(good.archive).exists() and "disaster-good" in kube.store


def test_resource_error_is_one_of_ours() -> None:
    error = ResourceError(409, "conflict")
    assert isinstance(error, ResilienceError) and error.status == 409 and str(error) == "conflict"


def test_the_record_key_is_made_once_and_private(kube: FakeKube) -> None:
    first = pending.record_key(create=True)
    again = pending.record_key(create=True)
    assert first is not None and first == again
    path = pending.folder() / pending.RECORD_KEY
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(pending.folder().stat().st_mode & 0o777) == "0o700"
    path.unlink()
    os.symlink("/etc/hostname", path)
    assert pending.record_key() is None  # a link is never taken as the key
