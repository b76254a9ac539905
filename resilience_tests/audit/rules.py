"""The audit's rules: what a workload must get right to survive the experiments, checked on plain dicts.

Pure functions, no I/O: every object is a dict as the API server returns it (or as a manifest writes it).
Each rule is one function yielding one-line messages (what is wrong, with names and values, and how to fix
it), kept with the rules of its family in :mod:`resilience_tests.audit.checks` (probes, spread, resources,
shutdown, disruption, scaling, security, policy). This module holds the registry: the rule table
(:data:`RULES`), the tables mapping rule ids to those functions, and :func:`audit`, which runs them all.

Workload rules run on Deployments, StatefulSets and DaemonSets (the pod template) and on bare Pods (no
ownerReferences; pod-level rules only: the replica, PDB, rollout and HPA rules need a controller).
Namespace rules run once per namespace holding a Deployment, StatefulSet or DaemonSet.

A skip annotation ``resilience-tests.io/skip-rt101: "<reason>"`` on the object a finding is reported on
(for namespace rules: the workload they are reported on) marks that rule's findings there as skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from resilience_tests.audit.checks import disruption, policy, probes, resources, scaling, security, shutdown, spread
from resilience_tests.audit.checks.fields import CONTROLLERS, CRITICAL_KEY
from resilience_tests.audit.checks.workload import Workload, read_workloads
from resilience_tests.audit.model import SKIP_PREFIX, Finding, Inventory, Location, Obj, Rule

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

WorkloadCheck = Callable[[Workload], Iterator[str]]  # one message per problem of one workload
ObjectCheck = Callable[[Obj, Inventory], Iterator[str]]  # of one PDB or HPA
NamespaceCheck = Callable[[str, Inventory], Iterator[str]]  # of one namespace

# --- the tables: rule id -> check ----------------------------------------------------------------------

_WORKLOAD_CHECKS: dict[str, WorkloadCheck] = {
    "RT101": probes.readiness_probe,
    "RT102": probes.liveness_probe,
    "RT103": probes.liveness_equals_readiness,
    "RT104": probes.startup_probe,
    "RT201": spread.replicas,
    "RT202": spread.zone_spread,
    "RT203": spread.node_spread,
    "RT204": spread.pinned,
    "RT301": resources.requests,
    "RT302": resources.memory_limit,
    "RT303": resources.priority_class,
    "RT401": shutdown.graceful_shutdown,
    "RT501": disruption.pdb,
    "RT502": disruption.pdb_blocks_drain,
    "RT601": disruption.rollout_capacity,
    "RT702": scaling.hpa_requests,
    "RT703": scaling.hpa_fixed_replicas,
    "RT801": security.privileged,
    "RT802": security.allow_privilege_escalation,
    "RT803": security.run_as_non_root,
    "RT804": security.read_only_root_fs,
    "RT805": security.capabilities,
    "RT806": security.host_namespaces,
    "RT807": security.automount_token,
    "RT808": security.image_pinned,
}
_OBJECT_CHECKS: dict[str, tuple[str, ObjectCheck]] = {  # rule id -> (kind, check), reported on the object
    "RT503": ("PodDisruptionBudget", disruption.pdb_selects_nothing),
    "RT701": ("HorizontalPodAutoscaler", scaling.hpa_min_replicas),
}
_NAMESPACE_CHECKS: dict[str, NamespaceCheck] = {
    "RT901": policy.resource_quota,
    "RT902": policy.limit_range,
    "RT903": policy.default_deny,
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
    workloads = read_workloads(inventory)
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
    workloads = read_workloads(inventory)
    found = [Subject(w.obj.ref, w.obj.location, (*_WORKLOAD_CHECKS, "RT000")) for w in workloads]
    for kind in dict.fromkeys(kind for kind, _ in _OBJECT_CHECKS.values()):
        ids = tuple(rule_id for rule_id, (k, _) in _OBJECT_CHECKS.items() if k == kind)
        found += [Subject(obj.ref, obj.location, (*ids, "RT000")) for obj in inventory.of(kind)]
    found += [Subject(f"Namespace {ns}", carrier.location, tuple(_NAMESPACE_CHECKS))
              for ns, carrier in _namespace_carriers(workloads).items()]
    return found
