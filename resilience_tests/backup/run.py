"""Backing up a live namespace into an archive and restoring an archive, through the API server.

A backup reads every namespaced kind the account can list (discovery, custom resources included), keeps what
the cluster would not make again (:func:`~resilience_tests.backup.clean.keep`), cleans it, and fails naming
the kinds it could not read unless told to skip them. A restore checks everything first (the archive, the
kinds the server serves, conflicts with what the target namespace holds) and only then applies, in dependency
order, with server-side apply; it then waits for the workloads to be ready.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from resilience_tests.backup.archive import Archive, kind_key, ref
from resilience_tests.backup.clean import WORKLOADS, clean, keep, rank, within
from resilience_tests.cluster.kube import Kube
from resilience_tests.cluster.resources import Resource, ResourceError, Resources
from resilience_tests.errors import ResilienceError, UsageError
from resilience_tests.waiting import wait_until


class BackupError(ResilienceError):
    """A backup that could not be made as asked."""


class RestoreError(ResilienceError):
    """A restore that was refused (nothing applied) or stopped (what was applied is named)."""


def namespace_objects(resources: Resources, namespace: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every object of ``namespace`` a backup holds (as read, not yet cleaned), and the kinds this account
    may not read."""
    found: list[dict[str, Any]] = []
    unreadable: list[str] = []
    seen: set[str] = set()
    for resource in resources.discover():
        if not resource.namespaced or not {"list", "get"} <= resource.verbs or resource.key in seen:
            continue
        seen.add(resource.key)
        if not keep({"apiVersion": resource.api_version, "kind": resource.kind, "metadata": {}}):
            continue
        try:
            items = resources.list(resource, namespace)
        except ResourceError as exc:
            if exc.status in (401, 403):
                unreadable.append(resource.key)
                continue
            if exc.status in (404, 405, 503):
                continue  # served in discovery but not listable here (an aggregated API down)
            raise BackupError(f"listing {resource.key} in {namespace} failed: {exc}") from None
        found += [item for item in items if keep(item)]
    return found, unreadable


def backup(kube: Kube, namespace: str, *, key: bytes | None, skip_unreadable: bool = False,
           keep_secrets: bool = False) -> Archive:
    """Read ``namespace`` into an :class:`Archive` (not yet written). Secrets are kept whole with a ``key``
    (to be encrypted) or ``keep_secrets`` (an archive held in memory), else left out by name."""
    resources = kube.resources()
    try:
        ns = resources.get(_namespace_resource(resources), "", namespace)
    except ResourceError as exc:
        if exc.status not in (401, 403):
            raise BackupError(f"reading namespace {namespace} failed: {exc}") from None
        ns = {}  # may not be read: its objects may still be
    if ns is None:
        raise UsageError(f"namespace {namespace!r} does not exist", hint="name a namespace of this cluster")
    archive = Archive(namespace=namespace, created=time.time(), source={
        "context": kube.ref.context or "", "server": kube.server,
        "version": kube.server_version()})
    items, archive.unreadable = namespace_objects(resources, namespace)
    for item in items:
        if kind_key(item) == "core/Secret":
            if key is None and not keep_secrets:
                archive.omitted_secrets.append(item["metadata"]["name"])
                continue
            archive.secrets.append(clean(item))
        else:
            archive.objects.append(clean(item))
    if archive.unreadable and not skip_unreadable:
        raise BackupError(f"the account may not read {len(archive.unreadable)} kind(s) in {namespace}: "
                          f"{', '.join(sorted(archive.unreadable))}; nothing was written",
                          hint="grant list on them, or pass --skip-unreadable to back up the rest")
    if ns:
        archive.objects.append(clean({**ns, "apiVersion": "v1", "kind": "Namespace"}))
    else:
        archive.unreadable.append("core/Namespace")
    archive.secrets_mode = "encrypted" if archive.secrets else "omitted" if archive.omitted_secrets else "none"
    return archive


def _namespace_resource(resources: Resources) -> Resource:
    found = resources.find("v1", "Namespace")
    if found is None:  # pragma: no cover - every API server serves namespaces
        raise BackupError("the server serves no Namespace kind")
    return found


@dataclass
class Restored:
    """What a restore did."""

    namespace: str
    applied: list[str] = field(default_factory=list)  # "apps/Deployment web"
    dropped_node_ports: list[str] = field(default_factory=list)
    applied_s: float = 0.0
    ready_s: float | None = None  # from the first apply to every workload ready; None if not waited or not ready
    not_ready: list[str] = field(default_factory=list)


def plan(archive: Archive, into: str | None) -> tuple[str, list[dict[str, Any]], list[str]]:
    """The target namespace, the objects to apply in order (moved into it), and the Services whose NodePorts
    are dropped (restoring next to the original, they would collide)."""
    target = into or archive.namespace
    objects: list[dict[str, Any]] = []
    dropped: list[str] = []
    for obj in sorted([*archive.objects, *archive.secrets], key=rank):
        obj = clean(obj)
        if kind_key(obj) == "core/Namespace":
            obj["metadata"]["name"] = target
            for label in ("kubernetes.io/metadata.name",):
                (obj["metadata"].get("labels") or {}).pop(label, None)
        if target != archive.namespace and kind_key(obj) == "core/Service":
            ports = (obj.get("spec") or {}).get("ports") or []
            if any("nodePort" in p for p in ports):
                for port in ports:
                    port.pop("nodePort", None)
                dropped.append(obj["metadata"]["name"])
        objects.append(obj)
    if not any(kind_key(o) == "core/Namespace" for o in objects):  # the account could not read it
        objects.insert(0, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": target}})
    return target, objects, dropped


def restore(kube: Kube, archive: Archive, *, into: str | None = None, overwrite: bool = False,
            without_secrets: bool = False, timeout: float = 300) -> Restored:
    """Apply an archive into ``into`` (default: the namespace it was taken from) and wait for its workloads."""
    if archive.omitted_secrets and not without_secrets:
        raise RestoreError(f"the archive holds no values for {len(archive.omitted_secrets)} Secret(s) (backed up "
                           f"without a key): {', '.join(sorted(archive.omitted_secrets)[:5])}; nothing was applied",
                           hint="create them in the target namespace first and pass --without-secrets")
    resources = kube.resources()
    target, objects, dropped = plan(archive, into)
    unserved = sorted({f"{o.get('apiVersion')} {o.get('kind')}" for o in objects
                       if resources.find(str(o.get("apiVersion")), str(o.get("kind"))) is None})
    if unserved:
        raise RestoreError(f"this cluster does not serve {', '.join(unserved)}; nothing was applied",
                           hint="install the CRDs (or API versions) the backup needs, then restore again")
    conflicts: list[str] = []
    live: dict[Resource, dict[str, dict[str, Any]]] = {}  # one LIST per kind, not one GET per object
    for obj in objects:
        resource = resources.find(str(obj["apiVersion"]), str(obj["kind"]))
        assert resource is not None
        if kind_key(obj) == "core/Namespace" or not resource.namespaced:
            continue  # an existing namespace is where the objects go, not a conflict
        if resource not in live:
            live[resource] = {o["metadata"]["name"]: o for o in resources.list(resource, target)}
        existing = live[resource].get(obj["metadata"]["name"])
        if existing is not None and not within(obj, existing):
            conflicts.append(ref(obj))
    if conflicts and not overwrite:
        raise RestoreError(f"{target} holds {len(conflicts)} object(s) that differ from the backup: "
                           f"{', '.join(conflicts[:8])}{' ...' if len(conflicts) > 8 else ''}; nothing was applied",
                           hint="pass --overwrite to replace them, or --into another namespace")
    done = Restored(target, dropped_node_ports=dropped)
    started = time.monotonic()
    for obj in objects:
        resource = resources.find(str(obj["apiVersion"]), str(obj["kind"]))
        assert resource is not None
        name = ref(obj)
        try:
            resources.apply(resource, target, obj, force=True)
        except ResourceError as exc:
            raise RestoreError(f"applying {name} into {target} failed: {exc}; {len(done.applied)} of "
                               f"{len(objects)} object(s) were applied before it: "
                               f"{', '.join(done.applied) or 'none'}",
                               hint="fix the cause and restore again with --overwrite") from None
        done.applied.append(name)
    done.applied_s = time.monotonic() - started
    done.not_ready = wait_ready(resources, target, objects, timeout=timeout)
    if not done.not_ready and timeout > 0 and any(kind_key(o) in WORKLOADS for o in objects):
        done.ready_s = time.monotonic() - started
    return done


def wait_ready(resources: Resources, namespace: str, objects: list[dict[str, Any]], *, timeout: float) -> list[str]:
    """Wait up to ``timeout`` s until the workloads among ``objects`` are ready in ``namespace``; those that are
    not (none when ``timeout`` is 0: not waited)."""
    workloads = [o for o in objects if kind_key(o) in WORKLOADS]
    pending: list[str] = []
    if not workloads or timeout <= 0:
        return pending

    def ready() -> bool:
        pending[:] = [ref(o) for o in workloads if not _ready(resources, namespace, o)]
        return not pending

    try:
        wait_until(f"restored workloads of {namespace} ready", ready, timeout=timeout, interval=0.5,
                   pending=lambda: ", ".join(pending))
    except ResilienceError:
        return list(pending)
    return []


def _ready(resources: Resources, namespace: str, obj: dict[str, Any]) -> bool:
    resource = resources.find(str(obj["apiVersion"]), str(obj["kind"]))
    live = resources.get(resource, namespace, obj["metadata"]["name"]) if resource else None
    if not live:
        return False
    spec, status = live.get("spec") or {}, live.get("status") or {}
    if kind_key(obj) == "apps/DaemonSet":
        wanted = int(status.get("desiredNumberScheduled") or 0)
        return int(status.get("numberReady") or 0) >= wanted and \
            int(status.get("observedGeneration") or 0) >= int(live["metadata"].get("generation") or 0)
    wanted = int(spec.get("replicas", 1))
    return int(status.get("readyReplicas") or 0) >= wanted and \
        int(status.get("observedGeneration") or 0) >= int(live["metadata"].get("generation") or 0)

