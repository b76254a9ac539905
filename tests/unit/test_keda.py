"""KEDA on the local cluster, as data: the wrapper module, the objects and roles, the command lines (the cluster
test in tests/cluster/test_keda.py runs them)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from resilience_tests.cli import main
from resilience_tests.errors import TestbedError
from resilience_tests.testbed import keda
from resilience_tests.testbed.cluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
PORTS = keda.Ports(grpc=9001, operator_metrics=9002, operator_health=9003, adapter=9004, adapter_metrics=9005)


def test_the_wrapper_module_repeats_kedas_replace_and_exclude_directives() -> None:
    directives = {"Go": "1.26.0",
                  "Replace": [{"Old": {"Path": "github.com/x/annotations", "Version": "v0.1.0"},
                               "New": {"Path": "github.com/x/annotations", "Version": "v0.1.1-fixed"}},
                              {"Old": {"Path": "github.com/y/all"}, "New": {"Path": "github.com/z/all",
                                                                             "Version": "v1.0.0"}}],
                  "Exclude": [{"Path": "github.com/go-chi/chi/v5", "Version": "v5.2.3"}]}
    lines = keda.wrapper_gomod(directives, "v2.21.0").splitlines()
    assert "go 1.26.0" in lines
    assert "require github.com/kedacore/keda/v2 v2.21.0" in lines
    assert "replace github.com/x/annotations v0.1.0 => github.com/x/annotations v0.1.1-fixed" in lines
    assert "replace github.com/y/all => github.com/z/all v1.0.0" in lines
    assert "exclude github.com/go-chi/chi/v5 v5.2.3" in lines
    assert keda.wrapper_gomod({"Go": "1.26.0"}, "v2.21.0").count("replace") == 0


def test_a_replace_by_a_local_directory_is_refused_naming_it() -> None:
    directives = {"Replace": [{"Old": {"Path": "github.com/x/y"}, "New": {"Path": "./hack/y"}}]}
    with pytest.raises(TestbedError, match=r"github.com/x/y with the local directory ./hack/y") as caught:
        keda.wrapper_gomod(directives, "v9.9.9")
    assert caught.value.hint and keda.VERSION in caught.value.hint


def test_the_api_service_trusts_only_the_cluster_ca_and_points_at_the_adapter_on_loopback() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in keda.manifests(9004, b"CA PEM")}
    spec = objects[("APIService", "v1beta1.external.metrics.k8s.io")]["spec"]
    assert base64.b64decode(spec["caBundle"]) == b"CA PEM" and "insecureSkipTLSVerify" not in spec
    assert spec["group"] == "external.metrics.k8s.io" and spec["version"] == "v1beta1"
    assert spec["service"] == {"name": "keda-metrics-apiserver", "namespace": "kube-system", "port": 9004}
    service = objects[("Service", "keda-metrics-apiserver")]
    assert service["metadata"]["namespace"] == "kube-system"
    assert service["spec"] == {"type": "ExternalName", "externalName": "127.0.0.1",
                               "ports": [{"name": "https", "port": 9004}]}


def test_each_process_has_its_own_user_bound_to_its_own_role() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in keda.manifests(9004, b"")}
    bindings = [o for o in objects.values() if o["kind"].endswith("Binding")]
    bound = {(o["subjects"][0]["name"], o["roleRef"]["name"]) for o in bindings}
    assert bound == {("system:keda-operator", "system:keda-operator"),
                     ("system:keda-metrics-apiserver", "system:keda-metrics-apiserver"),
                     ("system:keda-metrics-apiserver", "system:auth-delegator"),
                     ("system:keda-metrics-apiserver", "extension-apiserver-authentication-reader")}
    assert all(o["subjects"][0]["kind"] == "User" for o in bindings)
    assert objects[("ClusterRole", keda.ADAPTER_USER)]["rules"] == [
        {"apiGroups": ["keda.sh"], "resources": ["scaledobjects"], "verbs": ["get", "list", "watch"]}]


def test_the_operator_reads_secrets_but_writes_none_and_patches_no_webhook_or_api_service() -> None:
    rules = keda.OPERATOR_RULES
    writes = {"create", "update", "patch", "delete"}
    for rule in rules:
        if set(rule["verbs"]) & writes:
            assert not {"secrets", "configmaps", "leases", "apiservices", "validatingwebhookconfigurations"} & set(
                rule["resources"]), rule
        assert rule["resources"] != ["*"], rule  # KEDA's own role gets every resource; this one does not
    wildcard = [r for r in rules if "*" in r["apiGroups"]]
    assert wildcard == [{"apiGroups": ["*"], "resources": ["*/scale"],
                         "verbs": ["get", "list", "watch", "patch", "update"]}]
    assert {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"],
            "verbs": ["get", "list", "watch", "create", "delete", "patch", "update"]} in rules


def test_the_operator_generates_no_certificates_and_listens_on_loopback_only(tmp_path: Path) -> None:
    argv = keda.operator_argv(Path("/bin/keda-operator"), tmp_path, PORTS)
    assert "--enable-cert-rotation=false" in argv and "--leader-elect=false" in argv
    assert "--enable-webhook-patching=false" in argv and "--enable-apiservice-patching=false" in argv
    assert f"--cert-dir={tmp_path / 'operator-certs'}" in argv
    binds = [a for a in argv if "-bind-address=" in a]
    assert binds and all("=127.0.0.1:" in a for a in binds), binds
    assert "--metrics-service-bind-address=127.0.0.1:9001" in argv


def test_the_adapter_reaches_the_operator_on_loopback_with_its_own_certificates(tmp_path: Path) -> None:
    argv = keda.adapter_argv(Path("/bin/keda-adapter"), tmp_path, PORTS)
    assert "--metrics-service-address=127.0.0.1:9001" in argv
    assert f"--cert-dir={tmp_path / 'adapter-certs'}" in argv  # KEDA reads ca.crt, tls.crt, tls.key there
    assert "--bind-address=127.0.0.1" in argv and "--secure-port=9004" in argv
    assert f"--tls-cert-file={tmp_path / 'serving.crt'}" in argv
    env = keda.environment(tmp_path / "adapter.kubeconfig")
    assert env["KUBECONFIG"] == str(tmp_path / "adapter.kubeconfig") and env["WATCH_NAMESPACE"] == ""
    assert env["POD_NAMESPACE"] == env["KEDA_CLUSTER_OBJECT_NAMESPACE"] == "keda"


def test_cluster_up_starts_keda_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    monkeypatch.setattr(LocalCluster, "up", lambda self, *a, **k: "/tmp/kubeconfig")
    monkeypatch.setattr(LocalCluster, "start_keda", lambda self: started.append(self.name))
    assert main(["cluster", "up", "--name", "k1", "--real-nodes", "0"]) == 0
    assert started == []
    assert main(["cluster", "up", "--name", "k1", "--real-nodes", "0", "--keda"]) == 0
    assert started == ["k1"]


@pytest.mark.parametrize("args", [["--with", "keda", "--with", "nothing"], ["--with=kedas"]])
def test_setup_takes_keda_next_to_velero_and_refuses_anything_else(args: list[str]) -> None:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "setup"), *args], capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --with takes 'velero' or 'keda'"), proc.stderr
    text = (ROOT / "scripts" / "setup").read_text()
    assert "from resilience_tests.testbed.keda import programs" in text
