"""Replica and spread rules (RT2xx): enough replicas, spread over zones and nodes, not pinned to one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from resilience_tests.audit.checks.fields import HOSTNAME_LABEL, as_dict, as_list, dicts, plural
from resilience_tests.audit.checks.workload import Workload, applied_spec
from resilience_tests.labels import ZONE_LABEL, selects


def _spread_keys(workload: Workload) -> set[str]:
    """The topology keys its pods spread over: topologySpreadConstraints and podAntiAffinity (required or
    preferred) whose labelSelector selects its own pods (or that has none)."""
    pod = workload.pod
    terms = dicts(pod.get("topologySpreadConstraints"))
    anti = as_dict(as_dict(pod.get("affinity")).get("podAntiAffinity"))
    terms += dicts(anti.get("requiredDuringSchedulingIgnoredDuringExecution"))
    preferred = dicts(anti.get("preferredDuringSchedulingIgnoredDuringExecution"))
    terms += [as_dict(t.get("podAffinityTerm")) for t in preferred]
    return {str(t.get("topologyKey")) for t in terms
            if t.get("topologyKey") and ("labelSelector" not in t or selects(t["labelSelector"], workload.labels))}


def _allowed(pod: dict[str, Any], key: str) -> set[str] | None:
    """The values of node label ``key`` a pod may be scheduled on (nodeSelector and required nodeAffinity);
    None when it may go anywhere."""
    allowed: set[str] | None = None
    selector = as_dict(pod.get("nodeSelector"))
    if key in selector:
        allowed = {str(selector[key])}
    required = as_dict(as_dict(as_dict(pod.get("affinity")).get("nodeAffinity")).get(
        "requiredDuringSchedulingIgnoredDuringExecution"))
    terms = dicts(required.get("nodeSelectorTerms"))
    union: set[str] | None = set() if terms else None
    for term in terms:  # terms are ORed, the expressions of a term ANDed
        values: set[str] | None = None
        for expression in dicts(term.get("matchExpressions")):
            if expression.get("key") == key and expression.get("operator") == "In":
                these = {str(v) for v in as_list(expression.get("values"))}
                values = these if values is None else values & these
        if values is None:  # a term that does not constrain the key lets the pod go anywhere
            union = None
            break
        union = (union or set()) | values
    if union is not None:
        allowed = union if allowed is None else allowed & union
    return allowed


def replicas(w: Workload) -> Iterator[str]:
    """RT201 replicas (see :data:`resilience_tests.audit.rules.RULES`)."""
    if w.replicas is None or w.replicas >= 2 or not w.services:
        return
    service = w.services[0].name
    if w.hpa:
        yield (f"HorizontalPodAutoscaler {w.hpa.name} lets it run {plural(w.replicas, 'replica')} behind "
               f"Service {service}: losing one pod is an outage; set the HPA's minReplicas to 2 or more")
    else:
        yield (f"{plural(w.replicas, 'replica')} behind Service {service}: losing one pod is an outage; "
               "set spec.replicas to 2 or more")


def zone_spread(w: Workload) -> Iterator[str]:
    """RT202 zone-spread (see :data:`resilience_tests.audit.rules.RULES`)."""
    if w.replicas is not None and w.replicas >= 2 and ZONE_LABEL not in _spread_keys(w):
        yield (f"{w.replicas} replicas have no topologySpreadConstraint or podAntiAffinity on {ZONE_LABEL}: "
               "they may all land in one zone and go down with it; add a topologySpreadConstraint on "
               f"{ZONE_LABEL} (maxSkew 1)")


def node_spread(w: Workload) -> Iterator[str]:
    """RT203 node-spread (see :data:`resilience_tests.audit.rules.RULES`)."""
    if w.replicas is not None and w.replicas >= 2 and not {HOSTNAME_LABEL, ZONE_LABEL} & _spread_keys(w):
        yield (f"{w.replicas} replicas have no topologySpreadConstraint or podAntiAffinity on {HOSTNAME_LABEL} "
               f"or {ZONE_LABEL}: several may share a node and one drain takes them together; spread them "
               f"with topologyKey {HOSTNAME_LABEL}")


def pinned(w: Workload) -> Iterator[str]:
    """RT204 pinned (see :data:`resilience_tests.audit.rules.RULES`)."""
    if w.obj.kind == "DaemonSet":  # a DaemonSet runs on the nodes it selects by design
        return
    node_name = w.pod.get("nodeName")
    if w.obj.kind == "Pod":  # a live bare pod has the node the scheduler chose: only an authored nodeName counts
        node_name = as_dict(applied_spec(w.obj)).get("nodeName")
    if node_name:
        yield (f"{w.pod_path}.nodeName {node_name} pins the pods to one node: when it drains or fails they "
               "cannot run anywhere else; remove nodeName")
    hosts = _allowed(w.pod, HOSTNAME_LABEL)
    if hosts is not None and len(hosts) == 1:
        yield (f"nodeSelector/nodeAffinity on {HOSTNAME_LABEL} pins the pods to node {min(hosts)}: when it "
               "drains or fails they cannot run anywhere else; remove the constraint")
    zones = _allowed(w.pod, ZONE_LABEL)
    if zones is not None and len(zones) == 1:
        yield (f"nodeSelector/nodeAffinity on {ZONE_LABEL} pins the pods to zone {min(zones)}: an outage of "
               "that zone takes them all; allow at least two zones")
    elif zones and w.inventory.zones and len(zones & set(w.inventory.zones)) < 2:
        present = ", ".join(sorted(zones & set(w.inventory.zones))) or "none"
        yield (f"nodeSelector/nodeAffinity on {ZONE_LABEL} allows zones {', '.join(sorted(zones))} of which "
               f"the cluster has only {present} (its zones: {', '.join(w.inventory.zones)}): one zone outage "
               "takes them all; allow at least two of the cluster's zones")
