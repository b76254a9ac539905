"""What of a live object goes into a backup, and in which order a restore applies objects. Pure functions.

Server-set fields are dropped (uid, resourceVersion, generation, timestamps, managedFields, status, a
Service's cluster IPs, a claim's bound volume and the annotations binding it), and objects the cluster makes
on its own are left out: pods, ReplicaSets and Jobs owned by a controller (their owner makes them again),
Endpoints and EndpointSlices, ControllerRevisions, Events, Leases, the ``kube-root-ca.crt`` ConfigMap and the
``default`` ServiceAccount every namespace gets.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from resilience_tests.backup.archive import kind_key, ref

SKIPPED_KINDS = frozenset({
    "core/Event", "events.k8s.io/Event", "core/Endpoints", "discovery.k8s.io/EndpointSlice",
    "apps/ControllerRevision", "coordination.k8s.io/Lease", "core/Binding", "metrics.k8s.io/PodMetrics",
    "authorization.k8s.io/LocalSubjectAccessReview",
})
MADE_BY_THE_CLUSTER = {("core/ConfigMap", "kube-root-ca.crt"), ("core/ServiceAccount", "default")}
METADATA_DROPPED = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                    "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences", "namespace")
ANNOTATIONS_DROPPED = (
    "kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision",
    "pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller",
    "volume.kubernetes.io/selected-node", "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
)
# Velero labels every object it restores with the backup and restore it came from: bookkeeping that changes with
# each restore, not part of what the object is.
LABELS_DROPPED = ("velero.io/backup-name", "velero.io/restore-name")
# Restore order: what others depend on first; kinds not named here come last.
ORDER = (
    "core/Namespace", "core/ResourceQuota", "core/LimitRange", "core/ServiceAccount",
    "rbac.authorization.k8s.io/Role", "rbac.authorization.k8s.io/RoleBinding", "core/ConfigMap", "core/Secret",
    "core/PersistentVolumeClaim", "core/Service", "apps/Deployment", "apps/StatefulSet", "apps/DaemonSet",
    "apps/ReplicaSet", "batch/Job", "batch/CronJob", "core/Pod", "policy/PodDisruptionBudget",
    "autoscaling/HorizontalPodAutoscaler",
)
WORKLOADS = ("apps/Deployment", "apps/StatefulSet", "apps/DaemonSet")


def keep(obj: dict[str, Any]) -> bool:
    """Whether a live object belongs in a backup (the cluster does not make it again on its own)."""
    key = kind_key(obj)
    meta = obj.get("metadata") or {}
    if key in SKIPPED_KINDS or (key, meta.get("name")) in MADE_BY_THE_CLUSTER:
        return False
    if any(o.get("controller") for o in meta.get("ownerReferences") or []):
        return False  # a workload's pods and ReplicaSets, a CronJob's Jobs: their owner makes them again
    # the token controller makes service-account token Secrets again
    return not (key == "core/Secret" and obj.get("type") == "kubernetes.io/service-account-token")


def clean(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of a live object without what the server set: what a restore applies."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.setdefault("metadata", {})
    for key in METADATA_DROPPED:
        meta.pop(key, None)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in ANNOTATIONS_DROPPED}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in LABELS_DROPPED}
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    spec = out.get("spec")
    key = kind_key(out)
    if isinstance(spec, dict):
        if key == "core/Service":
            for field in ("clusterIP", "clusterIPs", "healthCheckNodePort"):
                if field in spec and spec.get(field) != "None":
                    spec.pop(field, None)
        elif key == "core/PersistentVolumeClaim":
            spec.pop("volumeName", None)
        elif key == "core/Pod":
            spec.pop("nodeName", None)
        elif key == "apps/StatefulSet":
            for template in spec.get("volumeClaimTemplates") or []:
                template.pop("status", None)
                (template.get("metadata") or {}).pop("creationTimestamp", None)
    return out


def rank(obj: dict[str, Any]) -> tuple[int, str, str]:
    """Sort key of the restore order."""
    key = kind_key(obj)
    position = ORDER.index(key) if key in ORDER else len(ORDER)
    return position, key, str((obj.get("metadata") or {}).get("name"))


def comparable(obj: dict[str, Any]) -> str:
    """An object as a restore would apply it, as one canonical string (for diffs)."""
    return json.dumps(clean(obj), sort_keys=True)


def diff(backed_up: list[dict[str, Any]], restored: list[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    """(missing, changed, added) between the objects of a backup and those read after a restore, by
    ``group/Kind name``; values the server fills in on its own (defaults) are not differences: only the
    fields the backup holds are compared."""
    def index(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {ref(o): clean(o) for o in objects if keep(o)}

    before, after = index(backed_up), index(restored)
    missing = sorted(set(before) - set(after))
    added = sorted(set(after) - set(before))
    changed = sorted(name for name in set(before) & set(after) if not within(before[name], after[name]))
    return missing, changed, added


def within(wanted: Any, got: Any) -> bool:
    """Whether every field of ``wanted`` is in ``got`` with the same value (``got`` may hold more)."""
    if isinstance(wanted, dict):
        return isinstance(got, dict) and all(k in got and within(v, got[k]) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(got, list) and len(wanted) == len(got) and all(
            within(w, g) for w, g in zip(wanted, got, strict=True))
    return bool(wanted == got)
