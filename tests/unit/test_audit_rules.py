"""Every audit rule fires on a manifest that breaks it, and only it, and stays quiet on one that follows it (pure).

Each case starts from a hardened bundle (Deployment, Service, PDB, NetworkPolicy, ResourceQuota, LimitRange)
that yields no finding at all, changes one thing, and checks which rule ids the changed object gets.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from resilience_tests.audit.model import SEVERITIES, SKIP_PREFIX, Finding, Inventory, Location, Obj
from resilience_tests.audit.rules import RULES, audit

Doc = dict[str, Any]
ZONES = ("zone-a", "zone-b", "zone-c")
WEB = "Deployment demo/web"
NAMESPACE = "Namespace demo"
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"

GOOD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo, labels: {app: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}
  template:
    metadata: {labels: {app: web}}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 30
      securityContext: {runAsNonRoot: true, runAsUser: 10001}
      topologySpreadConstraints:
        - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway,
           labelSelector: {matchLabels: {app: web}}}
        - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway,
           labelSelector: {matchLabels: {app: web}}}
      containers:
        - name: web
          image: registry.example.com/web:1.4.2
          ports: [{containerPort: 8080}]
          readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 5}
          livenessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 10}
          lifecycle: {preStop: {exec: {command: [sleep, "5"]}}}
          resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 128Mi}}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: demo}
spec: {maxUnavailable: 1, selector: {matchLabels: {app: web}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: demo}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: compute, namespace: demo}
spec: {hard: {requests.cpu: "8", requests.memory: 16Gi}}
---
apiVersion: v1
kind: LimitRange
metadata: {name: defaults, namespace: demo}
spec: {limits: [{type: Container, default: {memory: 256Mi}, defaultRequest: {cpu: 100m, memory: 128Mi}}]}
"""


# --- building and changing manifests ---------------------------------------------------------------------


def bundle() -> list[Doc]:
    """A fresh copy of the hardened bundle."""
    return list(yaml.safe_load_all(GOOD))


def run(docs: list[Doc], zones: tuple[str, ...] = ZONES, source: str = "test.yaml") -> list[Finding]:
    return audit(Inventory([Obj(d, Location(source, n)) for n, d in enumerate(docs, start=1)], zones))


def ids(findings: list[Finding], obj: str | None = None) -> set[str]:
    """The rule ids of the findings (on one object) that are not skipped."""
    return {f.rule.id for f in findings if not f.skipped and (obj is None or f.obj == obj)}


def find(docs: list[Doc], kind: str, name: str = "web") -> Doc:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def deployment(docs: list[Doc]) -> Doc:
    return find(docs, "Deployment")


def pod_spec(docs: list[Doc]) -> Doc:
    spec: Doc = deployment(docs)["spec"]["template"]["spec"]
    return spec


def container(docs: list[Doc]) -> Doc:
    first: Doc = pod_spec(docs)["containers"][0]
    return first


def put(doc: Doc, path: str, value: Any) -> None:
    """Set a dotted path (``a.b.c``), creating the dicts on the way."""
    *parents, last = path.split(".")
    for key in parents:
        doc = doc.setdefault(key, {})
    doc[last] = value


def drop(doc: Doc, path: str) -> None:
    *parents, last = path.split(".")
    for key in parents:
        doc = doc[key]
    del doc[last]


def remove(docs: list[Doc], kind: str) -> None:
    docs[:] = [d for d in docs if d["kind"] != kind]


def hpa(min_replicas: int | None = 2, metrics: list[Doc] | None = None, api: str = "autoscaling/v2") -> Doc:
    """A HorizontalPodAutoscaler of Deployment web (on cpu utilization unless told)."""
    if metrics is None:
        metrics = [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                              "averageUtilization": 70}}}]
    spec: Doc = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "maxReplicas": 10, "metrics": metrics}
    if min_replicas is not None:
        spec["minReplicas"] = min_replicas
    return {"apiVersion": api, "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "demo"}, "spec": spec}


def scaled_by(docs: list[Doc], min_replicas: int | None, keep_replicas: bool = False) -> None:
    """Add an HPA of web (cpu utilization); the manifest leaves spec.replicas to it unless told."""
    docs.append(hpa(min_replicas))
    if not keep_replicas:
        drop(deployment(docs), "spec.replicas")


def annotate(docs: list[Doc], key: str, value: str) -> None:
    deployment(docs)["metadata"].setdefault("annotations", {})[key] = value


def both(*changes: Callable[[list[Doc]], object]) -> Callable[[list[Doc]], None]:
    def change(docs: list[Doc]) -> None:
        for one in changes:
            one(docs)
    return change


def changed(change: Callable[[list[Doc]], object]) -> list[Doc]:
    docs = bundle()
    change(docs)
    return docs


def require_nodes(*terms: tuple[str, list[str]]) -> Callable[[list[Doc]], None]:
    """Required nodeAffinity of web: one nodeSelectorTerm (ORed) per (label key, allowed values)."""
    required = {"nodeSelectorTerms": [{"matchExpressions": [{"key": key, "operator": "In", "values": values}]}
                                      for key, values in terms]}
    return lambda docs: put(pod_spec(docs), "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
                            required)


def extra_pdb(name: str, selector: Doc) -> Callable[[list[Doc]], None]:
    return lambda docs: docs.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                     "metadata": {"name": name, "namespace": "demo"},
                                     "spec": {"maxUnavailable": 1, "selector": selector}})


# --- one bad and one good manifest per rule --------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A rule, a change to the good bundle that breaks it, and a nearby change that follows it."""

    rule: str
    bad: Callable[[list[Doc]], object]
    good: Callable[[list[Doc]], object]
    obj: str = WEB  # the object the finding is reported on
    also: frozenset[str] = field(default_factory=frozenset)  # rules the bad change cannot help breaking too


CASES = [
    Case("RT000", lambda d: annotate(d, SKIP_PREFIX + "rt101", ""),
         lambda d: annotate(d, SKIP_PREFIX + "rt101", "batch worker, nothing routes to it")),
    Case("RT101", lambda d: drop(container(d), "readinessProbe"),
         lambda d: put(container(d), "readinessProbe", {"tcpSocket": {"port": 8080}})),
    Case("RT102", lambda d: drop(container(d), "livenessProbe"),
         lambda d: put(container(d), "livenessProbe", {"exec": {"command": ["cat", "/tmp/healthy"]}})),
    Case("RT103",
         lambda d: put(container(d), "livenessProbe", {**container(d)["readinessProbe"], "failureThreshold": 1}),
         lambda d: put(container(d), "livenessProbe", dict(container(d)["readinessProbe"]))),
    Case("RT104", lambda d: put(container(d), "readinessProbe.initialDelaySeconds", 45),
         both(lambda d: put(container(d), "readinessProbe.initialDelaySeconds", 45),
              lambda d: put(container(d), "startupProbe", {"httpGet": {"path": "/ready", "port": 8080},
                                                           "failureThreshold": 30, "periodSeconds": 2}))),
    Case("RT201", lambda d: put(deployment(d), "spec.replicas", 1),
         both(lambda d: put(deployment(d), "spec.replicas", 1),
              lambda d: put(find(d, "Service"), "spec.selector", {"app": "api"}))),
    Case("RT202", lambda d: pod_spec(d)["topologySpreadConstraints"].pop(0),
         both(lambda d: drop(pod_spec(d), "topologySpreadConstraints"),
              lambda d: put(pod_spec(d), "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution",
                            [{"weight": 100, "podAffinityTerm": {"topologyKey": "topology.kubernetes.io/zone",
                                                                 "labelSelector": {"matchLabels": {"app": "web"}}}}]))),
    Case("RT203", lambda d: drop(pod_spec(d), "topologySpreadConstraints"),
         both(lambda d: pod_spec(d)["topologySpreadConstraints"].pop(1),
              lambda d: put(pod_spec(d), "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution",
                            [{"topologyKey": "kubernetes.io/hostname",
                              "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In",
                                                                      "values": ["web"]}]}}])),
         also=frozenset({"RT202"})),  # no spread at all is no zone spread either
    Case("RT204", lambda d: put(pod_spec(d), "nodeSelector", {"topology.kubernetes.io/zone": "zone-a"}),
         require_nodes(("topology.kubernetes.io/zone", ["zone-a", "zone-b"]))),
    Case("RT301", lambda d: put(container(d), "resources.requests", {"memory": "128Mi"}),
         lambda d: put(container(d), "resources", {"limits": {"cpu": "500m", "memory": "128Mi"}})),  # requests=limits
    Case("RT302", lambda d: drop(container(d), "resources.limits"),
         lambda d: put(container(d), "resources.limits", {"cpu": 1, "memory": "256Mi"})),
    Case("RT303", lambda d: deployment(d)["metadata"]["labels"].update({"resilience-tests.io/critical": "true"}),
         both(lambda d: annotate(d, "resilience-tests.io/critical", "true"),
              lambda d: put(pod_spec(d), "priorityClassName", "business-critical"))),
    Case("RT401", both(lambda d: drop(container(d), "lifecycle"),
                       lambda d: put(pod_spec(d), "terminationGracePeriodSeconds", 15)),  # 15 <= 5s x 3
         lambda d: put(container(d), "lifecycle.preStop", {"sleep": {"seconds": 3}})),  # 3 < 30
    Case("RT501", lambda d: remove(d, "PodDisruptionBudget"),
         lambda d: put(find(d, "PodDisruptionBudget"), "spec.selector",
                       {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]})),
    Case("RT502", lambda d: put(find(d, "PodDisruptionBudget"), "spec", {"minAvailable": 3,
                                                                         "selector": {"matchLabels": {"app": "web"}}}),
         lambda d: put(find(d, "PodDisruptionBudget"), "spec", {"minAvailable": 2,
                                                                "selector": {"matchLabels": {"app": "web"}}})),
    Case("RT503", extra_pdb("old", {"matchLabels": {"app": "old"}}),
         lambda d: put(find(d, "PodDisruptionBudget"), "spec.selector", {}),  # empty: every pod of the namespace
         obj="PodDisruptionBudget demo/old"),
    Case("RT601", lambda d: put(deployment(d), "spec.strategy.rollingUpdate.maxUnavailable", "100%"),
         lambda d: put(deployment(d), "spec.strategy.rollingUpdate.maxUnavailable", "50%")),
    Case("RT701", lambda d: scaled_by(d, 1), lambda d: scaled_by(d, 2), obj="HorizontalPodAutoscaler demo/web"),
    Case("RT702", both(lambda d: scaled_by(d, 2), lambda d: drop(container(d), "resources.requests.cpu")),
         lambda d: scaled_by(d, 2), also=frozenset({"RT301"})),  # no cpu request is RT301 too
    Case("RT703", lambda d: scaled_by(d, 2, keep_replicas=True), lambda d: scaled_by(d, 2)),
    Case("RT801", lambda d: put(container(d), "securityContext.privileged", True),
         lambda d: put(container(d), "securityContext.privileged", False)),
    Case("RT802", lambda d: drop(container(d), "securityContext.allowPrivilegeEscalation"),
         lambda d: pod_spec(d).setdefault("initContainers", []).append(
             {"name": "migrate", "image": "registry.example.com/web:1.4.2",
              "securityContext": copy.deepcopy(container(d)["securityContext"])})),
    Case("RT803", lambda d: drop(pod_spec(d), "securityContext"),
         both(lambda d: drop(pod_spec(d), "securityContext"),
              lambda d: put(container(d), "securityContext.runAsNonRoot", True))),
    Case("RT804", lambda d: put(container(d), "securityContext.readOnlyRootFilesystem", False),
         both(lambda d: put(pod_spec(d), "volumes", [{"name": "tmp", "emptyDir": {}}]),
              lambda d: put(container(d), "volumeMounts", [{"name": "tmp", "mountPath": "/tmp"}]))),
    Case("RT805", lambda d: put(container(d), "securityContext.capabilities", {"drop": ["NET_RAW"]}),
         lambda d: put(container(d), "securityContext.capabilities", {"drop": ["all"], "add": ["NET_BIND_SERVICE"]})),
    Case("RT806", lambda d: put(pod_spec(d), "hostNetwork", True),
         lambda d: put(pod_spec(d), "hostNetwork", False)),
    Case("RT807", lambda d: drop(pod_spec(d), "automountServiceAccountToken"),
         lambda d: put(pod_spec(d), "automountServiceAccountToken", False)),
    Case("RT808", lambda d: put(container(d), "image", "registry.example.com/web"),
         lambda d: put(container(d), "image", "registry.example.com:5000/web@sha256:" + "a" * 64)),
    Case("RT901", lambda d: remove(d, "ResourceQuota"), lambda d: None, obj=NAMESPACE),
    Case("RT902", lambda d: remove(d, "LimitRange"), lambda d: None, obj=NAMESPACE),
    Case("RT903", lambda d: put(find(d, "NetworkPolicy", "default-deny"), "spec.ingress",
                                [{"from": [{"podSelector": {}}]}]),
         lambda d: drop(find(d, "NetworkPolicy", "default-deny"), "spec.policyTypes"),  # Ingress by default
         obj=NAMESPACE),
]


def test_the_hardened_bundle_yields_nothing() -> None:
    assert run(bundle()) == []


def test_every_rule_has_a_case() -> None:
    assert sorted(c.rule for c in CASES) == sorted(RULES)


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_a_manifest_breaking_a_rule_gets_exactly_that_rule(case: Case) -> None:
    findings = run(changed(case.bad))
    assert ids(findings, case.obj) == {case.rule, *case.also}
    mine = [f for f in findings if f.rule.id == case.rule]
    assert mine and all(f.obj == case.obj and "\n" not in f.message and ": " in f.message for f in mine)
    assert all(f.rule is RULES[f.rule.id] for f in findings)


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_a_manifest_following_a_rule_gets_nothing(case: Case) -> None:
    assert run(changed(case.good)) == []


def test_rules_table() -> None:
    experiments = {yaml.safe_load(p.read_text())["name"] for p in EXPERIMENTS.glob("*.yaml")}
    names = [r.name for r in RULES.values()]
    assert len(names) == len(set(names))
    for rule_id, rule in RULES.items():
        assert rule.id == rule_id and rule.severity in SEVERITIES and rule.summary
        assert rule.experiment == "" or rule.experiment in experiments, rule
    assert {r.id: r.experiment for r in RULES.values() if r.experiment} == {
        "RT101": "rollout-under-load", "RT201": "kill-two-pods",
        "RT202": "zone-a-outage", "RT203": "drain-one-node", "RT204": "zone-a-outage",
        "RT401": "rollout-under-load", "RT501": "drain-one-node", "RT502": "drain-one-node",
        "RT601": "rollout-under-load"}


# --- skip annotations ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [SKIP_PREFIX + "rt101", SKIP_PREFIX + "RT101"])
def test_a_skip_annotation_with_a_reason_marks_the_finding_skipped(key: str) -> None:
    docs = changed(both(lambda d: drop(container(d), "readinessProbe"), lambda d: annotate(d, key, "queue worker")))
    (finding,) = run(docs)
    assert (finding.rule.id, finding.skipped) == ("RT101", "queue worker")


def test_a_skip_annotation_without_a_reason_skips_nothing_and_is_reported() -> None:
    docs = changed(both(lambda d: drop(container(d), "readinessProbe"), lambda d: annotate(d, SKIP_PREFIX + "rt101",
                                                                                          "  ")))
    findings = run(docs)
    assert ids(findings, WEB) == {"RT000", "RT101"}
    assert not any(f.skipped for f in findings)
    (rt000,) = (f for f in findings if f.rule.id == "RT000")
    assert SKIP_PREFIX + "rt101" in rt000.message and "RT101" in rt000.message


def test_namespace_findings_are_skipped_by_the_workload_they_are_reported_on() -> None:
    docs = changed(both(lambda d: remove(d, "ResourceQuota"),
                        lambda d: annotate(d, SKIP_PREFIX + "rt901", "quota set by the platform team")))
    (finding,) = run(docs)
    assert (finding.rule.id, finding.obj, finding.skipped) == ("RT901", NAMESPACE, "quota set by the platform team")


# --- the maths and the finer points of each rule ----------------------------------------------------------


@pytest.mark.parametrize(("replicas", "max_unavailable", "fires"), [
    (1, None, False),  # default 25% of 1 rounds down to 0
    (4, None, False),  # 25% of 4 = 1
    (3, "99%", False),  # 2.97 rounds down to 2
    (2, "50%", False),
    (4, "75%", False),
    (4, "100%", True),
    (1, "100%", True),
    (2, 2, True),
    (3, 2, False),
    (2, "2", True),
])
def test_max_unavailable_percentages_round_down(replicas: int, max_unavailable: object, fires: bool) -> None:
    docs = bundle()
    put(deployment(docs), "spec.replicas", replicas)
    put(deployment(docs), "spec.strategy", {"type": "RollingUpdate"} if max_unavailable is None else
        {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}})
    assert ("RT601" in ids(run(docs))) is fires


def test_recreate_empties_the_service_but_not_a_worker() -> None:
    docs = changed(lambda d: put(deployment(d), "spec.strategy", {"type": "Recreate"}))
    assert ids(run(docs)) == {"RT601"}
    remove(docs, "Service")
    assert "RT601" not in ids(run(docs))


@pytest.mark.parametrize(("budget", "fires"), [
    ({"minAvailable": 3}, True),
    ({"minAvailable": "100%"}, True),
    ({"minAvailable": "80%"}, True),  # 2.4 of 3 rounds up to 3
    ({"minAvailable": "50%"}, False),  # 1.5 rounds up to 2
    ({"minAvailable": 2}, False),
    ({"maxUnavailable": 0}, True),
    ({"maxUnavailable": "0%"}, True),
    ({"maxUnavailable": "10%"}, False),  # 0.3 rounds up to 1
])
def test_pdb_that_allows_no_eviction(budget: Doc, fires: bool) -> None:
    docs = changed(lambda d: put(find(d, "PodDisruptionBudget"), "spec",
                                 {**budget, "selector": {"matchLabels": {"app": "web"}}}))
    assert ids(run(docs)) == ({"RT502"} if fires else set())


def test_a_pdb_of_a_single_replica_blocks_drains_too() -> None:
    docs = changed(lambda d: put(deployment(d), "spec.replicas", 1))
    put(find(docs, "PodDisruptionBudget"), "spec", {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}})
    assert ids(run(docs)) == {"RT201", "RT502"}


def test_rt201_uses_the_hpa_min_replicas() -> None:
    findings = run(changed(lambda d: scaled_by(d, 1, keep_replicas=True)))  # spec.replicas 3, HPA min 1
    assert ids(findings, WEB) == {"RT201", "RT703"}
    assert ids(findings, "HorizontalPodAutoscaler demo/web") == {"RT701"}
    (rt201,) = (f for f in findings if f.rule.id == "RT201")
    assert "HorizontalPodAutoscaler web" in rt201.message and "minReplicas" in rt201.message
    # spec.replicas left out (1 by default) but the HPA keeps 3: enough
    assert run(changed(lambda d: scaled_by(d, 3))) == []


@pytest.mark.parametrize(("api", "metrics", "flagged"), [
    ("autoscaling/v2", [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}],
     {"web", "log"}),
    ("autoscaling/v2", [], {"web", "log"}),  # no metrics: 80% cpu by default
    ("autoscaling/v1", None, {"web", "log"}),
    ("autoscaling/v2", [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue"}}}],
     set()),  # an absolute value needs no request
    ("autoscaling/v2", [{"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization"}}}],
     set()),
    ("autoscaling/v2", [{"type": "ContainerResource", "containerResource": {
        "name": "cpu", "container": "log", "target": {"type": "Utilization"}}}], {"log"}),
])
def test_hpa_needs_cpu_requests_only_for_cpu_utilization(api: str, metrics: list[Doc] | None,
                                                         flagged: set[str]) -> None:
    docs = bundle()
    scale = hpa(2, metrics, api)
    if metrics is None:
        del scale["spec"]["metrics"]
        scale["spec"]["targetCPUUtilizationPercentage"] = 70
    docs.append(scale)
    drop(deployment(docs), "spec.replicas")
    drop(container(docs), "resources.requests.cpu")
    pod_spec(docs)["containers"].append({**copy.deepcopy(container(docs)), "name": "log"})
    findings = [f for f in run(docs) if f.rule.id == "RT702"]
    assert {f.message.split()[1] for f in findings} == flagged


def test_rt703_on_a_live_object_trusts_only_the_last_applied_configuration() -> None:
    docs = changed(lambda d: scaled_by(d, 2, keep_replicas=True))
    assert "RT703" not in ids(run(docs, source="cluster:kind/demo"))  # its replicas are the HPA's doing
    annotate(docs, "kubectl.kubernetes.io/last-applied-configuration", '{"spec": {"replicas": 3}}')
    assert ids(run(docs, source="cluster:kind/demo")) == {"RT703"}
    annotate(docs, "kubectl.kubernetes.io/last-applied-configuration", '{"spec": {}}')
    assert run(docs) == []  # from a file too, what kubectl applies wins


@pytest.mark.parametrize(("change", "zones", "fires"), [
    (lambda d: put(pod_spec(d), "nodeName", "worker-3"), ZONES, True),
    (lambda d: put(pod_spec(d), "nodeSelector", {"kubernetes.io/hostname": "worker-3"}), ZONES, True),
    (require_nodes(("kubernetes.io/hostname", ["w1"]), ("kubernetes.io/hostname", ["w1"])), ZONES, True),
    (require_nodes(("kubernetes.io/hostname", ["w1"]), ("disk", ["ssd"])), ZONES, False),  # terms are ORed
    (require_nodes(("topology.kubernetes.io/zone", ["zone-a", "zone-x"])), ZONES, True),  # no zone-x: one zone
    (require_nodes(("topology.kubernetes.io/zone", ["zone-a", "zone-x"])), (), False),  # zones unknown (files)
    (lambda d: put(pod_spec(d), "nodeSelector", {"disktype": "ssd"}), ZONES, False),
])
def test_pinned(change: Callable[[list[Doc]], object], zones: tuple[str, ...], fires: bool) -> None:
    findings = run(changed(change), zones=zones)
    assert ids(findings) == ({"RT204"} if fires else set())


def test_spread_that_selects_other_pods_does_not_spread_these() -> None:
    docs = changed(lambda d: put(pod_spec(d)["topologySpreadConstraints"][0], "labelSelector",
                                 {"matchLabels": {"app": "api"}}))
    assert ids(run(docs)) == {"RT202"}


def test_messages_name_the_qos_class() -> None:
    findings = run(changed(lambda d: drop(container(d), "resources")))
    assert ids(findings) == {"RT301", "RT302"}
    assert all("pod QoS BestEffort" in f.message and "container web" in f.message for f in findings)
    burstable = run(changed(lambda d: put(container(d), "resources", {"requests": {"cpu": "0.1", "memory": "1Gi"},
                                                                      "limits": {"cpu": "100m"}})))
    assert [f.rule.id for f in burstable] == ["RT302"] and "pod QoS Burstable" in burstable[0].message


@pytest.mark.parametrize(("pre_stop", "fires"), [
    ({"exec": {"command": ["/bin/sh", "-c", "sleep 30 && nginx -s quit"]}}, True),
    ({"exec": {"command": ["sleep", "45"]}}, True),
    ({"sleep": {"seconds": 30}}, True),
    ({"sleep": {"seconds": 10}}, False),
    ({"exec": {"command": ["/bin/sh", "-c", "nginx -s quit"]}}, False),
])
def test_a_pre_stop_sleep_must_fit_in_the_grace_period(pre_stop: Doc, fires: bool) -> None:
    findings = run(changed(lambda d: put(container(d), "lifecycle.preStop", pre_stop)))
    assert ids(findings) == ({"RT401"} if fires else set())


def test_graceful_shutdown_defaults_with_no_probe_and_no_hook() -> None:
    findings = run(changed(both(lambda d: drop(container(d), "lifecycle"), lambda d: drop(container(d),
                                                                                          "readinessProbe"))))
    (rt401,) = (f for f in findings if f.rule.id == "RT401")
    assert "terminationGracePeriodSeconds 30" in rt401.message and "10s x 3 = 30s" in rt401.message


@pytest.mark.parametrize(("image", "fires"), [
    ("web", True),
    ("web:latest", True),
    ("registry.example.com:5000/team/web", True),  # a port is not a tag
    ("registry.example.com:5000/team/web:2.1", False),
    ("web:latest@sha256:" + "0" * 64, False),
    ("ghcr.io/team/web@sha256:" + "0" * 64, False),
])
def test_image_references(image: str, fires: bool) -> None:
    findings = run(changed(lambda d: put(container(d), "image", image)))
    assert ids(findings) == ({"RT808"} if fires else set())


def test_init_containers_are_held_to_the_security_rules() -> None:
    docs = changed(lambda d: put(pod_spec(d), "initContainers", [{"name": "chown", "image": "busybox:1.36",
                                                                  "securityContext": {"privileged": True}}]))
    findings = run(docs)
    assert ids(findings) == {"RT801", "RT802", "RT804", "RT805"}
    assert all("container chown" in f.message for f in findings)


def test_host_path_volume() -> None:
    findings = run(changed(lambda d: put(pod_spec(d), "volumes", [{"name": "logs",
                                                                   "hostPath": {"path": "/var/log"}}])))
    assert ids(findings) == {"RT806"} and "/var/log" in findings[0].message


@pytest.mark.parametrize("policy", [
    {"podSelector": {}, "policyTypes": ["Egress"]},
    {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
])
def test_what_is_not_a_default_deny(policy: Doc) -> None:
    findings = run(changed(lambda d: put(find(d, "NetworkPolicy", "default-deny"), "spec", policy)))
    assert ids(findings, NAMESPACE) == {"RT903"}


# --- which objects are audited, where findings go, in which order -----------------------------------------


def test_bare_pods_get_the_pod_rules_only() -> None:
    docs = bundle()
    template = deployment(docs)["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "spec": copy.deepcopy(template["spec"]),
           "metadata": {"name": "web-0", "namespace": "demo", **template["metadata"]}}
    only_pod = [pod, find(docs, "Service")]  # one pod behind a Service, no PDB, no quota: not its business
    assert run(only_pod) == []
    pod["spec"]["nodeName"] = "worker-3"
    assert ids(run(only_pod)) == {"RT204"}
    pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "web-5d4f", "controller": True}]
    assert run(only_pod) == []  # its controller is audited instead


def test_daemonsets_skip_the_replica_rules_and_may_select_nodes() -> None:
    docs = bundle()
    daemon = copy.deepcopy(deployment(docs))
    daemon.update(kind="DaemonSet", metadata={"name": "agent", "namespace": "demo"})
    del daemon["spec"]["replicas"], daemon["spec"]["strategy"]
    daemon["spec"]["template"]["metadata"]["labels"] = {"app": "agent"}
    daemon["spec"]["template"]["spec"]["nodeSelector"] = {"topology.kubernetes.io/zone": "zone-a"}
    docs.append(daemon)
    assert run(docs) == []
    drop(daemon["spec"]["template"]["spec"]["containers"][0], "livenessProbe")
    assert {(f.obj, f.rule.id) for f in run(docs)} == {("DaemonSet demo/agent", "RT102")}


def test_namespace_rules_once_per_namespace_on_its_first_workload() -> None:
    docs = bundle()
    remove(docs, "ResourceQuota")
    second = copy.deepcopy(deployment(docs))
    second["metadata"]["name"] = "web-canary"
    docs.append(second)
    docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lonely", "namespace": "empty"},
                 "spec": {"selector": {"app": "lonely"}}})
    findings = run(docs)
    assert [(f.rule.id, f.obj, f.location) for f in findings] == [("RT901", NAMESPACE, Location("test.yaml", 1))]
    assert "namespace demo has no ResourceQuota" in findings[0].message


def test_a_pdb_selecting_nothing_and_the_sort_order() -> None:
    docs = changed(extra_pdb("old", {"matchLabels": {"app": "old"}}))
    drop(container(docs), "readinessProbe")
    drop(container(docs), "livenessProbe")
    findings = run(docs)
    assert [(f.location.line, f.rule.id, f.obj) for f in findings] == [
        (1, "RT101", WEB), (1, "RT102", WEB), (7, "RT503", "PodDisruptionBudget demo/old")]
    assert "app=old" in findings[2].message
    by_source = audit(Inventory([Obj(deployment(docs), Location("b.yaml", 1)),
                                 Obj(copy.deepcopy(deployment(docs)), Location("a.yaml", 9))]))
    assert [f.location.source for f in by_source] == sorted(f.location.source for f in by_source)
    assert by_source == sorted(by_source, key=lambda f: (f.location.source, f.location.line, f.rule.id))


def test_one_finding_per_container() -> None:
    docs = bundle()
    pod_spec(docs)["containers"].append({**copy.deepcopy(container(docs)), "name": "log"})
    for c in pod_spec(docs)["containers"]:
        del c["readinessProbe"]
    messages = [f.message for f in run(docs)]
    assert [m.split(":")[0] for m in messages] == ["container web has no readinessProbe",
                                                   "container log has no readinessProbe"]


@pytest.mark.parametrize("junk", [None, "x", 3, 1.5, True, [], {}, [None, "a", {}], {"a": None}, "50%"])
def test_malformed_manifests_are_audited_without_crashing(junk: Any) -> None:
    """Whatever a field holds, the rules read it as missing or default: findings, never an exception."""
    container = {"name": junk, "image": junk, "resources": {"limits": {"cpu": junk}}, "readinessProbe": junk,
                 "lifecycle": {"preStop": {"exec": {"command": junk}, "sleep": junk}},
                 "securityContext": {"capabilities": {"drop": junk}}}
    pod = {"containers": [container, junk], "initContainers": junk, "volumes": [{"hostPath": junk}, junk],
           "nodeSelector": junk, "topologySpreadConstraints": [junk, {"topologyKey": junk, "labelSelector": junk}],
           "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": junk}},
                        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": junk}},
           "securityContext": junk, "terminationGracePeriodSeconds": junk}
    docs: list[Doc] = [
        {"kind": "Deployment", "metadata": {"name": "a"}, "spec": junk},
        {"kind": "Deployment", "metadata": {"name": "b"},
         "spec": {"replicas": junk, "strategy": {"rollingUpdate": {"maxUnavailable": junk}},
                  "template": {"metadata": {"labels": junk}, "spec": pod}}},
        {"kind": "PodDisruptionBudget", "spec": {"selector": {"matchExpressions": junk}, "minAvailable": junk}},
        {"kind": "HorizontalPodAutoscaler", "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "b"},
                                                     "minReplicas": junk, "metrics": [junk]}},
        {"kind": "Service", "spec": {"selector": junk}},
        {"kind": "NetworkPolicy", "spec": {"podSelector": junk, "policyTypes": junk, "ingress": junk}},
        {"kind": "Pod", "metadata": {"ownerReferences": junk}, "spec": junk},
    ]
    findings = run(docs)
    assert findings and all("\n" not in f.message for f in findings)


def test_no_pre_stop_is_a_finding_even_with_a_long_grace_period_unless_a_reason_says_the_app_drains() -> None:
    (finding,) = run(changed(lambda d: drop(container(d), "lifecycle")))  # grace 30 > 5s x 3
    assert finding.rule.id == "RT401" and "no container has a preStop hook: unless the app keeps serving" in \
        finding.message
    (skipped,) = run(changed(both(lambda d: drop(container(d), "lifecycle"),
                                  lambda d: annotate(d, SKIP_PREFIX + "rt401", "drains for 10 s after SIGTERM"))))
    assert skipped.skipped == "drains for 10 s after SIGTERM"


def test_a_live_bare_pod_is_not_pinned_by_the_node_the_scheduler_gave_it() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "demo"},
           "spec": {"nodeName": "sim-a1", "containers": [{"name": "c", "image": "x:1"}]}}
    live = Inventory([Obj(pod, Location("cluster:kwok-resilience/demo"))])
    assert "RT204" not in {f.rule.id for f in audit(live)}
    authored = Inventory([Obj(pod, Location("pod.yaml", 1))])
    assert "RT204" in {f.rule.id for f in audit(authored)}
