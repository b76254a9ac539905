"""The safety net of a disaster step: a namespace deleted by a run that then died is restored by cleanup.

Before a ``disaster`` step deletes anything, its backup is written to this machine
(``<cache>/pending-restores/<run id>.tar.gz``, Secrets encrypted under a random key kept beside it, both 0600
in a 0700 folder) and a record is left in the cluster: a ConfigMap ``disaster-<run id>`` in namespace
``resilience-tests`` saying which namespace, which host and which file. The run removes both once the
namespace is back. If the run is killed in between, ``resilience cleanup`` finds the record of a run whose
lease expired and restores the namespace from the file (on the host that holds it).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from resilience_tests.backup import archive as archives
from resilience_tests.backup import hooks
from resilience_tests.backup.archive import Archive
from resilience_tests.backup.hooks import Hook
from resilience_tests.cluster.kube import Kube
from resilience_tests.cluster.leases import LEASE_NAMESPACE, run_state
from resilience_tests.cluster.resources import Resource, ResourceError, Resources
from resilience_tests.errors import ResilienceError
from resilience_tests.labels import object_name

LABEL = "resilience-tests.io/pending-restore"


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


def folder() -> Path:
    from resilience_tests.testbed.build import cache_root

    path = cache_root() / "pending-restores"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _name(run_id: str) -> str:
    return object_name("disaster-" + run_id)


def _configmaps(resources: Resources) -> Resource:
    found = resources.find("v1", "ConfigMap")
    assert found is not None, "every API server serves ConfigMaps"
    return found


def record(kube: Kube, run_id: str, taken: Archive, *, selector: str = "",
           import_hook: Hook = ()) -> Pending:
    """Write the backup to this machine and leave the record in the cluster; before anything is deleted."""
    base = folder() / re.sub(r"[^A-Za-z0-9._-]", "-", run_id)
    key = base64.urlsafe_b64encode(secrets.token_bytes(32))
    key_path = base.with_suffix(".key")
    key_path.touch(mode=0o600)
    key_path.write_bytes(key)
    archive = base.with_suffix(".tar.gz")
    archives.write(taken, archive, key)
    archive.chmod(0o600)
    pending = Pending(run_id, taken.namespace, socket.gethostname(), str(archive), selector, import_hook)
    resources = kube.resources()
    resources.apply(_configmaps(resources), LEASE_NAMESPACE, {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": _name(run_id), "labels": {LABEL: "true"}},
        "data": {"run": run_id, "namespace": taken.namespace, "host": pending.host, "archive": pending.archive,
                 "selector": selector, "import": json.dumps(hooks.to_json(import_hook))}},
        force=True)
    return pending


def forget(kube: Kube, pending: Pending) -> None:
    """The namespace is back: remove the record and the files."""
    resources = kube.resources()
    resources.delete(_configmaps(resources), LEASE_NAMESPACE, _name(pending.run_id))
    for path in (pending.archive, pending.key_path):
        with contextlib.suppress(OSError):
            Path(path).unlink()


def recorded(kube: Kube) -> list[Pending]:
    """Every pending restore recorded in the cluster."""
    resources = kube.resources()
    try:
        items = resources.list(_configmaps(resources), LEASE_NAMESPACE, f"{LABEL}=true")
    except ResourceError as exc:
        if exc.status in (403, 404):
            return []
        raise
    return [Pending(str(d.get("run", "")), str(d.get("namespace", "")), str(d.get("host", "")),
                    str(d.get("archive", "")), str(d.get("selector", "")),
                    hooks.from_json(json.loads(d.get("import") or "[]"))) for d in (i.get("data") or {} for i in items)]


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


def cleanup(kube: Kube, *, run_id: str | None = None, dry_run: bool = False, force: bool = False,
            ) -> list[tuple[str, str, str]]:
    """Restore the namespaces of dead runs; (run id, target, what was done) for each record."""
    from resilience_tests.backup.run import restore

    done: list[tuple[str, str, str]] = []
    for pending in recorded(kube):
        if run_id and pending.run_id != run_id:
            continue
        target = f"namespace/{pending.namespace}"
        state = run_state(kube, pending.run_id)
        if state.alive and not (force and pending.run_id == run_id):
            done.append((pending.run_id, target, f"left alone: the run is {state.describe()}"))
            continue
        if pending.host != socket.gethostname() or not Path(pending.archive).is_file():
            done.append((pending.run_id, target, f"left alone: its backup is {pending.archive} on host "
                                                 f"{pending.host}: run `resilience cleanup` there"))
            continue
        if dry_run:
            done.append((pending.run_id, target, f"restore from {pending.archive} (deleted by the run's disaster "
                                                 "step, never brought back)"))
            continue
        taken = archives.read(Path(pending.archive), Path(pending.key_path).read_bytes())
        result = restore(kube, taken, overwrite=True, timeout=300)
        said = f"restored {len(result.applied)} object(s) from {pending.archive}"
        if result.not_ready:
            said += f"; not ready: {', '.join(result.not_ready)}"
        elif pending.import_hook:
            said += "; " + _import(kube, pending, taken)
        forget(kube, pending)
        done.append((pending.run_id, target, said))
    return done
