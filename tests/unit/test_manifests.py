"""The manifests in deploy/ agree with each other."""

from __future__ import annotations

from pathlib import Path

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
