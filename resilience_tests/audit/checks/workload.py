"""A workload as the rules see it (its pod spec, labels, replicas, and the Services, PDBs and HPA pointing at
it), read once per inventory with the indexes that keep a thousand workloads fast."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from resilience_tests.audit.checks.fields import (
    CONTROLLERS,
    LAST_APPLIED,
    SCALED,
    as_dict,
    as_int,
    as_list,
    dicts,
    labels_of,
)
from resilience_tests.audit.model import Inventory, Obj
from resilience_tests.labels import has_labels, selects


@dataclass(frozen=True)
class Workload:
    """A workload as the rules see it: its pod spec and labels, its replicas and what else points at it."""

    obj: Obj
    pod: dict[str, Any]  # the pod spec (spec.template.spec, or spec for a bare Pod)
    labels: dict[str, str]  # the labels its pods get
    replicas: int | None  # desired pods (the HPA's minReplicas when one scales it); None: DaemonSet, Pod
    hpa: Obj | None  # the HorizontalPodAutoscaler scaling it
    services: tuple[Obj, ...]  # the Services of its namespace that select its pods
    inventory: Inventory

    @property
    def containers(self) -> list[dict[str, Any]]:
        """The app containers (not init containers)."""
        return dicts(self.pod.get("containers"))

    @property
    def all_containers(self) -> list[dict[str, Any]]:
        """Init containers then app containers: what the security and image rules look at."""
        return dicts(self.pod.get("initContainers")) + self.containers

    @property
    def pod_path(self) -> str:
        """Where the pod spec is in the manifest, for messages."""
        return "spec" if self.obj.kind == "Pod" else "spec.template.spec"


def read_workloads(inventory: Inventory) -> list[Workload]:
    """The audited workloads: controllers and bare Pods (Pods a controller owns are audited through it)."""
    workloads = []
    for obj in inventory.of(*CONTROLLERS, "Pod"):
        spec = as_dict(obj.data.get("spec"))
        if obj.kind == "Pod":
            if as_list(as_dict(obj.data.get("metadata")).get("ownerReferences")):
                continue
            pod, labels = spec, labels_of(obj.data.get("metadata"))
        else:
            template = as_dict(spec.get("template"))
            pod, labels = as_dict(template.get("spec")), labels_of(template.get("metadata"))
        hpa = hpa_for(obj, inventory) if obj.kind in SCALED else None
        replicas: int | None = None
        if obj.kind in SCALED:
            replicas = hpa_min(hpa) if hpa else as_int(spec.get("replicas"), 1)
        services = tuple(s for s in candidates(inventory, obj.namespace, "Service", labels, _service_pairs)
                         if _service_selects(s, labels))
        workloads.append(Workload(obj, pod, labels, replicas, hpa, services, inventory))
    return workloads


def candidates(inventory: Inventory, namespace: str, kind: str, labels: Mapping[str, str],
                pairs: Callable[[Obj], list[tuple[str, str]] | None]) -> list[Obj]:
    """The objects of ``kind`` in ``namespace`` that may select ``labels``, in the order they were read: those
    whose selector requires one of the labels' pairs, and those whose selector requires no pair (``pairs``
    returns None). Indexed once per inventory: matching every selector against every workload made 1,000
    workloads in one namespace take seconds."""
    def build() -> tuple[dict[tuple[str, str], list[int]], list[int], list[Obj]]:
        objs = inventory.in_namespace(namespace, kind)
        by_pair: dict[tuple[str, str], list[int]] = {}
        always: list[int] = []
        for position, obj in enumerate(objs):
            required = pairs(obj)
            if required:
                by_pair.setdefault(required[0], []).append(position)  # any one pair it needs will do
            else:
                always.append(position)
        return by_pair, always, objs

    by_pair, always, objs = inventory.memo(("candidates", namespace, kind, pairs), build)
    positions = set(always)
    for pair in labels.items():
        positions.update(by_pair.get((str(pair[0]), str(pair[1])), ()))
    return [objs[i] for i in sorted(positions)]


def _service_pairs(service: Obj) -> list[tuple[str, str]] | None:
    selector = as_dict(as_dict(service.data.get("spec")).get("selector"))
    return sorted((str(k), str(v)) for k, v in selector.items()) or None


def selector_pairs(selector: Any) -> list[tuple[str, str]] | None:
    """The label pairs a LabelSelector requires (its matchLabels), None when it requires none."""
    if not isinstance(selector, dict):
        return None
    return sorted((str(k), str(v)) for k, v in as_dict(selector.get("matchLabels")).items()) or None


def _pdb_pairs(pdb: Obj) -> list[tuple[str, str]] | None:
    return selector_pairs(as_dict(pdb.data.get("spec")).get("selector"))


def _service_selects(service: Obj, labels: Mapping[str, str]) -> bool:
    """A Service's selector is a plain map: it selects pods carrying all of it (an empty one selects none)."""
    selector = as_dict(as_dict(service.data.get("spec")).get("selector"))
    return bool(selector) and has_labels(labels, selector)


def hpa_target(hpa: Obj) -> tuple[str, str]:
    """(kind, name) of the workload an HPA scales."""
    ref = as_dict(as_dict(hpa.data.get("spec")).get("scaleTargetRef"))
    return str(ref.get("kind") or ""), str(ref.get("name") or "")


def hpa_for(obj: Obj, inventory: Inventory) -> Obj | None:
    def build() -> dict[tuple[str, str], Obj]:
        targets: dict[tuple[str, str], Obj] = {}
        for hpa in inventory.in_namespace(obj.namespace, "HorizontalPodAutoscaler"):
            targets.setdefault(hpa_target(hpa), hpa)  # the first one read, as before
        return targets

    found: Obj | None = inventory.memo(("hpa-targets", obj.namespace), build).get((obj.kind, obj.name))
    return found


def hpa_min(hpa: Obj) -> int:
    """An HPA's minReplicas (1 when unset, as the API defaults it)."""
    return as_int(as_dict(hpa.data.get("spec")).get("minReplicas"), 1)


def pdbs(workload: Workload) -> list[Obj]:
    """The PodDisruptionBudgets of its namespace that select its pods."""
    return [pdb for pdb in candidates(workload.inventory, workload.obj.namespace, "PodDisruptionBudget",
                                       workload.labels, _pdb_pairs)
            if selects(as_dict(pdb.data.get("spec")).get("selector"), workload.labels)]


def applied_spec(obj: Obj) -> dict[str, Any] | None:
    """The spec as its owner applies it: the manifest's, or kubectl's last-applied-configuration for a live
    object (None for a live object without it: its spec.replicas is the controller's, not the manifest's)."""
    applied = obj.annotations.get(LAST_APPLIED)
    if applied:
        try:
            return as_dict(as_dict(json.loads(applied)).get("spec"))
        except ValueError:
            return None
    if obj.location.source.startswith("cluster:"):
        return None
    return as_dict(obj.data.get("spec"))
