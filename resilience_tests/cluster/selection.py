"""Choosing which pods and nodes a fault touches. Pure logic over plain records.

Selection is deterministic for a given seed, never picks control-plane nodes or
kube-system pods unless allowed, and enforces the experiment's blast radius.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import Field, model_validator

from resilience_tests.errors import ResilienceError
from resilience_tests.labels import ZONE_LABEL, has_labels
from resilience_tests.schema import Model, Percent

CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
_T = TypeVar("_T")


class SelectionError(ResilienceError):
    """Nothing matched, or more than the guardrails allow would be touched."""


@dataclass(frozen=True)
class PodInfo:
    """What selection needs to know of a pod."""

    name: str
    namespace: str
    node: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    terminating: bool = False
    controller: str = ""  # kind of the owner that controls it (ReplicaSet, StatefulSet...); "" for none
    mirror: bool = False  # a static pod's mirror (the kubelet owns it)
    finished: bool = False  # Succeeded or Failed
    emptydir: tuple[str, ...] = ()  # emptyDir volumes: their data is lost when the pod goes

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @property
    def disrupted_by_node_loss(self) -> bool:
        """Whether draining or losing its node disrupts it (DaemonSet, mirror and finished pods are not moved)."""
        return self.controller != "DaemonSet" and not self.mirror and not self.finished


@dataclass(frozen=True)
class NodeInfo:
    """What selection needs to know of a node."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    unschedulable: bool = False

    @property
    def zone(self) -> str:
        """The node's zone label ('' if none)."""
        return self.labels.get(ZONE_LABEL, "")

    @property
    def control_plane(self) -> bool:
        """True for control-plane nodes."""
        return any(label in self.labels for label in CONTROL_PLANE_LABELS)


class Amount(Model):
    """How many to pick: a count, a percentage, or all (neither given)."""

    count: int | None = Field(default=None, ge=1)
    percent: Percent | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Amount:
        if self.count is not None and self.percent is not None:
            raise ValueError("give count or percent, not both")
        return self

    def how_many(self, available: int) -> int:
        """Number to pick out of ``available``."""
        if self.count is not None:
            return min(self.count, available)
        if self.percent is not None:  # 0% picks nothing; any other share picks at least one
            return min(available, max(1, math.ceil(available * self.percent))) if available and self.percent else 0
        return available


class NodeSelector(Amount):
    """Which nodes: by zone, names or label selector, then how many."""

    zone: str | None = None
    names: tuple[str, ...] = ()
    selector: dict[str, str] = Field(default_factory=dict)
    prefer_target_pods: bool = True


WORKLOAD_KINDS = ("deployment", "statefulset", "daemonset")


def parse_workload(text: str) -> tuple[str, str]:
    """``Deployment/web`` -> ``("deployment", "web")``: the one parser of a workload's ``KIND/NAME``."""
    kind, _, name = text.partition("/")
    if kind.lower() not in WORKLOAD_KINDS or not name or "/" in name:
        raise SelectionError(f"workload must be KIND/NAME with KIND one of {', '.join(WORKLOAD_KINDS)}, "
                             f"not {text!r}", hint="e.g. deployment/web")
    return kind.lower(), name


def parse_label_selector(text: str | None) -> dict[str, str]:
    """``"app=web,tier=front"`` -> ``{"app": "web", "tier": "front"}`` (equality selectors only)."""
    result: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise SelectionError(f"selector part {part!r} is not KEY=VALUE",
                                 hint='write selectors like "app=web,tier=front"')
        result[key.strip()] = value.strip().lstrip("=")
    return result


def selector_text(labels: Mapping[str, str]) -> str:
    """``{"app": "web"}`` -> ``"app=web"``: the form the API server's ``labelSelector`` takes."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def select_pods(pods: list[PodInfo], amount: Amount, *, seed: int, allow_kube_system: bool,
                max_pods: int, what: str) -> list[PodInfo]:
    """Pick pods for a fault. ``what`` names the selection in errors ("pods app=web in demo")."""
    candidates = [p for p in pods if not p.terminating]
    if not allow_kube_system:
        candidates = [p for p in candidates if p.namespace != "kube-system"]
    if not candidates:
        raise SelectionError(f"no running pod matches {what}", hint="check the namespace and selector")
    chosen = _sample(sorted(candidates, key=lambda p: p.name), amount.how_many(len(candidates)), seed)
    if len(chosen) > max_pods:
        raise SelectionError(
            f"{len(chosen)} pods of {what} would be affected, more than guardrails.max_pods={max_pods}",
            hint="lower count/percent or raise guardrails.max_pods in the experiment")
    return chosen


def select_nodes(nodes: list[NodeInfo], spec: NodeSelector, *, seed: int, allow_control_plane: bool,
                 max_nodes: int, target_nodes: set[str] | None = None) -> list[NodeInfo]:
    """Pick nodes for a fault, preferring nodes that run the target's pods."""
    candidates = list(nodes)
    if not allow_control_plane:
        candidates = [n for n in candidates if not n.control_plane]
    if spec.zone:
        zones = sorted({n.zone for n in nodes if n.zone})
        if spec.zone not in zones:
            raise SelectionError(f"no node is in zone {spec.zone!r}", hint=f"zones: {', '.join(zones) or 'none'}")
        candidates = [n for n in candidates if n.zone == spec.zone]
    if spec.names:
        known = {n.name for n in nodes}
        unknown = [name for name in spec.names if name not in known]
        if unknown:
            raise SelectionError(f"unknown node(s): {', '.join(unknown)}", hint="see `kubectl get nodes`")
        plane = [n.name for n in nodes if n.name in spec.names and n.control_plane and not allow_control_plane]
        if plane:
            raise SelectionError(f"{', '.join(plane)} is a control-plane node",
                                 hint="set guardrails.allow_control_plane: true to touch it")
        candidates = [n for n in candidates if n.name in spec.names]
    if spec.selector:
        candidates = [n for n in candidates if has_labels(n.labels, spec.selector)]
    if not candidates:
        raise SelectionError("no node matches the selection", hint="check zone, names and selector")
    ordered = sorted(candidates, key=lambda n: n.name)
    wanted = spec.how_many(len(ordered))
    if spec.prefer_target_pods and target_nodes:
        preferred = [n for n in ordered if n.name in target_nodes]
        others = [n for n in ordered if n.name not in target_nodes]
        chosen = _sample(preferred, min(wanted, len(preferred)), seed)
        chosen += _sample(others, wanted - len(chosen), seed)
    else:
        chosen = _sample(ordered, wanted, seed)
    if len(chosen) > max_nodes:
        raise SelectionError(
            f"{len(chosen)} nodes would be affected, more than guardrails.max_nodes={max_nodes}",
            hint="lower count/percent or raise guardrails.max_nodes in the experiment")
    return sorted(chosen, key=lambda n: n.name)


def _sample(items: list[_T], k: int, seed: int) -> list[_T]:
    if k >= len(items):
        return list(items)
    return random.Random(seed).sample(items, k)


@dataclass
class Budget:
    """What one experiment (or one test's ``chaos`` helper) may touch in all: ``guardrails.max_nodes`` distinct
    nodes and ``max_pods`` pods, over every fault and every repeated round. Pods count as distinct pods disrupted
    (``namespace/name``) plus the pods a fault adds (a scale-up). Faults take from it before they act; safe across
    threads."""

    max_nodes: int
    max_pods: int
    nodes: set[str] = field(default_factory=set)
    pods: set[str] = field(default_factory=set)
    started: int = 0  # pods added by scale-ups (they have no name yet)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, what: str, *, nodes: Iterable[str] = (), pods: Iterable[str] = (), started: int = 0) -> None:
        """Count ``nodes`` and ``pods`` (``namespace/name``) as touched by ``what``, and ``started`` pods as added
        by it; raise SelectionError, taking nothing, if the experiment would then exceed its guardrails."""
        with self._lock:
            all_nodes, all_pods, all_started = self.nodes | set(nodes), self.pods | set(pods), self.started + started
            if len(all_nodes) > self.max_nodes:
                raise SelectionError(
                    f"{what} would bring the nodes this experiment touches to {len(all_nodes)} "
                    f"({', '.join(sorted(all_nodes))}), more than guardrails.max_nodes={self.max_nodes}",
                    hint="touch fewer nodes or raise guardrails.max_nodes (it counts every fault and round)")
            if len(all_pods) + all_started > self.max_pods:
                verb = "disrupts or starts" if all_started else "disrupts"
                raise SelectionError(
                    f"{what} would bring the pods this experiment {verb} to {len(all_pods) + all_started}, more "
                    f"than guardrails.max_pods={self.max_pods} (pods of every namespace on drained or failed nodes "
                    "count, and so do the pods a scale-up adds)",
                    hint="disrupt fewer pods or raise guardrails.max_pods (it counts every fault and round)")
            self.nodes, self.pods, self.started = all_nodes, all_pods, all_started

    def limit(self, *, max_nodes: int | None = None, max_pods: int | None = None) -> None:
        """Set new limits for what is still to come; what was counted stays counted. Raises SelectionError,
        changing nothing, if a limit is negative or below what was already touched."""
        with self._lock:
            nodes = self.max_nodes if max_nodes is None else max_nodes
            pods = self.max_pods if max_pods is None else max_pods
            if nodes < 0 or pods < 0:
                raise SelectionError(f"guardrails max_nodes={nodes}, max_pods={pods}: a limit cannot be negative",
                                     hint="give 0 or more")
            if len(self.nodes) > nodes or len(self.pods) + self.started > pods:
                raise SelectionError(
                    f"guardrails max_nodes={nodes}, max_pods={pods} are below what was already touched "
                    f"({len(self.nodes)} nodes, {len(self.pods) + self.started} pods)",
                    hint="keep the limits at least as high as what the earlier faults took")
            self.max_nodes, self.max_pods = nodes, pods

    def reset(self) -> None:
        """Forget what was counted (the plan's counts were a preview; the run counts again)."""
        with self._lock:
            self.nodes, self.pods, self.started = set(), set(), 0


def node_pods(pods: list[PodInfo], *, allow_kube_system: bool, what: str) -> list[PodInfo]:
    """The pods that losing or draining nodes disrupts (DaemonSet, mirror and finished pods are not; terminating
    ones are listed, for a drain waits for them, but already on their way out); kube-system ones only with
    ``allow_kube_system``."""
    hit = [p for p in pods if p.disrupted_by_node_loss]
    system = [p.key for p in hit if p.namespace == "kube-system" and not p.terminating]
    if system and not allow_kube_system:
        raise SelectionError(f"{what} would disrupt kube-system pods: {', '.join(system[:5])}",
                             hint="choose other nodes or set guardrails.allow_kube_system: true")
    return hit
