"""The safety net of a disaster step: a namespace deleted by a run that then died is restored by cleanup.

Before a ``disaster`` step deletes anything, its backup is written to this machine
(``<cache>/pending-restores/<run id>.tar.gz``, Secrets encrypted under a random key kept beside it in
``<run id>.key``, both 0600 in a 0700 folder) with a copy of the record (``<run id>.json``, 0600), and the
record is left in the cluster: a ConfigMap ``disaster-<run id>`` in namespace ``resilience-tests`` saying which
namespace, host, file, selector and import hook, and a MAC over those fields (HMAC-SHA256 under this host's
record key ``<cache>/pending-restores/.record-key``, made once, 0600). The run removes all of it once the
namespace is back. If the run is killed in between, ``resilience cleanup`` finds the record of a dead run and
restores the namespace from the file (on the host that holds it).

Whoever may write ConfigMaps in ``resilience-tests`` may plant a record, so cleanup acts on one only when it
matches what this host wrote (:func:`verify`): its MAC verifies under the record key, its archive is a regular
file of the pending folder (symbolic links resolved), it agrees field by field with the local copy (the import
hook run in the pods is the local copy's), its namespace may be a restore target (never the cluster's own
namespaces, never ``resilience-tests``) and is the namespace the archive holds. Any other record is reported
as ``refused`` and nothing is done for it: no restore, no hook, no file deleted. Each record is handled on its
own: one refused or failed record is one line, and the others go on.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resilience_tests.backup import archive as archives
from resilience_tests.backup import hooks
from resilience_tests.backup.archive import Archive
from resilience_tests.backup.hooks import Hook
from resilience_tests.cluster.cleanup import DONE, FAILED, LEFT_ALONE, REFUSED, CleanupAction, dead_note
from resilience_tests.cluster.kube import Kube
from resilience_tests.cluster.leases import LEASE_NAMESPACE, run_state
from resilience_tests.cluster.resources import Resource, ResourceError, Resources
from resilience_tests.errors import ResilienceError
from resilience_tests.labels import object_name
from resilience_tests.namespaces import check_target, is_namespace_name

LABEL = "resilience-tests.io/pending-restore"
RECORD_KEY = ".record-key"
FIELDS = ("run", "namespace", "host", "archive", "selector", "import")  # what the MAC covers, in this order
MAX_FIELD = 4096
MAX_LOCAL = 64 * 1024  # the local copy and the archive's key are small; anything larger is not ours


class RecordRefused(ResilienceError):
    """A pending-restore record that does not match what this host wrote: nothing is done for it."""


@dataclass(frozen=True)
class Pending:
    """A namespace a run deleted and has not brought back yet."""

    run_id: str
    namespace: str
    host: str
    archive: str
    selector: str = ""  # the pods the import hook runs in
    import_hook: Hook = ()  # fed each pod's export after the restore

    @property
    def key_path(self) -> str:
        return self.archive.removesuffix(".tar.gz") + ".key"

    @property
    def local_path(self) -> str:
        """This host's copy of the record, next to the archive."""
        return self.archive.removesuffix(".tar.gz") + ".json"

    def fields(self) -> dict[str, str]:
        """The record's fields as the ConfigMap and the local copy hold them."""
        return {"run": self.run_id, "namespace": self.namespace, "host": self.host, "archive": self.archive,
                "selector": self.selector, "import": json.dumps(hooks.to_json(self.import_hook))}


def folder() -> Path:
    from resilience_tests.testbed.build import cache_root

    path = cache_root() / "pending-restores"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write a 0600 file, never through a symbolic link (and, ``exclusive``, never over an existing file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, 0o600)
        handle.write(data)


def _read_private(path: Path, what: str) -> bytes:
    """A small regular file of ours (not a link); RecordRefused saying what is wrong with it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise RecordRefused(f"{what} {path} is missing") from None
    except OSError as exc:
        raise RecordRefused(f"{what} {path} cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_LOCAL:
            raise RecordRefused(f"{what} {path} is not a small regular file")
        return handle.read(MAX_LOCAL + 1)


def record_key(*, create: bool = False) -> bytes | None:
    """This host's key for the MACs of its records (made once with ``create``); None if there is none."""
    path = folder() / RECORD_KEY
    if create:
        with contextlib.suppress(FileExistsError):
            _write_private(path, secrets.token_hex(32).encode(), exclusive=True)
    try:
        key = _read_private(path, "the record key")
    except RecordRefused:
        return None
    return key if len(key) >= 32 else None


def mac(fields: Mapping[str, str], key: bytes) -> str:
    """HMAC-SHA256 over the record's fields in :data:`FIELDS` order (hex)."""
    canonical = json.dumps([[name, fields[name]] for name in FIELDS], separators=(",", ":"))
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def _name(run_id: str) -> str:
    return object_name("disaster-" + run_id)


def _configmaps(resources: Resources) -> Resource:
    found = resources.find("v1", "ConfigMap")
    assert found is not None, "every API server serves ConfigMaps"
    return found


def record(kube: Kube, run_id: str, taken: Archive, *, selector: str = "",
           import_hook: Hook = ()) -> Pending:
    """Write the backup and the record's copy to this machine, then leave the record in the cluster; before
    anything is deleted."""
    base = str(folder() / re.sub(r"[^A-Za-z0-9._-]", "-", run_id))
    key = base64.urlsafe_b64encode(secrets.token_bytes(32))
    pending = Pending(run_id, taken.namespace, socket.gethostname(), base + ".tar.gz", selector, import_hook)
    _write_private(Path(pending.key_path), key)
    archives.write(taken, Path(pending.archive), key)
    Path(pending.archive).chmod(0o600)
    fields = pending.fields()
    _write_private(Path(pending.local_path), json.dumps(fields, indent=1).encode())
    signing = record_key(create=True)
    if signing is None:
        raise RecordRefused(f"the record key {folder() / RECORD_KEY} cannot be made or read",
                            hint="check that folder belongs to you and is writable")
    resources = kube.resources()
    resources.apply(_configmaps(resources), LEASE_NAMESPACE, {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": _name(run_id), "labels": {LABEL: "true"}},
        "data": {**fields, "mac": mac(fields, signing)}},
        force=True)
    return pending


def forget(kube: Kube, pending: Pending) -> None:
    """The namespace is back: remove the record and the files."""
    resources = kube.resources()
    resources.delete(_configmaps(resources), LEASE_NAMESPACE, _name(pending.run_id))
    for path in (pending.archive, pending.key_path, pending.local_path):
        with contextlib.suppress(OSError):
            Path(path).unlink()


def _listed(kube: Kube) -> list[dict[str, Any]]:
    """The data of every pending-restore record in the cluster, as it stands (unverified)."""
    resources = kube.resources()
    try:
        items = resources.list(_configmaps(resources), LEASE_NAMESPACE, f"{LABEL}=true")
    except ResourceError as exc:
        if exc.status in (403, 404):
            return []
        raise
    return [dict(data) for data in (item.get("data") for item in items) if isinstance(data, dict)]


def recorded(kube: Kube) -> list[Pending]:
    """Every pending restore recorded in the cluster, as the records say (see :func:`verify` before acting)."""
    found = []
    for data in _listed(kube):
        try:
            hook = hooks.from_json(json.loads(data.get("import") or "[]"))
        except (ValueError, TypeError):
            hook = ()
        found.append(Pending(str(data.get("run", "")), str(data.get("namespace", "")), str(data.get("host", "")),
                             str(data.get("archive", "")), str(data.get("selector", "")), hook))
    return found


def verify(data: Mapping[str, Any], where: Path, key: bytes | None) -> tuple[Pending, Archive]:
    """The record, as this host wrote it, and its archive; :class:`RecordRefused` (why) if it is not ours.

    Args:
        data: the record's ConfigMap data.
        where: the pending folder its archive must be in.
        key: this host's record key (None: missing, so nothing can be verified).
    """
    if key is None:
        raise RecordRefused(f"this host's record key {where / RECORD_KEY} is missing, so the record cannot be "
                            "checked")
    fields = {name: data.get(name) for name in FIELDS}
    bad = [name for name, value in fields.items() if not isinstance(value, str) or len(value) > MAX_FIELD]
    if bad or not isinstance(data.get("mac"), str):
        raise RecordRefused(f"its field(s) {', '.join(bad or ['mac'])} are missing or not text")
    text = {name: str(value) for name, value in fields.items()}
    if not hmac.compare_digest(mac(text, key), str(data["mac"])):
        raise RecordRefused("its MAC does not verify: this host did not write it, or it was changed since")
    archive = text["archive"]
    real = Path(os.path.realpath(archive))
    if not archive.endswith(".tar.gz") or real.parent != Path(os.path.realpath(where)) or \
            not os.path.isabs(archive):
        raise RecordRefused(f"its archive {archive!r} is not a file of {where}")
    try:
        kind = os.lstat(real).st_mode
    except OSError:
        raise RecordRefused(f"its archive {archive!r} does not exist") from None
    if not stat.S_ISREG(kind) or Path(archive).is_symlink():
        raise RecordRefused(f"its archive {archive!r} is not a regular file")
    local = real.with_name(real.name.removesuffix(".tar.gz") + ".json")
    try:
        copy = json.loads(_read_private(local, "this host's copy of the record"))
    except ValueError:
        raise RecordRefused(f"this host's copy of the record {local} is not JSON") from None
    differ = [name for name in FIELDS if not isinstance(copy, dict) or copy.get(name) != text[name]]
    if differ:
        raise RecordRefused(f"it differs from this host's copy {local} in: {', '.join(differ)}")
    try:
        check_target(text["namespace"], what="a restore into")
        hook = hooks.from_json(json.loads(copy["import"]))
    except ResilienceError as exc:
        raise RecordRefused(str(exc)) from None
    except (ValueError, TypeError):
        raise RecordRefused(f"the import hook in {local} cannot be read") from None
    secret = _read_private(real.with_name(real.name.removesuffix(".tar.gz") + ".key"), "its archive's key")
    try:
        taken = archives.read(real, secret.strip())
    except ResilienceError as exc:
        raise RecordRefused(f"its archive cannot be used: {exc}") from None
    if taken.namespace != text["namespace"]:
        raise RecordRefused(f"it names namespace {text['namespace']} but its archive holds namespace "
                            f"{taken.namespace!r}")
    return Pending(text["run"], text["namespace"], text["host"], str(real), text["selector"], hook), taken


def _import(kube: Kube, pending: Pending, taken: Archive) -> str:
    """Run the import hook in each pod that had data at the backup, fed that data."""
    imported: list[str] = []
    failed: list[str] = []
    pods = {p.name for p in kube.pods(pending.namespace, pending.selector or None) if not p.terminating}
    for key, blob in sorted(taken.data.items()):
        pod = key.split("/", 1)[1]
        if not key.startswith("export/") or pod not in pods:
            continue
        try:
            hooks.call(kube, pod, pending.namespace, pending.import_hook, stdin=blob.decode())
            imported.append(pod)
        except ResilienceError as exc:
            failed.append(f"{pod} ({str(exc).strip()[-160:]})")
    text = f"data imported into {len(imported)} pod(s)"
    return text + (f", failed in {', '.join(failed)}" if failed else "")


Restore = Callable[..., Any]


def cleanup(kube: Kube, *, run_id: str | None = None, dry_run: bool = False, force: bool = False,
            restore: Restore | None = None) -> list[CleanupAction]:
    """Restore the namespaces of dead runs from the records this host wrote; what became of each record.

    ``restore`` is :func:`resilience_tests.backup.run.restore` unless given.
    """
    if restore is None:
        from resilience_tests.backup import run as runs

        restore = runs.restore
    key = record_key()
    where = folder()
    actions: list[CleanupAction] = []
    for data in _listed(kube):
        run = str(data.get("run", ""))
        if run_id and run != run_id:
            continue
        named = str(data.get("namespace", ""))
        target = f"namespace/{named if is_namespace_name(named) else repr(named[:63])}"
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", run):  # never printed raw: it could hide anything
            actions.append(CleanupAction(repr(run[:80]), target, "its run id is not one this tool makes", REFUSED))
            continue
        try:
            actions += _one(kube, data, run, target, where, key, dry_run=dry_run,
                            forced=force and run == run_id, restore=restore)
        except ResilienceError as exc:  # a restore that failed, a record that cannot be removed: this one only
            actions.append(CleanupAction(run, target, str(exc).splitlines()[0], FAILED))
    return actions


def _one(kube: Kube, data: Mapping[str, Any], run: str, target: str, where: Path, key: bytes | None, *,
         dry_run: bool, forced: bool, restore: Restore) -> list[CleanupAction]:
    state = run_state(kube, run)
    said = dead_note(run, state)
    if state.alive and not forced:
        return [*said, CleanupAction(run, target, f"the run is {state.describe()}", LEFT_ALONE)]
    host = str(data.get("host", ""))
    if host != socket.gethostname():
        return [*said, CleanupAction(run, target, f"its backup is {str(data.get('archive', ''))!r} on host "
                                                  f"{host!r}: run `resilience cleanup` there", LEFT_ALONE)]
    try:
        pending, taken = verify(data, where, key)
    except RecordRefused as exc:
        return [*said, CleanupAction(run, target, str(exc), REFUSED)]
    target = f"namespace/{pending.namespace}"
    if dry_run:
        return [*said, CleanupAction(run, target, f"restore from {pending.archive} (deleted by the run's "
                                                  "disaster step, never brought back)")]
    result = restore(kube, taken, overwrite=True, timeout=300)
    text = f"restored {len(result.applied)} object(s) from {pending.archive}"
    if result.not_ready:
        text += f"; not ready: {', '.join(result.not_ready)}"
    elif pending.import_hook:
        text += "; " + _import(kube, pending, taken)
    forget(kube, pending)
    return [*said, CleanupAction(run, target, text, DONE)]
