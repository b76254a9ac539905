"""Backups and restores through Velero, where the cluster runs it: Backup and Restore objects in Velero's
namespace, waited for until Velero says how they ended.

Velero is there when its server answers a ServerStatusRequest (as ``velero version`` asks) and its namespace
holds a BackupStorageLocation that Velero marked ``Available`` (it reaches the object store). Only objects go
through Velero here (``snapshotVolumes: false``, no file-system backup): volume data goes through the
experiment's data hooks, as with the built-in archive.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from resilience_tests.cluster.kube import Kube
from resilience_tests.cluster.resources import Resource, ResourceError, Resources
from resilience_tests.errors import ResilienceError
from resilience_tests.waiting import wait_until

NAMESPACE = "velero"
DONE = ("Completed", "PartiallyFailed", "Failed", "FailedValidation", "FinalizingPartiallyFailed")


class VeleroError(ResilienceError):
    """Velero is not there, or a backup or restore did not complete."""


def _kind(resources: Resources, kind: str) -> Resource | None:
    return resources.find("velero.io/v1", kind)


def available(kube: Kube, *, timeout: float = 10) -> bool:
    """Whether Velero runs on the cluster: its server answers a ServerStatusRequest within ``timeout`` s (as
    ``velero version`` asks) and a backup storage location in its namespace is Available. The location's phase
    alone is not enough: it stays Available after the server is gone."""
    resources = kube.resources()
    try:
        locations = _kind(resources, "BackupStorageLocation")
        requests = _kind(resources, "ServerStatusRequest")
        if locations is None or requests is None or not any(
                (o.get("status") or {}).get("phase") == "Available" for o in resources.list(locations, NAMESPACE)):
            return False
        name = f"resilience-tests-{uuid.uuid4().hex[:10]}"
        resources.apply(requests, NAMESPACE, {"apiVersion": "velero.io/v1", "kind": "ServerStatusRequest",
                                              "metadata": {"name": name}}, force=True)
        try:
            wait_until("Velero's server answering", lambda: ((resources.get(requests, NAMESPACE, name) or {})
                                                             .get("status") or {}).get("phase") == "Processed",
                       timeout=timeout, interval=0.25)
            return True
        except ResilienceError:
            return False
        finally:
            with contextlib.suppress(ResourceError):
                resources.delete(requests, NAMESPACE, name)
    except ResourceError:
        return False


def resource_names(resources: Resources, kinds: list[str]) -> list[str]:
    """Velero's names (``configmaps``, ``deployments.apps``) of backed-up kinds (``core/ConfigMap``)."""
    names = []
    for key in kinds:
        group, kind = key.split("/", 1)
        found = next((r for r in resources.discover() if r.kind == kind and r.group == ("" if group == "core"
                                                                                          else group)), None)
        if found is not None:
            names.append(found.plural + (f".{found.group}" if found.group else ""))
    return names


def backup(kube: Kube, namespace: str, name: str, *, exclude: tuple[str, ...] = (), timeout: float = 300,
           ) -> dict[str, Any]:
    """Back ``namespace`` up with Velero as Backup ``name`` (kept 24 h), leaving out the kinds ``exclude`` names
    (``core/ConfigMap``); its status once Completed."""
    resources = kube.resources()
    kind = _kind(resources, "Backup")  # whether Velero's server answers was asked when the plan was made
    if kind is None:
        raise VeleroError("this cluster does not serve Velero's Backup", hint="use engine: builtin, or install Velero")
    spec: dict[str, Any] = {"includedNamespaces": [namespace], "snapshotVolumes": False, "ttl": "24h0m0s",
                            "defaultVolumesToFsBackup": False}
    if exclude:
        spec["excludedResources"] = resource_names(resources, list(exclude))
    return _run(resources, kind, name, spec, "backup", timeout)


def restore(kube: Kube, backup_name: str, name: str, *, timeout: float = 300) -> dict[str, Any]:
    """Restore Velero Backup ``backup_name`` as Restore ``name``; its status once Completed."""
    resources = kube.resources()
    kind = _kind(resources, "Restore")
    if kind is None:
        raise VeleroError("this cluster does not run Velero", hint="use engine: builtin")
    # NodePorts as they were: a Service's address is part of what must come back
    return _run(resources, kind, name, {"backupName": backup_name, "preserveNodePorts": True}, "restore", timeout)


def _run(resources: Resources, kind: Resource, name: str, spec: dict[str, Any], what: str, timeout: float,
         ) -> dict[str, Any]:
    resources.apply(kind, NAMESPACE, {"apiVersion": "velero.io/v1", "kind": kind.kind,
                                      "metadata": {"name": name, "labels": {
                                          "app.kubernetes.io/managed-by": "resilience-tests"}},
                                      "spec": spec}, force=True)
    status: dict[str, Any] = {}
    started = time.monotonic()

    def ended() -> bool:
        status.clear()
        status.update((resources.get(kind, NAMESPACE, name) or {}).get("status") or {})
        return status.get("phase") in DONE

    try:
        wait_until(f"Velero {what} {name}", ended, timeout=timeout, interval=0.5,
                   pending=lambda: str(status.get("phase") or "New"))
    except ResilienceError:
        raise VeleroError(f"Velero {what} {NAMESPACE}/{name} did not end in {timeout:.0f} s (phase "
                          f"{status.get('phase') or 'New'})", hint="is Velero's server running? "
                                                                    f"`velero {what} describe {name}`") from None
    if status.get("phase") != "Completed":
        raise VeleroError(f"Velero {what} {NAMESPACE}/{name} ended {status.get('phase')}: "
                          f"{status.get('errors', 0)} error(s), {status.get('warnings', 0)} warning(s)"
                          f"{'; ' + str(status['failureReason']) if status.get('failureReason') else ''}",
                          hint=f"`velero {what} logs {name}` says why")
    status["took_s"] = round(time.monotonic() - started, 3)
    return dict(status)
