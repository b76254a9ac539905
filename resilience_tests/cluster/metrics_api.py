"""What an HPA on resource metrics needs besides itself, read before any load starts: the resource metrics API
(the APIService ``v1beta1.metrics.k8s.io``, registered by metrics-server) and the resource requests of the
containers of the workload it scales (a utilisation target is a share of the request).

Read as JSON, typed here; what is wrong with them is decided by a pure function in
:func:`resilience_tests.experiment.preflight.check_resource_inputs`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubernetes.client.exceptions import ApiException

from resilience_tests.cluster.kube import NotFound
from resilience_tests.errors import ResilienceError

if TYPE_CHECKING:
    from resilience_tests.cluster.kube import Kube, Workload

METRICS_APISERVICE = "v1beta1.metrics.k8s.io"


@dataclass(frozen=True)
class MetricsApi:
    """The resource metrics API as the API server registers it.

    Attributes:
        state: ``available``; ``missing`` (no such APIService); ``unavailable`` (registered, its Available
            condition not True); ``unknown`` (this account may not read APIServices, or the read failed).
        reason: the Available condition's reason and message, or why the state is unknown.
    """

    state: str
    reason: str = ""


@dataclass(frozen=True)
class ContainerRequests:
    """One container of a pod template and the resources it requests (``cpu``, ``memory``...)."""

    name: str
    requests: frozenset[str]
    init: bool = False


def metrics_api_state(obj: dict[str, Any]) -> MetricsApi:
    """The state of an APIService object (its ``Available`` condition)."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    available = next((c for c in conditions if c.get("type") == "Available"), None)
    if available is not None and available.get("status") == "True":
        return MetricsApi("available")
    if available is None:
        return MetricsApi("unavailable", "no Available condition yet")
    why = ": ".join(str(p) for p in (available.get("reason"), available.get("message")) if p)
    return MetricsApi("unavailable", why[:300])


def read_metrics_api(kube: Kube) -> MetricsApi:
    """The APIService ``v1beta1.metrics.k8s.io`` as it is now (never raises for a refusal: ``unknown``)."""
    try:
        response = kube.raw.apiregistration.read_api_service(METRICS_APISERVICE, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return MetricsApi("missing")
        if exc.status in (401, 403):
            return MetricsApi("unknown", f"this account may not read apiservices (HTTP {exc.status})")
        return MetricsApi("unknown", f"reading APIService {METRICS_APISERVICE} failed (HTTP {exc.status})")
    try:
        obj: dict[str, Any] = json.loads(response.data)
    finally:
        response.release_conn()
    return metrics_api_state(obj)


def template_requests(obj: dict[str, Any]) -> tuple[ContainerRequests, ...]:
    """The containers (init containers after them) of a workload object's pod template with what they request."""
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}

    def of(container: dict[str, Any], init: bool) -> ContainerRequests:
        requests = (container.get("resources") or {}).get("requests") or {}
        return ContainerRequests(str(container.get("name", "")), frozenset(str(k) for k in requests), init)

    return tuple([of(c, False) for c in spec.get("containers") or []]
                 + [of(c, True) for c in spec.get("initContainers") or []])


class WorkloadReadError(ResilienceError):
    """A workload's pod template could not be read."""


def read_template_requests(kube: Kube, workload: Workload) -> tuple[ContainerRequests, ...]:
    """What each container of ``workload``'s pod template requests; NotFound when it does not exist."""
    readers = {"deployment": "read_namespaced_deployment", "statefulset": "read_namespaced_stateful_set"}
    if workload.kind not in readers:
        raise WorkloadReadError(f"{workload}: its pod template is not read here",
                                hint="target a Deployment or StatefulSet")
    reader = getattr(kube.raw.apps, readers[workload.kind])
    try:
        response = reader(workload.name, workload.namespace, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            raise NotFound(f"{workload} does not exist") from None
        raise WorkloadReadError(f"cannot read {workload} (HTTP {exc.status})",
                                hint="give the account get on the workload (deploy/rbac.yaml)") from None
    try:
        obj: dict[str, Any] = json.loads(response.data)
    finally:
        response.release_conn()
    return template_requests(obj)
