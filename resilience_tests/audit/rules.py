"""The audit's rules: what a workload must get right to survive the experiments, checked on plain dicts.

Pure functions, no I/O: every object is a dict as the API server returns it (or as a manifest writes it).
Each rule is one function yielding one-line messages (what is wrong, with names and values, and how to fix
it); the tables at the end of the module map rule ids to those functions, and :func:`audit` runs them all.

Workload rules run on Deployments, StatefulSets and DaemonSets (the pod template) and on bare Pods (no
ownerReferences; pod-level rules only: the replica, PDB, rollout and HPA rules need a controller).
Namespace rules run once per namespace holding a Deployment, StatefulSet or DaemonSet.

A skip annotation ``resilience-tests.io/skip-rt101: "<reason>"`` on the object a finding is reported on
(for namespace rules: the workload they are reported on) marks that rule's findings there as skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from resilience_tests.audit.model import SKIP_PREFIX, Finding, Inventory, Location, Obj, Rule
from resilience_tests.labels import ZONE_LABEL

HOSTNAME_LABEL = "kubernetes.io/hostname"
CRITICAL_KEY = "resilience-tests.io/critical"  # label or annotation "true": the workload must not be preempted
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CONTROLLERS = ("Deployment", "StatefulSet", "DaemonSet")
SCALED = ("Deployment", "StatefulSet")  # the kinds with spec.replicas (and PDBs, HPAs that matter here)
POD_OWNERS = (*CONTROLLERS, "ReplicaSet", "Job", "Pod")  # what a PodDisruptionBudget may select pods of

_RULES = (
    Rule("RT000", "skip-without-reason", "low",
         "A skip annotation without a reason skips nothing: say why the rule does not apply."),
    Rule("RT101", "readiness-probe", "high",
         "Every container has a readinessProbe, so traffic stops reaching a pod before it stops.",
         "rollout-under-load"),
    Rule("RT102", "liveness-probe", "medium",
         "Every container has a livenessProbe, so a hung process is restarted."),
    Rule("RT103", "liveness-equals-readiness", "medium",
         "A livenessProbe identical to the readinessProbe with failureThreshold <= 1 restarts pods under load."),
    Rule("RT104", "startup-probe", "low",
         "A probe with initialDelaySeconds >= 30 and no startupProbe: a startupProbe starts checks sooner."),
    Rule("RT201", "replicas", "high",
         "A Deployment or StatefulSet behind a Service runs at least 2 replicas (HPA minReplicas when scaled).",
         "kill-two-pods"),
    Rule("RT202", "zone-spread", "medium",
         "Replicas are spread over zones (topologySpreadConstraints or podAntiAffinity on the zone label).",
         "zone-a-outage"),
    Rule("RT203", "node-spread", "low",
         "Replicas are spread over nodes (topologySpreadConstraints or podAntiAffinity on hostname or zone).",
         "drain-one-node"),
    Rule("RT204", "pinned", "high",
         "Pods are not pinned to one node or one zone (nodeName, nodeSelector, required nodeAffinity).",
         "zone-a-outage"),
    Rule("RT301", "requests", "medium", "Every container requests cpu and memory."),
    Rule("RT302", "memory-limit", "low", "Every container has a memory limit."),
    Rule("RT303", "priority-class", "low",
         f'A workload marked {CRITICAL_KEY}: "true" has a priorityClassName.'),
    Rule("RT401", "graceful-shutdown", "medium",
         "A pod leaves the endpoints before it stops (preStop hook or a grace period above the readiness "
         "window) and its preStop sleep fits in the grace period.", "rollout-under-load"),
    Rule("RT501", "pdb", "medium",
         "A Deployment or StatefulSet with 2+ replicas has a PodDisruptionBudget.", "drain-one-node"),
    Rule("RT502", "pdb-blocks-drain", "high",
         "A PodDisruptionBudget allows at least one eviction, or every node drain blocks.", "drain-one-node"),
    Rule("RT503", "pdb-selects-nothing", "low",
         "A PodDisruptionBudget selects the pods of some workload (a typo in its selector protects nothing)."),
    Rule("RT601", "rollout-capacity", "high",
         "A rollout never takes every replica down (maxUnavailable below replicas; no Recreate behind a "
         "Service).", "rollout-under-load"),
    Rule("RT701", "hpa-min-replicas", "medium", "A HorizontalPodAutoscaler keeps at least 2 replicas."),
    Rule("RT702", "hpa-requests", "medium",
         "The containers of a workload scaled on cpu utilization request cpu (or the HPA cannot scale)."),
    Rule("RT703", "hpa-fixed-replicas", "low",
         "A workload managed by a HorizontalPodAutoscaler leaves spec.replicas out of its manifest."),
    Rule("RT801", "privileged", "high", "No container is privileged."),
    Rule("RT802", "allow-privilege-escalation", "medium",
         "Every container sets securityContext.allowPrivilegeEscalation: false."),
    Rule("RT803", "run-as-non-root", "medium",
         "Every container runs with runAsNonRoot: true (pod or container securityContext)."),
    Rule("RT804", "read-only-root-fs", "low", "Every container sets readOnlyRootFilesystem: true."),
    Rule("RT805", "capabilities", "low", "Every container drops ALL capabilities (adding back what it needs)."),
    Rule("RT806", "host-namespaces", "high", "No hostNetwork, hostPID, hostIPC or hostPath volume."),
    Rule("RT807", "automount-token", "low", "The pod spec sets automountServiceAccountToken: false."),
    Rule("RT808", "image-pinned", "medium", "Every image has a version tag other than latest, or a digest."),
    Rule("RT901", "resource-quota", "low", "The namespace has a ResourceQuota."),
    Rule("RT902", "limit-range", "low", "The namespace has a LimitRange."),
    Rule("RT903", "default-deny", "low", "The namespace has a default-deny ingress NetworkPolicy."),
)
RULES: dict[str, Rule] = {rule.id: rule for rule in _RULES}


# --- reading plain dicts (anything may be missing or of the wrong type in a manifest) -------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in _list(value) if isinstance(item, dict)]


def _int(value: Any, default: int) -> int:
    """An integer field, or its default when it is missing or not an integer."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return default


def _labels(metadata: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in _dict(_dict(metadata).get("labels")).items()}


def _name(container: dict[str, Any]) -> str:
    return str(container.get("name") or "?")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _render(labels: Mapping[str, Any]) -> str:
    """``app=web,tier=front``."""
    return ",".join(f"{k}={v}" for k, v in labels.items()) or "{}"


def _selects(selector: Any, labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions) selects these labels.

    An empty selector selects everything; a missing one (None) or an invalid one selects nothing.
    """
    if not isinstance(selector, dict):
        return False
    for key, value in _dict(selector.get("matchLabels")).items():
        if labels.get(str(key)) != str(value):
            return False
    for expression in _dicts(selector.get("matchExpressions")):
        key, operator = str(expression.get("key")), expression.get("operator")
        values = {str(v) for v in _list(expression.get("values"))}
        present = key in labels
        if operator == "In":
            ok = present and labels[key] in values
        elif operator == "NotIn":
            ok = not (present and labels[key] in values)
        elif operator == "Exists":
            ok = present
        elif operator == "DoesNotExist":
            ok = not present
        else:
            ok = False
        if not ok:
            return False
    return True


def _scaled(value: Any, total: int, *, round_up: bool) -> int | None:
    """An IntOrString (``2`` or ``"50%"``) as a number of pods out of ``total``; None when unreadable.

    Percentages round as Kubernetes does: down for a Deployment's maxUnavailable, up for a PDB.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%") and text[:-1].isdigit():
            exact = int(text[:-1]) * total
            return -(-exact // 100) if round_up else exact // 100
        if text.isdigit():
            return int(text)
    return None


_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_SUFFIX = {"": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6,
           "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
           "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
           "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60}


def _quantity(value: Any) -> Decimal | None:
    """A resource quantity (``500m``, ``0.5``, ``128Mi``, ``1e3``) as a number; None when unreadable."""
    if isinstance(value, bool):
        return None
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIX[match.group(2) or ""]
    except InvalidOperation:
        return None


def _same_quantity(a: Any, b: Any) -> bool:
    qa, qb = _quantity(a), _quantity(b)
    return qa == qb if qa is not None and qb is not None else str(a) == str(b)


# --- what a workload's pods look like -------------------------------------------------------------------


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
        return _dicts(self.pod.get("containers"))

    @property
    def all_containers(self) -> list[dict[str, Any]]:
        """Init containers then app containers: what the security and image rules look at."""
        return _dicts(self.pod.get("initContainers")) + self.containers

    @property
    def pod_path(self) -> str:
        """Where the pod spec is in the manifest, for messages."""
        return "spec" if self.obj.kind == "Pod" else "spec.template.spec"


def _workloads(inventory: Inventory) -> list[Workload]:
    """The audited workloads: controllers and bare Pods (Pods a controller owns are audited through it)."""
    workloads = []
    for obj in inventory.of(*CONTROLLERS, "Pod"):
        spec = _dict(obj.data.get("spec"))
        if obj.kind == "Pod":
            if _list(_dict(obj.data.get("metadata")).get("ownerReferences")):
                continue
            pod, labels = spec, _labels(obj.data.get("metadata"))
        else:
            template = _dict(spec.get("template"))
            pod, labels = _dict(template.get("spec")), _labels(template.get("metadata"))
        hpa = _hpa_for(obj, inventory) if obj.kind in SCALED else None
        replicas: int | None = None
        if obj.kind in SCALED:
            replicas = _hpa_min(hpa) if hpa else _int(spec.get("replicas"), 1)
        services = tuple(s for s in _candidates(inventory, obj.namespace, "Service", labels, _service_pairs)
                         if _service_selects(s, labels))
        workloads.append(Workload(obj, pod, labels, replicas, hpa, services, inventory))
    return workloads


def _candidates(inventory: Inventory, namespace: str, kind: str, labels: Mapping[str, str],
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
    selector = _dict(_dict(service.data.get("spec")).get("selector"))
    return sorted((str(k), str(v)) for k, v in selector.items()) or None


def _selector_pairs(selector: Any) -> list[tuple[str, str]] | None:
    """The label pairs a LabelSelector requires (its matchLabels), None when it requires none."""
    if not isinstance(selector, dict):
        return None
    return sorted((str(k), str(v)) for k, v in _dict(selector.get("matchLabels")).items()) or None


def _pdb_pairs(pdb: Obj) -> list[tuple[str, str]] | None:
    return _selector_pairs(_dict(pdb.data.get("spec")).get("selector"))


def _service_selects(service: Obj, labels: Mapping[str, str]) -> bool:
    """A Service's selector is a plain map: it selects pods carrying all of it (an empty one selects none)."""
    selector = _dict(_dict(service.data.get("spec")).get("selector"))
    return bool(selector) and all(labels.get(str(k)) == str(v) for k, v in selector.items())


def _hpa_target(hpa: Obj) -> tuple[str, str]:
    ref = _dict(_dict(hpa.data.get("spec")).get("scaleTargetRef"))
    return str(ref.get("kind") or ""), str(ref.get("name") or "")


def _hpa_for(obj: Obj, inventory: Inventory) -> Obj | None:
    def build() -> dict[tuple[str, str], Obj]:
        targets: dict[tuple[str, str], Obj] = {}
        for hpa in inventory.in_namespace(obj.namespace, "HorizontalPodAutoscaler"):
            targets.setdefault(_hpa_target(hpa), hpa)  # the first one read, as before
        return targets

    found: Obj | None = inventory.memo(("hpa-targets", obj.namespace), build).get((obj.kind, obj.name))
    return found


def _hpa_min(hpa: Obj) -> int:
    return _int(_dict(hpa.data.get("spec")).get("minReplicas"), 1)


def _resources(container: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(requests, limits) for cpu and memory; a request left out defaults to its limit, as the API server does."""
    resources = _dict(container.get("resources"))
    limits = {k: v for k, v in _dict(resources.get("limits")).items() if k in ("cpu", "memory") and v is not None}
    requests = {k: v for k, v in _dict(resources.get("requests")).items() if k in ("cpu", "memory") and v is not None}
    return {**limits, **requests}, limits


def _qos(workload: Workload) -> str:
    """The pod's QoS class, as the kubelet computes it from every container's requests and limits."""
    any_set, guaranteed = False, True
    for container in workload.all_containers:
        requests, limits = _resources(container)
        requests = {k: v for k, v in requests.items() if _quantity(v) != 0}
        limits = {k: v for k, v in limits.items() if _quantity(v) != 0}
        any_set = any_set or bool(requests or limits)
        if set(limits) != {"cpu", "memory"} or any(not _same_quantity(requests.get(k), v) for k, v in limits.items()):
            guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def _handler(probe: dict[str, Any]) -> dict[str, Any]:
    """What a probe checks (its handler), without its timings."""
    return {key: probe[key] for key in _HANDLERS if key in probe}


def _readiness_window(workload: Workload) -> tuple[int, int]:
    """(periodSeconds, failureThreshold) of the slowest readinessProbe (defaults 10 and 3 when none)."""
    windows = [(_int(p.get("periodSeconds"), 10), _int(p.get("failureThreshold"), 3))
               for p in (_dict(c.get("readinessProbe")) for c in workload.containers) if p]
    return max(windows, key=lambda w: w[0] * w[1], default=(10, 3))


def _pre_stop(container: dict[str, Any]) -> dict[str, Any]:
    return _dict(_dict(container.get("lifecycle")).get("preStop"))


_SLEEP = re.compile(r"\bsleep\s+(\d+)")


def _pre_stop_sleep(container: dict[str, Any]) -> int | None:
    """Seconds a preStop hook sleeps: ``exec: [sh, -c, "sleep 5"]`` or the native ``sleep: {seconds: 5}``."""
    hook = _pre_stop(container)
    native = _dict(hook.get("sleep")).get("seconds")
    if isinstance(native, int) and not isinstance(native, bool):
        return native
    command = " ".join(str(part) for part in _list(_dict(hook.get("exec")).get("command")))
    match = _SLEEP.search(command)
    return int(match.group(1)) if match else None


def _spread_keys(workload: Workload) -> set[str]:
    """The topology keys its pods spread over: topologySpreadConstraints and podAntiAffinity (required or
    preferred) whose labelSelector selects its own pods (or that has none)."""
    pod = workload.pod
    terms = _dicts(pod.get("topologySpreadConstraints"))
    anti = _dict(_dict(pod.get("affinity")).get("podAntiAffinity"))
    terms += _dicts(anti.get("requiredDuringSchedulingIgnoredDuringExecution"))
    preferred = _dicts(anti.get("preferredDuringSchedulingIgnoredDuringExecution"))
    terms += [_dict(t.get("podAffinityTerm")) for t in preferred]
    return {str(t.get("topologyKey")) for t in terms
            if t.get("topologyKey") and ("labelSelector" not in t or _selects(t["labelSelector"], workload.labels))}


def _allowed(pod: dict[str, Any], key: str) -> set[str] | None:
    """The values of node label ``key`` a pod may be scheduled on (nodeSelector and required nodeAffinity);
    None when it may go anywhere."""
    allowed: set[str] | None = None
    selector = _dict(pod.get("nodeSelector"))
    if key in selector:
        allowed = {str(selector[key])}
    required = _dict(_dict(_dict(pod.get("affinity")).get("nodeAffinity")).get(
        "requiredDuringSchedulingIgnoredDuringExecution"))
    terms = _dicts(required.get("nodeSelectorTerms"))
    union: set[str] | None = set() if terms else None
    for term in terms:  # terms are ORed, the expressions of a term ANDed
        values: set[str] | None = None
        for expression in _dicts(term.get("matchExpressions")):
            if expression.get("key") == key and expression.get("operator") == "In":
                these = {str(v) for v in _list(expression.get("values"))}
                values = these if values is None else values & these
        if values is None:  # a term that does not constrain the key lets the pod go anywhere
            union = None
            break
        union = (union or set()) | values
    if union is not None:
        allowed = union if allowed is None else allowed & union
    return allowed


def _pdbs(workload: Workload) -> list[Obj]:
    """The PodDisruptionBudgets of its namespace that select its pods."""
    return [pdb for pdb in _candidates(workload.inventory, workload.obj.namespace, "PodDisruptionBudget",
                                       workload.labels, _pdb_pairs)
            if _selects(_dict(pdb.data.get("spec")).get("selector"), workload.labels)]


def _cpu_utilization_containers(hpa: Obj, containers: list[dict[str, Any]]) -> list[str]:
    """Names of the containers whose cpu requests an HPA needs: all of them when it scales on the pods' cpu
    utilization (autoscaling/v1, and v2 without metrics, default to 80% cpu), one for a ContainerResource."""
    spec = _dict(hpa.data.get("spec"))
    names = [_name(c) for c in containers]
    if hpa.data.get("apiVersion") == "autoscaling/v1" or not _list(spec.get("metrics")):
        return names
    needed: list[str] = []
    for metric in _dicts(spec.get("metrics")):
        if metric.get("type") == "Resource":
            source = _dict(metric.get("resource"))
            scope = names
        elif metric.get("type") == "ContainerResource":
            source = _dict(metric.get("containerResource"))
            scope = [str(source.get("container"))]
        else:
            continue
        if source.get("name") == "cpu" and _dict(source.get("target")).get("type") == "Utilization":
            needed += [n for n in scope if n in names and n not in needed]
    return needed


def _applied_spec(obj: Obj) -> dict[str, Any] | None:
    """The spec as its owner applies it: the manifest's, or kubectl's last-applied-configuration for a live
    object (None for a live object without it: its spec.replicas is the controller's, not the manifest's)."""
    applied = obj.annotations.get(LAST_APPLIED)
    if applied:
        try:
            return _dict(_dict(json.loads(applied)).get("spec"))
        except ValueError:
            return None
    if obj.location.source.startswith("cluster:"):
        return None
    return _dict(obj.data.get("spec"))


# --- workload rules: each yields one-line messages for one workload -------------------------------------

WorkloadCheck = Callable[[Workload], Iterator[str]]


def _readiness_probe(w: Workload) -> Iterator[str]:
    for c in w.containers:
        if not c.get("readinessProbe"):
            yield (f"container {_name(c)} has no readinessProbe: add one so traffic stops before the pod does "
                   "and a new pod gets traffic only once it can answer")


def _liveness_probe(w: Workload) -> Iterator[str]:
    for c in w.containers:
        if not c.get("livenessProbe"):
            yield (f"container {_name(c)} has no livenessProbe: a hung process keeps its pod forever; add one "
                   "on a cheap endpoint that fails only when a restart helps")


def _liveness_equals_readiness(w: Workload) -> Iterator[str]:
    for c in w.containers:
        liveness, readiness = _dict(c.get("livenessProbe")), _dict(c.get("readinessProbe"))
        threshold = _int(liveness.get("failureThreshold"), 3)
        if _handler(liveness) and _handler(liveness) == _handler(readiness) and threshold <= 1:
            yield (f"container {_name(c)} livenessProbe is its readinessProbe with failureThreshold {threshold}: "
                   "one slow answer under load restarts the pod; give liveness a cheaper check or "
                   "failureThreshold >= 3")


def _startup_probe(w: Workload) -> Iterator[str]:
    for c in w.containers:
        if c.get("startupProbe"):
            continue
        for kind in ("readinessProbe", "livenessProbe"):
            delay = _int(_dict(c.get(kind)).get("initialDelaySeconds"), 0)
            if delay >= 30:
                yield (f"container {_name(c)} {kind} waits initialDelaySeconds {delay} and there is no "
                       "startupProbe: every pod is useless for that long even when it starts fast; add a "
                       "startupProbe and drop the delay")
                break


def _replicas(w: Workload) -> Iterator[str]:
    if w.replicas is None or w.replicas >= 2 or not w.services:
        return
    service = w.services[0].name
    if w.hpa:
        yield (f"HorizontalPodAutoscaler {w.hpa.name} lets it run {_plural(w.replicas, 'replica')} behind "
               f"Service {service}: losing one pod is an outage; set the HPA's minReplicas to 2 or more")
    else:
        yield (f"{_plural(w.replicas, 'replica')} behind Service {service}: losing one pod is an outage; "
               "set spec.replicas to 2 or more")


def _zone_spread(w: Workload) -> Iterator[str]:
    if w.replicas is not None and w.replicas >= 2 and ZONE_LABEL not in _spread_keys(w):
        yield (f"{w.replicas} replicas have no topologySpreadConstraint or podAntiAffinity on {ZONE_LABEL}: "
               "they may all land in one zone and go down with it; add a topologySpreadConstraint on "
               f"{ZONE_LABEL} (maxSkew 1)")


def _node_spread(w: Workload) -> Iterator[str]:
    if w.replicas is not None and w.replicas >= 2 and not {HOSTNAME_LABEL, ZONE_LABEL} & _spread_keys(w):
        yield (f"{w.replicas} replicas have no topologySpreadConstraint or podAntiAffinity on {HOSTNAME_LABEL} "
               f"or {ZONE_LABEL}: several may share a node and one drain takes them together; spread them "
               f"with topologyKey {HOSTNAME_LABEL}")


def _pinned(w: Workload) -> Iterator[str]:
    if w.obj.kind == "DaemonSet":  # a DaemonSet runs on the nodes it selects by design
        return
    node_name = w.pod.get("nodeName")
    if w.obj.kind == "Pod":  # a live bare pod has the node the scheduler chose: only an authored nodeName counts
        node_name = _dict(_applied_spec(w.obj)).get("nodeName")
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


def _requests(w: Workload) -> Iterator[str]:
    for c in w.containers:
        requests, _ = _resources(c)
        missing = [r for r in ("cpu", "memory") if r not in requests]
        if missing:
            yield (f"container {_name(c)} requests no {' or '.join(missing)} (pod QoS {_qos(w)}): the scheduler "
                   "may pack it onto a full node and it is evicted first under pressure; set "
                   f"resources.requests.{' and '.join(missing)}")


def _memory_limit(w: Workload) -> Iterator[str]:
    for c in w.containers:
        if "memory" not in _resources(c)[1]:
            yield (f"container {_name(c)} has no memory limit (pod QoS {_qos(w)}): one leak can exhaust the "
                   "node's memory and take its neighbours down; set resources.limits.memory")


def _priority_class(w: Workload) -> Iterator[str]:
    marks = {**_labels(w.obj.data.get("metadata")), **w.obj.annotations}
    if str(marks.get(CRITICAL_KEY, "")).lower() == "true" and not w.pod.get("priorityClassName"):
        yield (f'marked {CRITICAL_KEY}: "true" but has no priorityClassName: under pressure its pods are '
               f"preempted like any other; set {w.pod_path}.priorityClassName")


def _graceful_shutdown(w: Workload) -> Iterator[str]:
    grace = _int(w.pod.get("terminationGracePeriodSeconds"), 30)
    hooked = [c for c in w.containers if _pre_stop(c)]
    if not hooked:
        period, threshold = _readiness_window(w)
        if grace <= period * threshold:
            yield (f"no container has a preStop hook and terminationGracePeriodSeconds {grace} is not above the "
                   f"readiness window ({period}s x {threshold} = {period * threshold}s): endpoints may still route "
                   "to a terminating pod; add a preStop sleep of a few seconds")
        else:
            yield ("no container has a preStop hook: unless the app keeps serving after SIGTERM until its endpoints "
                   "are gone, requests fail in every rollout and drain; add a preStop sleep of a few seconds, or "
                   f"annotate {SKIP_PREFIX}rt401 with why the app drains on its own")
    for c in hooked:
        sleep = _pre_stop_sleep(c)
        if sleep is not None and sleep >= grace:
            yield (f"container {_name(c)} preStop sleeps {sleep}s but terminationGracePeriodSeconds is {grace}: "
                   "the pod is killed before it finishes its requests; set the grace period above the sleep "
                   "plus the shutdown time")


def _pdb(w: Workload) -> Iterator[str]:
    if w.replicas is not None and w.replicas >= 2 and not _pdbs(w):
        yield (f"{w.replicas} replicas and no PodDisruptionBudget selects {_render(w.labels)}: a node drain or "
               "upgrade may evict them all at once; add a PodDisruptionBudget with maxUnavailable 1")


def _pdb_blocks_drain(w: Workload) -> Iterator[str]:
    if w.replicas is None or w.replicas < 1:
        return
    for pdb in _pdbs(w):
        spec = _dict(pdb.data.get("spec"))
        if "minAvailable" in spec:
            keep = _scaled(spec["minAvailable"], w.replicas, round_up=True)
            if keep is not None and keep >= w.replicas:
                yield (f"PodDisruptionBudget {pdb.name} minAvailable {spec['minAvailable']} keeps all "
                       f"{_plural(w.replicas, 'replica')}: no pod may be evicted, so every node drain blocks; "
                       "use maxUnavailable 1")
        elif "maxUnavailable" in spec:
            down = _scaled(spec["maxUnavailable"], w.replicas, round_up=True)
            if down == 0:
                yield (f"PodDisruptionBudget {pdb.name} maxUnavailable {spec['maxUnavailable']}: no pod may be "
                       "evicted, so every node drain blocks; use maxUnavailable 1")


def _rollout_capacity(w: Workload) -> Iterator[str]:
    if w.obj.kind != "Deployment" or w.replicas is None or w.replicas < 1:
        return
    strategy = _dict(_dict(w.obj.data.get("spec")).get("strategy"))
    if strategy.get("type") == "Recreate":
        if w.services:
            yield (f"strategy Recreate stops all {_plural(w.replicas, 'replica')} before starting new ones while "
                   f"Service {w.services[0].name} routes to them: every rollout is an outage; use RollingUpdate")
        return
    raw = _dict(strategy.get("rollingUpdate")).get("maxUnavailable")
    raw = "25%" if raw is None else raw
    down = _scaled(raw, w.replicas, round_up=False)
    if down is not None and down >= w.replicas:
        yield (f"rollingUpdate.maxUnavailable {raw} of {_plural(w.replicas, 'replica')} is {down}: a rollout may "
               "stop every pod at once; lower it (e.g. maxUnavailable 0 with maxSurge 1)")


def _hpa_requests(w: Workload) -> Iterator[str]:
    if w.hpa is None:
        return
    needed = set(_cpu_utilization_containers(w.hpa, w.containers))
    for c in w.containers:
        if _name(c) in needed and "cpu" not in _resources(c)[0]:
            yield (f"container {_name(c)} requests no cpu but HorizontalPodAutoscaler {w.hpa.name} scales on cpu "
                   "utilization: it cannot compute it and never scales; set resources.requests.cpu")


def _hpa_fixed_replicas(w: Workload) -> Iterator[str]:
    applied = _applied_spec(w.obj) if w.hpa else None
    if w.hpa and applied is not None and "replicas" in applied:
        yield (f"spec.replicas {applied['replicas']} is set while HorizontalPodAutoscaler {w.hpa.name} manages "
               "the scale: every apply resets it; remove spec.replicas from the manifest")


def _privileged(w: Workload) -> Iterator[str]:
    for c in w.all_containers:
        if _dict(c.get("securityContext")).get("privileged") is True:
            yield (f"container {_name(c)} is privileged: it has every capability and the node's devices, a "
                   "compromise owns the node; remove privileged: true and add only the capabilities it needs")


def _allow_privilege_escalation(w: Workload) -> Iterator[str]:
    for c in w.all_containers:
        if _dict(c.get("securityContext")).get("allowPrivilegeEscalation") is not False:
            yield (f"container {_name(c)} does not set allowPrivilegeEscalation: false: a setuid binary can gain "
                   "root; set securityContext.allowPrivilegeEscalation: false")


def _run_as_non_root(w: Workload) -> Iterator[str]:
    pod_level = _dict(w.pod.get("securityContext")).get("runAsNonRoot")
    for c in w.all_containers:
        own = _dict(c.get("securityContext")).get("runAsNonRoot")
        if (pod_level if own is None else own) is not True:
            yield (f"container {_name(c)} may run as root (runAsNonRoot is not true in its or the pod's "
                   "securityContext): set runAsNonRoot: true with a non-zero runAsUser")


def _read_only_root_fs(w: Workload) -> Iterator[str]:
    for c in w.all_containers:
        if _dict(c.get("securityContext")).get("readOnlyRootFilesystem") is not True:
            yield (f"container {_name(c)} has a writable root filesystem: an intruder can change its binaries; "
                   "set readOnlyRootFilesystem: true and mount an emptyDir where it writes")


def _capabilities(w: Workload) -> Iterator[str]:
    for c in w.all_containers:
        dropped = _list(_dict(_dict(c.get("securityContext")).get("capabilities")).get("drop"))
        if "ALL" not in {str(d).upper() for d in dropped}:
            yield (f"container {_name(c)} does not drop ALL capabilities: it keeps the runtime's defaults "
                   "(NET_RAW...); set capabilities.drop: [ALL] and add back only what it needs")


def _host_namespaces(w: Workload) -> Iterator[str]:
    for field, shared in (("hostNetwork", "network"), ("hostPID", "processes"), ("hostIPC", "IPC")):
        if w.pod.get(field) is True:
            yield (f"{w.pod_path}.{field}: true shares the node's {shared} with the pod: a compromise reaches "
                   f"the node; remove {field}")
    for volume in _dicts(w.pod.get("volumes")):
        if "hostPath" in volume:
            path = _dict(volume.get("hostPath")).get("path", "?")
            yield (f"volume {volume.get('name', '?')} is a hostPath ({path}): the pod reads or writes the node's "
                   "files and is tied to that node's data; use an emptyDir, a ConfigMap or a PersistentVolume")


def _automount_token(w: Workload) -> Iterator[str]:
    if w.pod.get("automountServiceAccountToken") is not False:
        yield (f"{w.pod_path}.automountServiceAccountToken is not false: every pod carries an API token an "
               "intruder can use; set it to false (true only if the app calls the API)")


def _image_problem(image: str) -> str:
    """Why an image reference is not pinned ("" when it is: a version tag or a digest)."""
    if "@" in image:
        return ""
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag (so latest)"
    return "uses the tag latest" if last.split(":", 1)[1] == "latest" else ""


def _image_pinned(w: Workload) -> Iterator[str]:
    for c in w.all_containers:
        image = str(c.get("image") or "")
        problem = _image_problem(image) if image else ""
        if problem:
            yield (f"container {_name(c)} image {image} {problem}: pods of one rollout may run different code "
                   "and a rollback restores nothing; pin a version tag or a digest (@sha256:...)")


# --- object and namespace rules -------------------------------------------------------------------------

ObjectCheck = Callable[[Obj, Inventory], Iterator[str]]
NamespaceCheck = Callable[[str, Inventory], Iterator[str]]


def _pdb_selects_nothing(pdb: Obj, inventory: Inventory) -> Iterator[str]:
    selector = _dict(pdb.data.get("spec")).get("selector")
    for labels in _owner_labels(inventory, pdb.namespace, _selector_pairs(selector)):
        if _selects(selector, labels):
            return
    shown = _render(_dict(_dict(selector).get("matchLabels"))) if isinstance(selector, dict) else "none"
    yield (f"selector {shown} selects the pods of no workload here: it protects nothing; fix the selector to "
           "match the pod template labels or delete the PodDisruptionBudget")


def _owner_labels(inventory: Inventory, namespace: str, required: list[tuple[str, str]] | None,
                  ) -> list[dict[str, str]]:
    """The pod labels of the namespace's pod owners (bare pods and pod templates) that carry the first
    ``required`` pair (all of them when nothing is required)."""
    def build() -> tuple[list[dict[str, str]], dict[tuple[str, str], list[int]]]:
        every: list[dict[str, str]] = []
        by_pair: dict[tuple[str, str], list[int]] = {}
        for obj in inventory.in_namespace(namespace, *POD_OWNERS):
            metadata = obj.data.get("metadata") if obj.kind == "Pod" else \
                _dict(_dict(obj.data.get("spec")).get("template")).get("metadata")
            labels = _labels(metadata)
            for pair in labels.items():
                by_pair.setdefault(pair, []).append(len(every))
            every.append(labels)
        return every, by_pair

    every, by_pair = inventory.memo(("owner-labels", namespace), build)
    if not required:
        return list(every)
    return [every[i] for i in by_pair.get(required[0], ())]


def _hpa_min_replicas(hpa: Obj, inventory: Inventory) -> Iterator[str]:
    minimum = _hpa_min(hpa)
    if minimum < 2:
        kind, name = _hpa_target(hpa)
        yield (f"minReplicas {minimum} lets it scale {kind} {hpa.namespace}/{name} down to "
               f"{_plural(minimum, 'pod')}: losing one pod is then an outage; set minReplicas to 2 or more")


def _resource_quota(namespace: str, inventory: Inventory) -> Iterator[str]:
    if not inventory.in_namespace(namespace, "ResourceQuota"):
        yield (f"namespace {namespace} has no ResourceQuota: one runaway workload can take the cluster's "
               "capacity from every other; add a ResourceQuota")


def _limit_range(namespace: str, inventory: Inventory) -> Iterator[str]:
    if not inventory.in_namespace(namespace, "LimitRange"):
        yield (f"namespace {namespace} has no LimitRange: containers that forget requests and limits get none; "
               "add a LimitRange with default requests and limits")


def _is_default_deny(policy: Obj) -> bool:
    """An empty podSelector, Ingress among the policyTypes (the default) and no ingress rule."""
    spec = _dict(policy.data.get("spec"))
    selector = _dict(spec.get("podSelector"))
    if _dict(selector.get("matchLabels")) or _list(selector.get("matchExpressions")):
        return False
    types = spec.get("policyTypes")
    return "Ingress" in (_list(types) if types is not None else ["Ingress"]) and not _list(spec.get("ingress"))


def _default_deny(namespace: str, inventory: Inventory) -> Iterator[str]:
    if not any(_is_default_deny(p) for p in inventory.in_namespace(namespace, "NetworkPolicy")):
        yield (f"namespace {namespace} has no default-deny NetworkPolicy: every pod accepts traffic from anywhere; "
               "add one with podSelector {} and policyTypes [Ingress], then allow what each app needs")


# --- the tables: rule id -> check ----------------------------------------------------------------------

_WORKLOAD_CHECKS: dict[str, WorkloadCheck] = {
    "RT101": _readiness_probe,
    "RT102": _liveness_probe,
    "RT103": _liveness_equals_readiness,
    "RT104": _startup_probe,
    "RT201": _replicas,
    "RT202": _zone_spread,
    "RT203": _node_spread,
    "RT204": _pinned,
    "RT301": _requests,
    "RT302": _memory_limit,
    "RT303": _priority_class,
    "RT401": _graceful_shutdown,
    "RT501": _pdb,
    "RT502": _pdb_blocks_drain,
    "RT601": _rollout_capacity,
    "RT702": _hpa_requests,
    "RT703": _hpa_fixed_replicas,
    "RT801": _privileged,
    "RT802": _allow_privilege_escalation,
    "RT803": _run_as_non_root,
    "RT804": _read_only_root_fs,
    "RT805": _capabilities,
    "RT806": _host_namespaces,
    "RT807": _automount_token,
    "RT808": _image_pinned,
}
_OBJECT_CHECKS: dict[str, tuple[str, ObjectCheck]] = {  # rule id -> (kind, check), reported on the object
    "RT503": ("PodDisruptionBudget", _pdb_selects_nothing),
    "RT701": ("HorizontalPodAutoscaler", _hpa_min_replicas),
}
_NAMESPACE_CHECKS: dict[str, NamespaceCheck] = {
    "RT901": _resource_quota,
    "RT902": _limit_range,
    "RT903": _default_deny,
}


# --- running them --------------------------------------------------------------------------------------


def _skips(obj: Obj) -> dict[str, tuple[str, str]]:
    """Rule id (upper case) -> (annotation key, reason) for every skip annotation of an object."""
    return {key[len(SKIP_PREFIX):].strip().upper(): (key, value.strip())
            for key, value in obj.annotations.items() if key.startswith(SKIP_PREFIX)}


def _finding(rule_id: str, carrier: Obj, message: str, obj: str = "") -> Finding:
    """A finding reported on ``carrier`` (its location; skipped when it carries a skip annotation with a reason)."""
    reason = _skips(carrier).get(rule_id, ("", ""))[1]
    return Finding(RULES[rule_id], obj or carrier.ref, carrier.location, " ".join(message.splitlines()),
                   skipped=reason)


def _skip_without_reason(obj: Obj) -> Iterator[str]:
    for rule_id, (key, reason) in _skips(obj).items():
        if not reason:
            yield (f'annotation {key} has no reason, so it skips nothing: write why {rule_id} does not apply, '
                   f'e.g. {key}: "<why>"')


def _namespace_carriers(workloads: list[Workload]) -> dict[str, Obj]:
    """Namespace -> its first controller, where the namespace's findings are reported (only namespaces that hold
    a Deployment, StatefulSet or DaemonSet are judged)."""
    first: dict[str, Obj] = {}
    for w in workloads:
        if w.obj.kind in CONTROLLERS:
            first.setdefault(w.obj.namespace, w.obj)
    return first


def audit(inventory: Inventory) -> list[Finding]:
    """Every finding of every rule over an inventory, sorted by location then rule id."""
    workloads = _workloads(inventory)
    findings = [_finding(rule_id, w.obj, message)
                for w in workloads for rule_id, check in _WORKLOAD_CHECKS.items() for message in check(w)]
    for rule_id, (kind, object_check) in _OBJECT_CHECKS.items():
        findings += [_finding(rule_id, obj, message)
                     for obj in inventory.of(kind) for message in object_check(obj, inventory)]
    for namespace, carrier in _namespace_carriers(workloads).items():
        findings += [_finding(rule_id, carrier, message, obj=f"Namespace {namespace}")
                     for rule_id, namespace_check in _NAMESPACE_CHECKS.items()
                     for message in namespace_check(namespace, inventory)]
    carriers = [w.obj for w in workloads] + inventory.of("PodDisruptionBudget", "HorizontalPodAutoscaler")
    findings += [_finding("RT000", obj, message) for obj in carriers for message in _skip_without_reason(obj)]
    return sorted(findings, key=lambda f: (f.location.source, f.location.line, f.rule.id))


@dataclass(frozen=True)
class Subject:
    """Something the audit judges (a workload, a PDB or HPA, a namespace) and the rules that judge it."""

    ref: str
    location: Location
    rules: tuple[str, ...]


def subjects(inventory: Inventory) -> list[Subject]:
    """Every object and namespace the audit judged, with the rules it was judged by (a test per pair)."""
    workloads = _workloads(inventory)
    found = [Subject(w.obj.ref, w.obj.location, (*_WORKLOAD_CHECKS, "RT000")) for w in workloads]
    for kind in dict.fromkeys(kind for kind, _ in _OBJECT_CHECKS.values()):
        ids = tuple(rule_id for rule_id, (k, _) in _OBJECT_CHECKS.items() if k == kind)
        found += [Subject(obj.ref, obj.location, (*ids, "RT000")) for obj in inventory.of(kind)]
    found += [Subject(f"Namespace {ns}", carrier.location, tuple(_NAMESPACE_CHECKS))
              for ns, carrier in _namespace_carriers(workloads).items()]
    return found
