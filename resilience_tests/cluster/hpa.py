"""HorizontalPodAutoscaler status, typed: what the timeline records of each HPA of the target namespace
(autoscaling/v2) and what the autoscaling checks read to explain a verdict ("HPA web saw cpu 45% of 50%").

The state is taken from the API object as JSON (like the timeline's pod states), never from client models.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubernetes.client.exceptions import ApiException

from resilience_tests.errors import ResilienceError

if TYPE_CHECKING:
    from resilience_tests.cluster.kube import Kube
    from resilience_tests.cluster.timeline import Record

Obj = dict[str, Any]
SOURCES = ("resource", "containerResource", "pods", "object", "external")


@dataclass(frozen=True)
class HpaMetric:
    """One metric of an HPA: what it last saw and its target, as the API writes them (``45%``, ``120m``)."""

    name: str
    current: str
    target: str

    def shown(self) -> str:
        """``cpu 45% of 50%``."""
        return f"{self.name} {self.current} of {self.target}"


@dataclass(frozen=True)
class HpaCondition:
    """One condition of an HPA (``AbleToScale``, ``ScalingActive``, ``ScalingLimited``)."""

    type: str
    status: str
    reason: str = ""
    message: str = ""

    def shown(self) -> str:
        """``ScalingLimited=True (TooManyReplicas: the desired replica count is more than the maximum...)``."""
        why = ": ".join(p for p in (self.reason, self.message) if p)
        return f"{self.type}={self.status}" + (f" ({why})" if why else "")


@dataclass(frozen=True)
class ResourceTarget:
    """A metric of an HPA read from the resource metrics API (metrics-server): a ``Resource`` metric (summed
    over every container of the pod) or a ``ContainerResource`` one (``container``).

    Attributes:
        resource: ``cpu``, ``memory``.
        container: the container of a ``ContainerResource`` metric; "" for a ``Resource`` one.
        utilization: its target is a ``Utilization``: a share of the request, which the containers must have.
    """

    resource: str
    container: str = ""
    utilization: bool = False

    def shown(self) -> str:
        """``cpu`` (Resource), ``cpu of container web`` (ContainerResource)."""
        return f"{self.resource} of container {self.container}" if self.container else self.resource


@dataclass(frozen=True)
class HpaState:
    """An HPA's spec limits and status at one moment.

    Attributes:
        target: its scaleTargetRef, ``Deployment/web``.
        min_replicas, max_replicas: its limits.
        current_replicas, desired_replicas: its status.
        metrics: each metric of its spec with the value it last saw (``unknown`` when it could not read it).
        conditions: its status conditions.
        down_stabilisation: seconds of its scale-down stabilisation window (``behavior.scaleDown``; the API's
            default is 300).
        resources: its metrics read from the resource metrics API (spec, for the preflight; not in the journal).
    """

    target: str
    min_replicas: int
    max_replicas: int
    current_replicas: int
    desired_replicas: int
    metrics: tuple[HpaMetric, ...] = ()
    conditions: tuple[HpaCondition, ...] = ()
    down_stabilisation: int = 300
    resources: tuple[ResourceTarget, ...] = ()

    def condition(self, kind: str) -> HpaCondition | None:
        """The condition of type ``kind``, if the HPA has it."""
        return next((c for c in self.conditions if c.type == kind), None)

    def targets(self, kind: str, name: str) -> bool:
        """Whether its scaleTargetRef is the workload ``kind``/``name`` (kind in any case: ``deployment``)."""
        ref_kind, _, ref_name = self.target.partition("/")
        return ref_kind.lower() == kind.lower() and ref_name == name

    def seen(self) -> str:
        """``desired 3, current 2 (1..10), cpu 45% of 50%; ScalingLimited=True (TooManyReplicas: ...)`` with
        the conditions that hold something back (ScalingLimited True, AbleToScale/ScalingActive False)."""
        text = f"desired {self.desired_replicas}, current {self.current_replicas} " \
               f"({self.min_replicas}..{self.max_replicas})"
        if self.metrics:
            text += ", " + ", ".join(m.shown() for m in self.metrics)
        notable = [c.shown() for c in self.conditions if (c.type == "ScalingLimited") == (c.status == "True")]
        return text + ("; " + "; ".join(notable) if notable else "")

    def to_json(self) -> dict[str, Any]:
        """As the journal writes it (the details of an ``hpa`` record)."""
        return {"target": self.target, "min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                "current_replicas": self.current_replicas, "desired_replicas": self.desired_replicas,
                "metrics": [{"name": m.name, "current": m.current, "target": m.target} for m in self.metrics],
                "conditions": [{"type": c.type, "status": c.status, "reason": c.reason, "message": c.message}
                               for c in self.conditions], "down_stabilisation": self.down_stabilisation}


@dataclass(frozen=True)
class HpaRecord:
    """An ``hpa`` record of the timeline with its state."""

    t: float
    name: str
    change: str
    state: HpaState

    @property
    def hpa(self) -> str:
        """The HPA's name, without its namespace."""
        return self.name.rpartition("/")[2]


def _metric_key(metric: Obj) -> tuple[str, str]:
    """(type, name) of a spec or status metric: ``("Resource", "cpu")``, ``("Pods", "requests_per_second")``."""
    kind = str(metric.get("type") or "")
    body = metric.get(kind[:1].lower() + kind[1:]) or {}
    name = body.get("name") or (body.get("metric") or {}).get("name") or ""
    if kind == "ContainerResource":
        name = f"{name}/{body.get('container', '')}"
    return kind, str(name)


def _value(values: Obj, *, target: bool) -> str:
    """``45%`` (a utilisation), else the average value or value as the API wrote it."""
    if (target and values.get("type") == "Utilization") or (not target and "averageUtilization" in values):
        return f"{values.get('averageUtilization')}%"
    found = values.get("averageValue", values.get("value"))
    return str(found) if found is not None else "unknown"


def _body(metric: Obj) -> Obj:
    kind = str(metric.get("type") or "")
    found = metric.get(kind[:1].lower() + kind[1:])
    return found if isinstance(found, dict) else {}


def hpa_state(hpa: Obj) -> HpaState:
    """The parts of an autoscaling/v2 HPA the timeline tracks."""
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    current = {_metric_key(m): _body(m).get("current") or {} for m in status.get("currentMetrics") or []}
    metrics = []
    for metric in spec.get("metrics") or []:
        key = _metric_key(metric)
        seen = current.get(key)
        metrics.append(HpaMetric(key[1] if key[0] == "Resource" else f"{key[0].lower()}/{key[1]}",
                                 _value(seen, target=False) if seen else "unknown",
                                 _value(_body(metric).get("target") or {}, target=True)))
    conditions = tuple(HpaCondition(str(c.get("type", "")), str(c.get("status", "")), str(c.get("reason") or ""),
                                    str(c.get("message") or "")[:300]) for c in status.get("conditions") or [])
    down = ((spec.get("behavior") or {}).get("scaleDown") or {}).get("stabilizationWindowSeconds")
    return HpaState(f"{ref.get('kind', '')}/{ref.get('name', '')}", int(spec.get("minReplicas") or 1),
                    int(spec.get("maxReplicas") or 0), int(status.get("currentReplicas") or 0),
                    int(status.get("desiredReplicas") or 0), tuple(metrics), conditions,
                    300 if down is None else int(down), _resources(spec.get("metrics") or []))


def _resources(metrics: list[Obj]) -> tuple[ResourceTarget, ...]:
    """The ``Resource`` and ``ContainerResource`` metrics of an HPA's spec."""
    found = []
    for metric in metrics:
        if metric.get("type") in ("Resource", "ContainerResource"):
            body = _body(metric)
            utilization = (body.get("target") or {}).get("type") == "Utilization"
            container = str(body.get("container") or "") if metric.get("type") == "ContainerResource" else ""
            found.append(ResourceTarget(str(body.get("name") or ""), container, utilization))
    return tuple(found)


def hpa_records(records: Iterable[Record], name: str | None = None) -> list[HpaRecord]:
    """The ``hpa`` records among ``records`` (of the HPA ``name`` only, when given), in time order."""
    found = [HpaRecord(r.t, r.name, r.change, r.data) for r in records
             if r.kind == "hpa" and isinstance(r.data, HpaState)]
    return sorted((r for r in found if name is None or r.hpa == name), key=lambda r: r.t)


class HpaReadError(ResilienceError):
    """The HPAs of a namespace could not be read."""


def read_hpas(kube: Kube, namespace: str) -> dict[str, HpaState]:
    """Every autoscaling/v2 HPA of ``namespace``, by name, as it is now."""
    from resilience_tests.cluster.kube import raw_list

    try:
        items = raw_list(kube.raw.autoscaling.list_namespaced_horizontal_pod_autoscaler, namespace)["items"]
    except ApiException as exc:
        raise HpaReadError(f"cannot list the HorizontalPodAutoscalers of namespace {namespace!r} (HTTP {exc.status})",
                           hint="give the account get/list/watch on horizontalpodautoscalers (deploy/rbac.yaml)"
                           ) from None
    return {str(item["metadata"]["name"]): hpa_state(item) for item in items}
