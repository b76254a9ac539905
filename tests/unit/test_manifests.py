"""The manifests in deploy/ agree with each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_kind_cluster_offers_what_the_demo_app_asks_for() -> None:
    kind = yaml.safe_load((DEPLOY / "kind.yaml").read_text())
    demo = list(yaml.safe_load_all((DEPLOY / "demo.yaml").read_text()))
    pod = next(d for d in demo if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    node_port = next(d for d in demo if d["kind"] == "Service")["spec"]["ports"][0]["nodePort"]
    workers = [n for n in kind["nodes"] if n["role"] == "worker"]
    assert all(pod["nodeSelector"].items() <= n["labels"].items() for n in workers)
    assert sorted(n["labels"]["topology.kubernetes.io/zone"] for n in workers) == ["zone-a", "zone-b", "zone-c"]
    (mapping,) = next(n for n in kind["nodes"] if n["role"] == "control-plane")["extraPortMappings"]
    assert mapping == {"containerPort": node_port, "hostPort": node_port, "listenAddress": "127.0.0.1",
                       "protocol": "TCP"}


def test_the_rbac_manifest_binds_every_role_to_the_one_account() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "rbac.yaml").read_text()))
    roles = {d["metadata"]["name"] for d in docs if d["kind"] in ("Role", "ClusterRole")}
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert {b["roleRef"]["name"] for b in bindings} == roles
    assert all(b["subjects"] == [{"kind": "ServiceAccount", "name": "resilience-tests",
                                  "namespace": "resilience-tests"}] for b in bindings)
    verbs = {v for d in docs if d["kind"] in ("Role", "ClusterRole") for r in d["rules"] for v in r["verbs"]}
    assert "*" not in verbs and "escalate" not in verbs and "bind" not in verbs


def duplicate_node_ports(manifests: dict[str, list[dict[str, Any]]]) -> dict[int, list[str]]:
    """NodePorts that more than one Service of ``manifests`` (file name -> documents) asks for."""
    users: dict[int, list[str]] = {}
    for name, docs in manifests.items():
        for doc in docs:
            if doc and doc["kind"] == "Service":
                for port in doc["spec"].get("ports", []):
                    if "nodePort" in port:
                        users.setdefault(port["nodePort"], []).append(f"{name}:{doc['metadata']['name']}")
    return {port: names for port, names in users.items() if len(names) > 1}


def test_no_two_demo_manifests_ask_for_the_same_node_port() -> None:
    manifests = {p.name: list(yaml.safe_load_all(p.read_text())) for p in sorted(DEPLOY.glob("*.yaml"))}
    assert duplicate_node_ports(manifests) == {}
    clash = {"a.yaml": [{"kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": [{"nodePort": 30080}]}}]}
    assert duplicate_node_ports({**manifests, **clash})[30080] == ["demo.yaml:web", "a.yaml:x"]


def _millicores(quantity: str) -> float:
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def test_the_hpa_demo_is_sized_as_its_comments_say() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "demo-hpa.yaml").read_text()) if d}
    deployment, hpa = docs["Deployment"], docs["HorizontalPodAutoscaler"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (cost,) = [a.removeprefix("--cpu-per-request=") for a in container["args"] if a.startswith("--cpu-per-request=")]
    assert cost.endswith("ms")
    request = _millicores(container["resources"]["requests"]["cpu"])
    (metric,) = hpa["spec"]["metrics"]
    target = metric["resource"]["target"]["averageUtilization"]
    assert metric["resource"]["name"] == "cpu"
    # one replica at its target handles R * T/100 / C requests/s: the seed's 10
    assert request * target / 100 / float(cost[:-2]) == 10
    assert "replicas" not in deployment["spec"], "the HPA owns the scale"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 10)
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert {"type": "Percent", "value": 100, "periodSeconds": 15} in behavior["scaleUp"]["policies"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 30
    # the quota holds maxReplicas plus the rollout's surge pod
    hard = docs["ResourceQuota"]["spec"]["hard"]
    pods = hpa["spec"]["maxReplicas"] + deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    assert pods * request <= _millicores(hard["requests.cpu"])
    assert pods * _millicores(container["resources"]["limits"]["cpu"]) <= _millicores(hard["limits.cpu"])
    assert pods <= int(hard["pods"])


def _applied_namespaces(script: str) -> set[str]:
    """The namespaces the manifests that ``script`` applies (``apply -f deploy/X.yaml``) create."""
    import re

    found = set()
    for name in re.findall(r"apply -f deploy/([\w.-]+\.yaml)", script):
        found |= {d["metadata"]["name"] for d in yaml.safe_load_all((DEPLOY / name).read_text())
                  if d and d["kind"] == "Namespace"}
    return found


def test_the_main_job_deploys_the_namespace_of_every_example_experiment() -> None:
    script = (DEPLOY.parent / "scripts" / "demo").read_text()
    applied = _applied_namespaces(script)
    targets = {p.name: yaml.safe_load(p.read_text())["target"]["namespace"]
               for p in sorted((DEPLOY.parent / "experiments").glob("*.yaml"))}
    assert targets["autoscale-ramp.yaml"] == "demo-hpa"
    assert {name: ns for name, ns in targets.items() if ns not in applied} == {}
    assert "demo-hpa" not in _applied_namespaces(script.replace("apply -f deploy/demo-hpa.yaml", ""))
