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

from resilience_tests.backup import scope
from resilience_tests.backup.archive import Archive, kind_key, ref
from resilience_tests.backup.clean import WORKLOADS, clean, keep, rank, within
from resilience_tests.cluster.kube import Kube
from resilience_tests.cluster.resources import Resource, ResourceError, Resources
from resilience_tests.errors import ResilienceError, UsageError
from resilience_tests.namespaces import check_target, is_namespace_name
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
    if not is_namespace_name(namespace):
        raise UsageError(f"back up {namespace[:80]!r}: not a namespace name",
                         hint="give a lower-case DNS label of at most 63 characters, e.g. demo")
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
        "version": kube.server_version()}, authenticated=True)  # made here: nobody else could have changed it
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
    applied: list[str] = field(default_factory=list)
    dropped_node_ports: list[str] = field(default_factory=list)
    applied_s: float = 0.0
    ready_s: float | None = None  # from the first apply to every workload ready; None if not waited or not ready
    not_ready: list[str] = field(default_factory=list)
    weakened: list[str] = field(default_factory=list)  # Pod Security labels the restore lowered (with --overwrite)
    authenticated: bool = False  # the archive's MAC was checked (or this process made it)


def plan(archive: Archive, into: str | None, *, allow_system: bool = False,
         ) -> tuple[str, list[dict[str, Any]], list[str]]:
    """The target namespace, the objects to apply in order (moved into it), and the Services whose NodePorts
    are dropped (restoring next to the original, they would collide).

    Refused (:class:`~resilience_tests.errors.UsageError`, :class:`RestoreError`) before anything is applied: a
    target that is not a namespace name, ``resilience-tests``, one of the cluster's own namespaces unless
    ``allow_system``; an archive holding what a backup of one namespace cannot (cluster-scoped kinds, another
    namespace's objects, invalid names, a foreign Namespace object).
    """
    target = check_target(archive.namespace if into is None else into, what="restore into",
                          allow_system=allow_system, flag="--allow-system-namespace")
    problems = scope.problems([*archive.objects, *archive.secrets], archive.namespace)
    if problems:
        raise _refused(archive.namespace, problems)
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


def _refused(namespace: str, problems: list[str]) -> RestoreError:
    return RestoreError(f"the archive holds what a backup of namespace {namespace} cannot: "
                        f"{'; '.join(problems[:10])}{f' (and {len(problems) - 10} more)' if len(problems) > 10 else ''}"
                        "; nothing was applied", hint="restore only archives `resilience backup` wrote")


def served(resources: Resources, objects: list[dict[str, Any]]) -> dict[str, Resource]:
    """The served kind of each object (by :func:`ref`); refused when one is not served, or is cluster-scoped
    for the server's discovery (the Namespace object aside)."""
    found = {ref(o): resources.find(str(o.get("apiVersion")), str(o.get("kind"))) for o in objects}
    unserved = sorted({f"{o.get('apiVersion')} {o.get('kind')}" for o in objects if found[ref(o)] is None})
    if unserved:
        raise RestoreError(f"this cluster does not serve {', '.join(unserved)}; nothing was applied",
                           hint="install the CRDs (or API versions) the backup needs, then restore again")
    kinds = {k for k, r in found.items() if r is not None and not r.namespaced and not k.startswith("core/Namespace ")}
    if kinds:
        namespace = next(o["metadata"]["name"] for o in objects if kind_key(o) == "core/Namespace")
        raise _refused(namespace, [f"{k}: cluster-scoped (the server says so), not part of a namespace"
                                   for k in sorted(kinds)])
    return {k: r for k, r in found.items() if r is not None}


def conflicts(resources: Resources, found: dict[str, Resource], target: str,
              objects: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The objects of ``target`` that differ from the backup (the Namespace's labels and annotations too), and
    the Pod Security labels the restore would weaken."""
    differ: list[str] = []
    weakened: list[str] = []
    live: dict[Resource, dict[str, dict[str, Any]]] = {}  # one LIST per kind, not one GET per object
    try:
        for obj in objects:
            resource = found[ref(obj)]
            if kind_key(obj) == "core/Namespace":
                ns = resources.get(resource, "", target)
                if ns is None:
                    continue
                wanted = {k: v for k in ("labels", "annotations") if (v := obj["metadata"].get(k))}
                if not within(wanted, ns.get("metadata") or {}):
                    differ.append(f"{ref(obj)} (labels or annotations)")
                weakened += scope.weakened(obj["metadata"].get("labels") or {},
                                           (ns.get("metadata") or {}).get("labels") or {})
                continue
            if resource not in live:
                live[resource] = {o["metadata"]["name"]: o for o in resources.list(resource, target)}
            existing = live[resource].get(obj["metadata"]["name"])
            if existing is not None and not within(obj, existing):
                differ.append(ref(obj))
    except ResourceError as exc:
        raise RestoreError(f"reading what {target} holds failed: {exc}; nothing was applied",
                           hint="check the account's rights (get and list in the target namespace) and that the "
                                "API server answers, then restore again") from None
    return differ, weakened


def restore(kube: Kube, archive: Archive, *, into: str | None = None, overwrite: bool = False,
            without_secrets: bool = False, timeout: float = 300, allow_system: bool = False,
            unauthenticated: bool = False) -> Restored:
    """Apply an archive into ``into`` (default: the namespace it was taken from) and wait for its workloads.

    An archive that is not authenticated (no MAC checked with its key) is refused unless ``unauthenticated``;
    a target among the cluster's own namespaces unless ``allow_system`` (see :func:`plan`).
    """
    if not archive.authenticated and not unauthenticated:
        raise RestoreError("the archive is unauthenticated (made or read without a key): anyone who could write "
                           "the file could have changed it; nothing was applied",
                           hint="pass --key-file with the key it was made with, or --unauthenticated if you "
                                "trust every hand the file went through")
    if archive.omitted_secrets and not without_secrets:
        raise RestoreError(f"the archive holds no values for {len(archive.omitted_secrets)} Secret(s) (backed up "
                           f"without a key): {', '.join(sorted(archive.omitted_secrets)[:5])}; nothing was applied",
                           hint="create them in the target namespace first and pass --without-secrets")
    target, objects, dropped = plan(archive, into, allow_system=allow_system)
    resources = kube.resources()
    found = served(resources, objects)
    differ, weakened = conflicts(resources, found, target, objects)
    if differ and not overwrite:
        also = f" (it would weaken Pod Security: {', '.join(weakened)})" if weakened else ""
        raise RestoreError(f"{target} holds {len(differ)} object(s) that differ from the backup: "
                           f"{', '.join(differ[:8])}{' ...' if len(differ) > 8 else ''}{also}; nothing was applied",
                           hint="pass --overwrite to replace them, or --into another namespace")
    done = Restored(target, dropped_node_ports=dropped, weakened=weakened, authenticated=archive.authenticated)
    started = time.monotonic()
    for obj in objects:
        name = ref(obj)
        try:
            resources.apply(found[name], target, obj, force=True)
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

