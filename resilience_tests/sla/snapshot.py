"""Snapshots of the target for SLA checks: its pods with zone and readiness, and desired replicas."""

from __future__ import annotations

import time

from resilience_tests.cluster.kube import Kube, Workload, raw_list
from resilience_tests.cluster.selection import ZONE_LABEL
from resilience_tests.sla.evidence import PodSnap, Snapshot


def take_snapshot(kube: Kube, namespace: str, selector: str, workload: Workload | None) -> Snapshot:
    """The target's pods now (zone from their node), the workload's desired replicas and every zone of the cluster."""
    nodes = raw_list(kube.core.list_node)["items"]
    zone_of = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(ZONE_LABEL, "") for n in nodes}
    items = raw_list(kube.core.list_namespaced_pod, namespace, label_selector=selector or None)["items"]
    pods = []
    for item in items:
        meta, spec, status = item["metadata"], item.get("spec") or {}, item.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        node = spec.get("nodeName") or ""
        pods.append(PodSnap(meta["name"], node, zone_of.get(node, ""), ready, meta.get("deletionTimestamp") is not None,
                            tuple(sorted((meta.get("labels") or {}).items()))))
    desired = kube.replicas(workload) if workload is not None else len(pods)
    zones = tuple(sorted({z for z in zone_of.values() if z}))
    return Snapshot(time.time(), tuple(pods), desired, zones)
