"""Backup, disaster and restore as experiment steps, on the experiment's clock like any fault.

    faults:
      - {type: backup, at: 2s, export: [/demoapp, export, --data, /data], probe: [/demoapp, checksum, --data, /data]}
      - {type: disaster, at: 8s}                 # the target namespace is deleted (or: what: claims / objects)
      - {type: restore, at: 12s, import: [/demoapp, import, --data, /data], timeout: 180s}

Each hook is a command run in the pod or an HTTP call to it through the API server (``{port: 8080, path:
/records/export}``, see :mod:`resilience_tests.backup.hooks`). ``backup`` reads the data probe in every pod of
the target (JSON with ``count`` and/or ``sha256``), runs the export hook in each pod (what it answers goes
into the archive, per pod), and backs the
namespace up in memory (Secrets included: the archive is never written). ``disaster`` reads the probe again
(what was written since the backup, for ``rpo``) and deletes. ``restore`` applies the backup, waits for the
workloads, runs the import hook in each pod with that pod's export on its standard input, reads the probe
until it answers, and compares the namespace's objects with those before the disaster.

What each step saw is recorded on the timeline (``action`` records ``backup``, ``disaster``, ``restored``),
where the checks ``rto``, ``restored-objects``, ``data-intact`` and ``rpo`` read it.

The disaster is always undone: if no restore step brought the namespace back, its revert restores the backup.
A disaster without a backup before it deletes nothing. ``disaster`` and ``restore`` act on their namespace with
admin power: one of the cluster's own namespaces is refused unless ``guardrails.allow_kube_system``, and
``resilience-tests`` (where every run keeps its leases and safety records) always, when the step is built (so
in the plan and the dry run) and again before it acts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from resilience_tests.backup import hooks, pending, velero
from resilience_tests.backup.actions import BackupTaken, DisasterStruck, DisasterUndone, Probe, Restored
from resilience_tests.backup.archive import Archive, kind_key
from resilience_tests.backup.clean import diff
from resilience_tests.backup.hooks import Hook
from resilience_tests.backup.run import backup, namespace_objects, restore, wait_ready
from resilience_tests.errors import ResilienceError
from resilience_tests.faults.base import FaultContext, FaultError, FaultParams
from resilience_tests.labels import object_name
from resilience_tests.schema import Duration
from resilience_tests.waiting import wait_until

SHARED = "backup-restore"  # key of the steps' shared state in FaultContext.shared


class BackupParams(FaultParams):
    """Keys of a backup step."""

    export: Hook = ()  # run in each pod of the target; what it answers is archived
    probe: Hook = ()  # answers {"count": N, "sha256": "..."} in each pod of the target
    exclude: tuple[str, ...] = ()  # kinds left out of the backup: ConfigMap, apps/Deployment, example.com/Widget
    engine: Literal["auto", "builtin", "velero"] = "auto"  # auto: Velero where the cluster runs it


class DisasterParams(FaultParams):
    """Keys of a disaster step."""

    what: Literal["namespace", "objects", "claims"] = "namespace"
    kinds: tuple[str, ...] = ()  # with what: objects, the kinds deleted (default: every kind backed up)


class RestoreParams(FaultParams):
    """Keys of a restore step."""

    import_: Hook = Field(default=(), alias="import")  # fed each pod's export (standard input, or the body)
    timeout: Duration = 180.0


def _velero_name(run_id: str, what: str) -> str:
    """A Velero object name for this run's backup or restore (at most 63 characters)."""
    return f"{object_name(run_id, limit=63 - len(what) - 1)}-{what}"


def _state(ctx: FaultContext) -> dict[str, Any]:
    state: dict[str, Any] = ctx.shared.setdefault(SHARED, {})
    return state


def _matches(kind: str, wanted: tuple[str, ...]) -> bool:
    """``core/ConfigMap`` matches ``ConfigMap``, ``core/ConfigMap`` and ``configmap``."""
    short = kind.split("/", 1)[1]
    return any(w.lower() in (kind.lower(), short.lower()) for w in wanted)


def _pods(ctx: FaultContext) -> list[str]:
    """Running, not terminating pods of the target, by name."""
    return sorted(p.name for p in ctx.kube.pods(ctx.namespace, ctx.target_selector or None)
                  if p.node and not p.terminating and not p.finished)


def _run_each(ctx: FaultContext, hook: Hook, what: str, stdin: dict[str, str] | None = None) -> dict[str, str]:
    """Run ``hook`` in every pod of the target; pod -> what it answered. A pod where it fails fails the step,
    naming the pod and what it said."""
    pods = _pods(ctx)
    if not pods:
        raise FaultError(f"{what}: no running pod of the target in {ctx.namespace}")
    try:
        return hooks.run_each(ctx.kube, ctx.namespace, pods, hook, stdin=stdin)
    except hooks.HookError as exc:
        raise FaultError(f"{what}: {exc}") from None


def read_probe(ctx: FaultContext, probe: Hook) -> Probe:
    """The probe in every pod, summed: ``count`` (sum), ``sha256`` (of the pods' sums, by pod name), ``pods``."""
    answers = _run_each(ctx, probe, "data probe")
    count, sums = 0, []
    for pod, text in sorted(answers.items()):
        try:
            value = json.loads(text)
        except ValueError:
            raise FaultError(f"data probe: {ctx.namespace}/{pod} printed {text.strip()[:80]!r}, not JSON with "
                             "count and/or sha256") from None
        count += int(value.get("count") or 0)
        sums.append(f"{pod} {value.get('sha256', '')}")
    return Probe(count, hashlib.sha256("\n".join(sums).encode()).hexdigest(), len(answers))


def _namespace_objects(ctx: FaultContext) -> list[dict[str, Any]]:
    """Every object of the target namespace a backup would hold (for the restore's diff)."""
    return namespace_objects(ctx.kube.resources(), ctx.namespace)[0]


def _forget(ctx: FaultContext) -> None:
    """The namespace is back: drop the disaster's safety copy and its record."""
    record = _state(ctx).pop("pending", None)
    if record is not None:
        pending.forget(ctx.kube, record)


class Backup:
    """Back the target namespace up, with its data."""

    name: ClassVar[str] = "backup"
    Params: ClassVar[type[FaultParams]] = BackupParams

    def __init__(self, params: FaultParams, ctx: FaultContext) -> None:
        assert isinstance(params, BackupParams)
        self.params, self.ctx = params, ctx
        self._engine: str | None = None

    def engine(self) -> str:
        """``velero`` or ``builtin``: chosen once, when the plan is made (``auto``: Velero if the cluster runs
        it). Asking for Velero where it does not run is refused then, before anything happens."""
        if self._engine is None:
            there = self.params.engine != "builtin" and velero.available(self.ctx.kube)
            if self.params.engine == "velero" and not there:
                raise FaultError(f"engine velero: this cluster does not run Velero (no Available "
                                 f"BackupStorageLocation in namespace {velero.NAMESPACE})",
                                 hint="use engine: builtin, or start Velero (`resilience cluster up --velero`)")
            self._engine = "velero" if there else "builtin"
            _state(self.ctx)["engine"] = self._engine  # for the restore step's plan
        return self._engine

    def describe(self) -> list[str]:
        through = (f" through Velero (a Backup in namespace {velero.NAMESPACE}; the built-in archive is held in "
                   "memory too, for the diff and as the disaster's safety copy)") if self.engine() == "velero" \
            else " (held in memory)"
        steps = [f"back up namespace {self.ctx.namespace}: every kind this account may read"
                 + (f", except {', '.join(self.params.exclude)}" if self.params.exclude else "") + through]
        if self.params.probe:
            steps.append(f"read the data probe {hooks.shown(self.params.probe)} in each pod of the target")
        if self.params.export:
            steps.append(f"export with {hooks.shown(self.params.export)} in each pod of the target")
        return steps

    def inject(self) -> None:
        state = _state(self.ctx)
        probe = read_probe(self.ctx, self.params.probe) if self.params.probe else None
        exports = _run_each(self.ctx, self.params.export, "export hook") if self.params.export else {}
        state["before"] = _namespace_objects(self.ctx)
        taken = backup(self.ctx.kube, self.ctx.namespace, key=None, skip_unreadable=True, keep_secrets=True)
        if self.params.exclude:
            taken.objects = [o for o in taken.objects if not _matches(kind_key(o), self.params.exclude)
                             or kind_key(o) == "core/Namespace"]
            if _matches("core/Secret", self.params.exclude):
                taken.secrets = []
        taken.data = {f"export/{pod}": text.encode() for pod, text in exports.items()}
        taken_record = BackupTaken(self.engine(), len(taken.objects) + len(taken.secrets), tuple(taken.kinds()),
                                   len(exports), tuple(taken.unreadable), probe)
        if self.engine() == "velero":
            name = _velero_name(self.ctx.run_id, "backup")
            left_out = [k for k in taken.kinds() if k != "core/Namespace" and self.params.exclude
                        and _matches(k, self.params.exclude)]
            try:
                done = velero.backup(self.ctx.kube, self.ctx.namespace, name, exclude=tuple(left_out),
                                     timeout=self.params.timeout)
            except velero.VeleroError as exc:
                raise FaultError(exc.message, hint=exc.hint) from None
            state["velero_backup"] = name
            taken_record = dataclasses.replace(
                taken_record, velero_backup=f"{velero.NAMESPACE}/{name}", velero_s=float(done["took_s"]),
                velero_items=int((done.get("progress") or {}).get("itemsBackedUp") or 0))
        state.update(archive=taken, probe=self.params.probe, backup_probe=probe, taken_at=time.time())
        self.ctx.record("backup", taken_record)

    def revert(self) -> None:
        """A backup changes nothing."""


class Disaster:
    """Delete the target namespace (or its claims, or some of its objects): a backup step must come first."""

    name: ClassVar[str] = "disaster"
    Params: ClassVar[type[FaultParams]] = DisasterParams

    def __init__(self, params: FaultParams, ctx: FaultContext) -> None:
        assert isinstance(params, DisasterParams)
        self.params, self.ctx = params, ctx
        self.struck = False
        self._target()

    def _target(self) -> str:
        """The namespace it deletes from, if the guardrails allow it (else a one-line UsageError)."""
        return self.ctx.guard.check_namespace(self.ctx.namespace, what="a disaster step on")

    def describe(self) -> list[str]:
        self._target()
        what = {"namespace": f"delete namespace {self.ctx.namespace} and wait until it is gone",
                "claims": f"delete the PersistentVolumeClaims of {self.ctx.namespace} and the target's pods "
                          "(their data goes with them)",
                "objects": f"delete the objects of {', '.join(self.params.kinds) or 'every backed-up kind'} "
                           f"in {self.ctx.namespace}"}[self.params.what]
        return [what, "on revert: if no restore step brought it back, restore the backup"]

    def inject(self) -> None:
        self._target()  # before anything is read, recorded or deleted
        state = _state(self.ctx)
        archive: Archive | None = state.get("archive")
        if archive is None:
            raise FaultError("a disaster needs a backup step before it: nothing was deleted")
        probe = read_probe(self.ctx, state["probe"]) if state.get("probe") else None
        # on this machine and recorded in the cluster before anything goes: if this process dies before the
        # namespace is back, `resilience cleanup` restores it from there
        state["pending"] = pending.record(self.ctx.kube, self.ctx.run_id, archive, selector=self.ctx.target_selector,
                                          import_hook=state.get("import", ()))
        self.ctx.record("disaster", DisasterStruck(self.params.what, state["pending"].archive, probe))
        self.struck = True
        kube, namespace = self.ctx.kube, self.ctx.namespace
        resources = kube.resources()
        if self.params.what == "namespace":
            ns = resources.find("v1", "Namespace")
            assert ns is not None
            resources.delete(ns, "", namespace)
            wait_until(f"namespace {namespace} gone", lambda: resources.get(ns, "", namespace) is None,
                       timeout=self.params.timeout)
            return
        if self.params.what == "claims":
            claims = resources.find("v1", "PersistentVolumeClaim")
            assert claims is not None
            for claim in resources.list(claims, namespace):
                resources.delete(claims, namespace, claim["metadata"]["name"])
            for pod in _pods(self.ctx):
                kube.delete_pod(pod, namespace)
            return
        for obj in archive.objects + archive.secrets:
            key = kind_key(obj)
            if key == "core/Namespace" or (self.params.kinds and not _matches(key, self.params.kinds)):
                continue
            resource = resources.find(str(obj["apiVersion"]), str(obj["kind"]))
            if resource is not None:
                resources.delete(resource, namespace, obj["metadata"]["name"])

    def revert(self) -> None:
        state = _state(self.ctx)
        if not self.struck or state.get("restored"):
            return
        archive: Archive = state["archive"]
        done = restore(self.ctx.kube, archive, overwrite=True, timeout=self.params.timeout,
                       allow_system=self.ctx.allow_kube_system)
        state["restored"] = True
        _forget(self.ctx)
        self.ctx.record("disaster-undone", DisasterUndone(len(done.applied), tuple(done.not_ready)))
        if done.not_ready:
            raise FaultError(f"the backup was restored but {', '.join(done.not_ready)} did not become ready")


class Restore:
    """Restore the backup, import the data, and wait until the workloads and the data probe answer."""

    name: ClassVar[str] = "restore"
    Params: ClassVar[type[FaultParams]] = RestoreParams

    def __init__(self, params: FaultParams, ctx: FaultContext) -> None:
        assert isinstance(params, RestoreParams)
        self.params, self.ctx = params, ctx
        self._target()
        _state(ctx)["import"] = params.import_  # the disaster's safety copy imports with it too

    def _target(self) -> str:
        """The namespace it restores into, if the guardrails allow it (else a one-line UsageError)."""
        return self.ctx.guard.check_namespace(self.ctx.namespace, what="a restore step into")

    def describe(self) -> list[str]:
        self._target()
        how = ("with a Velero Restore of the backup" if _state(self.ctx).get("engine") == "velero"
               else "(dependency order, server-side apply)")
        steps = [f"restore the backup into {self.ctx.namespace} {how} and wait up to {self.params.timeout:.0f} s "
                 "for its workloads"]
        if self.params.import_:
            steps.append(f"import with {hooks.shown(self.params.import_)} in each pod, fed its export")
        return [*steps, "read the data probe until it answers; compare the objects with those before"]

    def inject(self) -> None:
        self._target()  # before anything is applied
        state = _state(self.ctx)
        archive: Archive | None = state.get("archive")
        if archive is None:
            raise FaultError("a restore needs a backup step before it: nothing was applied")
        started = time.time()
        if state.get("velero_backup"):
            name = _velero_name(self.ctx.run_id, "restore")
            try:
                status = velero.restore(self.ctx.kube, state["velero_backup"], name, timeout=self.params.timeout)
            except velero.VeleroError as exc:
                raise FaultError(exc.message, hint=exc.hint) from None
            state["restored"] = True
            _forget(self.ctx)
            left = max(1.0, self.params.timeout - (time.time() - started))
            not_ready = wait_ready(self.ctx.kube.resources(), self.ctx.namespace, archive.objects, timeout=left)
            restored = Restored("velero", int((status.get("progress") or {}).get("itemsRestored") or 0), started,
                                tuple(not_ready), velero_restore=f"{velero.NAMESPACE}/{name}",
                                velero_s=float(status["took_s"]))
        else:
            done = restore(self.ctx.kube, archive, overwrite=True, timeout=self.params.timeout,
                           allow_system=self.ctx.allow_kube_system)
            state["restored"] = True
            _forget(self.ctx)
            not_ready = done.not_ready
            restored = Restored("builtin", len(done.applied), started, tuple(not_ready))
        if not not_ready:
            exported = {key.split("/", 1)[1]: blob.decode() for key, blob in archive.data.items()
                        if key.startswith("export/")}
            if self.params.import_:
                _run_each(self.ctx, self.params.import_, "import hook", stdin=exported)
            if state.get("probe"):
                answer: list[Probe] = []
                error: list[str] = []

                def probed() -> bool:
                    try:
                        answer.append(read_probe(self.ctx, state["probe"]))
                    except FaultError as exc:
                        error.append(str(exc))
                        return False
                    return True

                try:
                    wait_until("data probe answering", probed, timeout=max(10.0, self.params.timeout / 2),
                               interval=0.5)
                    restored = dataclasses.replace(restored, probe=answer[-1])
                except ResilienceError:
                    restored = dataclasses.replace(restored, probe_error=(error or ["no answer"])[-1][:300])
            restored = dataclasses.replace(restored, recovered=time.time())
        missing, changed, _ = diff(state.get("before") or [], _namespace_objects(self.ctx))
        self.ctx.record("restored", dataclasses.replace(restored, missing=tuple(missing), changed=tuple(changed)))

    def revert(self) -> None:
        """The restored namespace stays: it is what the experiment wanted."""
