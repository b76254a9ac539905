"""Snapshots of the target for SLA checks: its pods with zone and readiness, and desired replicas."""

from __future__ import annotations

import time
from typing import Any

from resilience_tests.cluster.kube import Kube, Workload
from resilience_tests.labels import ZONE_LABEL, has_labels
from resilience_tests.sla.evidence import PodSnap, Snapshot


def take_snapshot(kube: Kube, namespace: str, selector: str, workload: Workload | None) -> Snapshot:
    """The target's pods now (zone from their node), the workload's desired replicas and every zone of the cluster."""
    nodes = kube.node_objects()
    zone_of = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(ZONE_LABEL, "") for n in nodes}
    items = kube.pod_objects(namespace, selector)
    pods = []
    for item in items:
        meta, spec, status = item["metadata"], item.get("spec") or {}, item.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        node = spec.get("nodeName") or ""
        pods.append(PodSnap(meta["name"], node, zone_of.get(node, ""), ready, meta.get("deletionTimestamp") is not None,
                            tuple(sorted((meta.get("labels") or {}).items()))))
    desired = kube.replicas(workload) if workload is not None else len(pods)
    spec = items[0].get("spec") or {} if items else {}
    eligible = [n for n in nodes if _eligible(n, spec)] if items else nodes
    zones = tuple(sorted({zone_of[n["metadata"]["name"]] for n in eligible if zone_of[n["metadata"]["name"]]}))
    return Snapshot(time.time(), tuple(pods), desired, zones)


def _eligible(node: dict[str, Any], pod_spec: dict[str, Any]) -> bool:
    """Whether a pod like this one may run on ``node``: its nodeSelector matches and it tolerates the taints
    that keep pods off (the zones a topology spread counts are those of such nodes)."""
    labels = node["metadata"].get("labels") or {}
    if not has_labels(labels, pod_spec.get("nodeSelector") or {}):
        return False
    tolerations = pod_spec.get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if taint.get("key", "").startswith("node.kubernetes.io/"):
            continue  # condition taints (not-ready, unreachable): the node is down, not excluded
        if not any(_tolerates(t, taint) for t in tolerations):
            return False
    return True


def _tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if not toleration.get("key"):
        return toleration.get("operator") == "Exists"
    if toleration["key"] != taint.get("key"):
        return False
    return toleration.get("operator") == "Exists" or toleration.get("value", "") == taint.get("value", "")
