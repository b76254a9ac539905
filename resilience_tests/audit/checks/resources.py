"""Resource rules (RT3xx): requests, memory limits, and a priority class for critical workloads."""

from __future__ import annotations

from collections.abc import Iterator

from resilience_tests.audit.checks.fields import (
    CRITICAL_KEY,
    labels_of,
    name_of,
    quantity,
    requests_limits,
    same_quantity,
)
from resilience_tests.audit.checks.workload import Workload


def _qos(workload: Workload) -> str:
    """The pod's QoS class, as the kubelet computes it from every container's requests and limits."""
    any_set, guaranteed = False, True
    for container in workload.all_containers:
        requests, limits = requests_limits(container)
        requests = {k: v for k, v in requests.items() if quantity(v) != 0}
        limits = {k: v for k, v in limits.items() if quantity(v) != 0}
        any_set = any_set or bool(requests or limits)
        if set(limits) != {"cpu", "memory"} or any(not same_quantity(requests.get(k), v) for k, v in limits.items()):
            guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def requests(w: Workload) -> Iterator[str]:
    """RT301 requests (see :data:`resilience_tests.audit.rules.RULES`)."""
    for c in w.containers:
        requests, _ = requests_limits(c)
        missing = [r for r in ("cpu", "memory") if r not in requests]
        if missing:
            yield (f"container {name_of(c)} requests no {' or '.join(missing)} (pod QoS {_qos(w)}): the scheduler "
                   "may pack it onto a full node and it is evicted first under pressure; set "
                   f"resources.requests.{' and '.join(missing)}")


def memory_limit(w: Workload) -> Iterator[str]:
    """RT302 memory-limit (see :data:`resilience_tests.audit.rules.RULES`)."""
    for c in w.containers:
        if "memory" not in requests_limits(c)[1]:
            yield (f"container {name_of(c)} has no memory limit (pod QoS {_qos(w)}): one leak can exhaust the "
                   "node's memory and take its neighbours down; set resources.limits.memory")


def priority_class(w: Workload) -> Iterator[str]:
    """RT303 priority-class (see :data:`resilience_tests.audit.rules.RULES`)."""
    marks = {**labels_of(w.obj.data.get("metadata")), **w.obj.annotations}
    if str(marks.get(CRITICAL_KEY, "")).lower() == "true" and not w.pod.get("priorityClassName"):
        yield (f'marked {CRITICAL_KEY}: "true" but has no priorityClassName: under pressure its pods are '
               f"preempted like any other; set {w.pod_path}.priorityClassName")
