"""HorizontalPodAutoscaler rules (RT7xx): a floor of two replicas, cpu requests to scale on, no fixed replicas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from resilience_tests.audit.checks.fields import as_dict, as_list, dicts, name_of, plural, requests_limits
from resilience_tests.audit.checks.workload import Workload, applied_spec, hpa_min, hpa_target
from resilience_tests.audit.model import Inventory, Obj


def _cpu_utilization_containers(hpa: Obj, containers: list[dict[str, Any]]) -> list[str]:
    """Names of the containers whose cpu requests an HPA needs: all of them when it scales on the pods' cpu
    utilization (autoscaling/v1, and v2 without metrics, default to 80% cpu), one for a ContainerResource."""
    spec = as_dict(hpa.data.get("spec"))
    names = [name_of(c) for c in containers]
    if hpa.data.get("apiVersion") == "autoscaling/v1" or not as_list(spec.get("metrics")):
        return names
    needed: list[str] = []
    for metric in dicts(spec.get("metrics")):
        if metric.get("type") == "Resource":
            source = as_dict(metric.get("resource"))
            scope = names
        elif metric.get("type") == "ContainerResource":
            source = as_dict(metric.get("containerResource"))
            scope = [str(source.get("container"))]
        else:
            continue
        if source.get("name") == "cpu" and as_dict(source.get("target")).get("type") == "Utilization":
            needed += [n for n in scope if n in names and n not in needed]
    return needed


def hpa_min_replicas(hpa: Obj, inventory: Inventory) -> Iterator[str]:
    """RT701 hpa-min-replicas (see :data:`resilience_tests.audit.rules.RULES`)."""
    minimum = hpa_min(hpa)
    if minimum < 2:
        kind, name = hpa_target(hpa)
        yield (f"minReplicas {minimum} lets it scale {kind} {hpa.namespace}/{name} down to "
               f"{plural(minimum, 'pod')}: losing one pod is then an outage; set minReplicas to 2 or more")


def hpa_requests(w: Workload) -> Iterator[str]:
    """RT702 hpa-requests (see :data:`resilience_tests.audit.rules.RULES`)."""
    if w.hpa is None:
        return
    needed = set(_cpu_utilization_containers(w.hpa, w.containers))
    for c in w.containers:
        if name_of(c) in needed and "cpu" not in requests_limits(c)[0]:
            yield (f"container {name_of(c)} requests no cpu but HorizontalPodAutoscaler {w.hpa.name} scales on cpu "
                   "utilization: it cannot compute it and never scales; set resources.requests.cpu")


def hpa_fixed_replicas(w: Workload) -> Iterator[str]:
    """RT703 hpa-fixed-replicas (see :data:`resilience_tests.audit.rules.RULES`)."""
    applied = applied_spec(w.obj) if w.hpa else None
    if w.hpa and applied is not None and "replicas" in applied:
        yield (f"spec.replicas {applied['replicas']} is set while HorizontalPodAutoscaler {w.hpa.name} manages "
               "the scale: every apply resets it; remove spec.replicas from the manifest")
