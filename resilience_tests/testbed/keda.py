"""KEDA on the local cluster: its operator and metrics adapter as host processes, serving
``external.metrics.k8s.io``.

KEDA (``github.com/kedacore/keda/v2`` :data:`VERSION`) is built from the Go module proxy into the cache, once per
version. Its go.mod carries ``replace`` and ``exclude`` directives, which Go ignores in a dependency, so the build
goes through a small wrapper module (written into a temporary directory) that repeats them, read from the
downloaded go.mod. The CRDs come from the same downloaded module (``config/crd/bases``) and are kept next to the
binaries; nothing of KEDA's own manifests is in this repository.

Two processes, each with its own identity from the cluster CA and a ClusterRole written here
(:func:`manifests`):

- the operator, ``system:keda-operator``: reconciles ScaledObjects into HPAs named ``keda-hpa-<name>``, runs
  the scalers, and serves the metrics service (gRPC, mutual TLS) on 127.0.0.1;
- the metrics adapter, ``system:keda-metrics-apiserver``: the API server reaches it through the APIService
  :data:`API_SERVICE` and an ExternalName Service ``kube-system/keda-metrics-apiserver`` for 127.0.0.1 (its
  serving certificate checked against the cluster CA, the ``caBundle``); it asks the operator for every value
  over gRPC, with a client certificate of the cluster CA.

KEDA's own certificate generation and rotation are off (``--enable-cert-rotation=false``), so are its patching of
webhooks and APIServices and leader election (one operator). The admission webhooks are not run: a ScaledObject is
not validated on admission, only by the operator when it reconciles it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resilience_tests import procs
from resilience_tests.errors import TestbedError
from resilience_tests.net import free_port
from resilience_tests.testbed.metrics import api_service_available
from resilience_tests.testbed.pki import Authority
from resilience_tests.waiting import wait_until

MODULE = "github.com/kedacore/keda/v2"
# v2.21.1 needs Go >= 1.27.4 (its go.mod); v2.21.0 builds with the Go 1.26 the cluster's other programs need.
VERSION = "v2.21.0"
NAMESPACE = "keda"
OPERATOR = "keda-operator"
ADAPTER = "keda-metrics-apiserver"
PROCESSES = (OPERATOR, ADAPTER)
OPERATOR_USER = "system:keda-operator"
ADAPTER_USER = "system:keda-metrics-apiserver"
API_SERVICE = "v1beta1.external.metrics.k8s.io"
CRDS = ("scaledobjects.keda.sh", "scaledjobs.keda.sh", "triggerauthentications.keda.sh",
        "clustertriggerauthentications.keda.sh", "cloudeventsources.eventing.keda.sh",
        "clustercloudeventsources.eventing.keda.sh")
LABELS = {"app.kubernetes.io/managed-by": "resilience-tests", "component": "keda"}
Kubectl = Callable[..., str]


@dataclass(frozen=True)
class Programs:
    """KEDA's built programs and CRDs, in the cache."""

    operator: Path
    adapter: Path
    crds: Path


def programs(version: str = VERSION) -> Programs:
    """KEDA's operator, adapter and CRDs (built on first use, then reused from the cache)."""
    from resilience_tests.testbed.build import cache_root

    folder = cache_root() / "programs" / f"keda-{version}"
    done = Programs(folder / "keda-operator", folder / "keda-adapter", folder / "crds")
    if done.operator.is_file() and done.adapter.is_file() and done.crds.is_dir():
        return done
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="keda-build-") as work:
        downloaded = json.loads(_go(["mod", "download", "-json", f"{MODULE}@{version}"], Path(work), version))
        directives = json.loads(_go(["mod", "edit", "-json", downloaded["GoMod"]], Path(work), version))
        (Path(work) / "go.mod").write_text(wrapper_gomod(directives, version))
        ldflags = f"-s -w -X {MODULE}/version.Version={version}"
        _go(["build", "-trimpath", "-ldflags", ldflags, "-o", f"{partial}/", f"{MODULE}/cmd/operator",
             f"{MODULE}/cmd/adapter"], Path(work), version)
    (partial / "operator").rename(partial / done.operator.name)
    (partial / "adapter").rename(partial / done.adapter.name)
    (partial / "crds").mkdir()
    for crd in sorted((Path(downloaded["Dir"]) / "config" / "crd" / "bases").glob("*.yaml")):
        shutil.copyfile(crd, partial / "crds" / crd.name)  # not the module cache's read-only modes
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return done


def wrapper_gomod(directives: dict[str, Any], version: str) -> str:
    """go.mod of the wrapper module: requires KEDA at ``version`` and repeats the ``replace`` and ``exclude``
    directives of KEDA's own go.mod (``directives`` as ``go mod edit -json`` prints it)."""

    def at(mod: dict[str, str]) -> str:
        return f"{mod['Path']} {mod['Version']}" if mod.get("Version") else mod["Path"]

    lines = ["module resilience-tests.local/keda-build", "", f"go {directives.get('Go') or '1.26'}", "",
             f"require {MODULE} {version}", ""]
    for replace in directives.get("Replace") or []:
        if not replace["New"].get("Version"):  # a directory inside KEDA's tree: nothing a wrapper can point at
            raise TestbedError(f"KEDA {version} replaces {replace['Old']['Path']} with the local directory "
                               f"{replace['New']['Path']}, which a wrapper module cannot repeat",
                               hint=f"use a KEDA version whose go.mod has no local replace (this one: {VERSION})")
        lines.append(f"replace {at(replace['Old'])} => {at(replace['New'])}")
    lines += [f"exclude {at(excluded)}" for excluded in directives.get("Exclude") or []]
    return "\n".join(lines) + "\n"


def _go(args: list[str], cwd: Path, version: str) -> str:
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
    if args[0] == "build":
        env["GOFLAGS"] = "-mod=mod"  # the wrapper's go.sum is filled as the build goes
    try:
        proc = subprocess.run(["go", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False,
                              timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TestbedError(f"building KEDA {version}: go {args[0]} failed: {exc}",
                           hint="install Go >= 1.26 (go on PATH)") from None
    if proc.returncode != 0:
        raise TestbedError(f"building KEDA {version}: go {' '.join(args[:2])} failed: {proc.stderr.strip()[-800:]}",
                           hint="install Go >= 1.26 (go on PATH) and check GOPROXY")
    return proc.stdout


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, list[str]]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


READ = ["get", "list", "watch"]
OPERATOR_RULES = [
    # What the scalers and the resolver of a target's environment read (a Service's endpoints for metrics-api's
    # aggregation; ConfigMaps and Secrets a container's env refers to); events it records.
    _rule([""], ["configmaps", "pods", "secrets", "services"], READ),
    _rule(["discovery.k8s.io"], ["endpointslices"], READ),
    _rule(["", "events.k8s.io"], ["events"], ["create", "patch"]),
    # Scale targets: KEDA reads the target and its scale subresource. KEDA's own role grants `get` on every
    # resource for arbitrary targets; here Deployments and StatefulSets only.
    _rule(["apps"], ["deployments", "statefulsets", "replicasets"], READ),
    _rule(["*"], ["*/scale"], [*READ, "patch", "update"]),
    _rule(["autoscaling"], ["horizontalpodautoscalers"], [*READ, "create", "delete", "patch", "update"]),
    _rule(["batch"], ["jobs"], [*READ, "create", "delete", "patch", "update"]),  # ScaledJobs
    _rule(["keda.sh"], ["scaledobjects", "scaledobjects/status", "scaledobjects/finalizers", "scaledjobs",
                        "scaledjobs/status", "scaledjobs/finalizers", "triggerauthentications",
                        "triggerauthentications/status", "clustertriggerauthentications",
                        "clustertriggerauthentications/status"], [*READ, "patch", "update"]),
    _rule(["eventing.keda.sh"], ["cloudeventsources", "cloudeventsources/status", "clustercloudeventsources",
                                 "clustercloudeventsources/status"], [*READ, "patch", "update"]),
]
# The adapter reads ScaledObjects and asks the operator for the values.
ADAPTER_RULES = [_rule(["keda.sh"], ["scaledobjects"], READ)]


def manifests(port: int, ca: bytes) -> list[dict[str, Any]]:
    """KEDA's namespace, the two identities' roles and bindings, the Service and the APIService (``port``:
    the adapter's on 127.0.0.1, ``ca``: the cluster CA)."""
    rbac = "rbac.authorization.k8s.io"

    def meta(name: str, namespace: str = "") -> dict[str, Any]:
        return {"name": name, "labels": LABELS, **({"namespace": namespace} if namespace else {})}

    def binding(kind: str, name: str, role_kind: str, role: str, user: str, namespace: str = "") -> dict[str, Any]:
        return {"apiVersion": f"{rbac}/v1", "kind": kind, "metadata": meta(name, namespace),
                "roleRef": {"apiGroup": rbac, "kind": role_kind, "name": role},
                "subjects": [{"apiGroup": rbac, "kind": "User", "name": user}]}

    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(NAMESPACE)},
        {"apiVersion": f"{rbac}/v1", "kind": "ClusterRole", "metadata": meta(OPERATOR_USER), "rules": OPERATOR_RULES},
        binding("ClusterRoleBinding", OPERATOR_USER, "ClusterRole", OPERATOR_USER, OPERATOR_USER),
        {"apiVersion": f"{rbac}/v1", "kind": "ClusterRole", "metadata": meta(ADAPTER_USER), "rules": ADAPTER_RULES},
        binding("ClusterRoleBinding", ADAPTER_USER, "ClusterRole", ADAPTER_USER, ADAPTER_USER),
        # As an aggregated API server: it reviews its callers' tokens and rights, and reads the front proxy's
        # settings from kube-system.
        binding("ClusterRoleBinding", "keda-metrics-apiserver:system:auth-delegator", "ClusterRole",
                "system:auth-delegator", ADAPTER_USER),
        binding("RoleBinding", "keda-metrics-apiserver-auth-reader", "Role",
                "extension-apiserver-authentication-reader", ADAPTER_USER, "kube-system"),
        {"apiVersion": "v1", "kind": "Service", "metadata": meta(ADAPTER, "kube-system"),
         "spec": {"type": "ExternalName", "externalName": "127.0.0.1", "ports": [{"name": "https", "port": port}]}},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": meta(API_SERVICE),
         "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                  "versionPriority": 100, "caBundle": base64.b64encode(ca).decode(),
                  "service": {"name": ADAPTER, "namespace": "kube-system", "port": port}}},
    ]


@dataclass(frozen=True)
class Ports:
    """Where KEDA listens (all on 127.0.0.1, but the adapter's own metrics: see :func:`adapter_argv`)."""

    grpc: int  # the operator's metrics service, for the adapter
    operator_metrics: int
    operator_health: int
    adapter: int  # external.metrics.k8s.io, for the API server
    adapter_metrics: int


def operator_argv(binary: Path, folder: Path, ports: Ports) -> list[str]:
    """The operator's command line: its gRPC certificates in ``folder/operator-certs`` (ca.crt, tls.crt,
    tls.key, as KEDA expects them), nothing generated or patched by KEDA itself."""
    return [str(binary), "--leader-elect=false", "--enable-cert-rotation=false", "--enable-webhook-patching=false",
            "--enable-apiservice-patching=false", f"--cert-dir={folder / 'operator-certs'}",
            f"--ca-dir={folder / 'ca'}",  # CAs the scalers trust for TLS: the cluster's
            f"--metrics-service-bind-address=127.0.0.1:{ports.grpc}",
            f"--metrics-bind-address=127.0.0.1:{ports.operator_metrics}",
            f"--health-probe-bind-address=127.0.0.1:{ports.operator_health}",
            "--zap-encoder=console", "--zap-time-encoding=rfc3339", "--zap-log-level=info"]


def adapter_argv(binary: Path, folder: Path, ports: Ports) -> list[str]:
    """The adapter's command line. Its gRPC client certificates are read from ``--cert-dir`` (KEDA's layout);
    the API it serves uses another certificate. Its own Prometheus endpoint (``--port``) binds every interface:
    KEDA has no flag for the address."""
    kubeconfig = folder / "adapter.kubeconfig"
    return [str(binary), f"--lister-kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", "--bind-address=127.0.0.1", f"--secure-port={ports.adapter}",
            f"--tls-cert-file={folder / 'serving.crt'}", f"--tls-private-key-file={folder / 'serving.key'}",
            f"--cert-dir={folder / 'adapter-certs'}", f"--metrics-service-address=127.0.0.1:{ports.grpc}",
            f"--port={ports.adapter_metrics}", "--zap-encoder=console", "--zap-time-encoding=rfc3339"]


def environment(kubeconfig: Path) -> dict[str, str]:
    """What both processes read from their environment (a pod's, upstream)."""
    return {**os.environ, "KUBECONFIG": str(kubeconfig), "WATCH_NAMESPACE": "", "POD_NAMESPACE": NAMESPACE,
            "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE}


def _certificates(authority: Authority, folder: Path, server: str) -> None:
    """Identities towards the API server, the gRPC pair (server: the operator; client: the adapter, both checked
    against the cluster CA) and the adapter's serving certificate."""
    for user, name in ((OPERATOR_USER, "operator"), (ADAPTER_USER, "adapter")):
        pair = authority.issue(folder, f"{name}-client", common_name=user)
        authority.kubeconfig(folder / f"{name}.kubeconfig", server, user, pair)
        certs = folder / f"{name}-certs"
        authority.issue(certs, "tls", common_name=user, ips=("127.0.0.1",), server=name == "operator")
        shutil.copyfile(authority.ca_path, certs / "ca.crt")
    (folder / "ca").mkdir()
    shutil.copyfile(authority.ca_path, folder / "ca" / "ca.crt")
    authority.issue(folder, "serving", common_name=ADAPTER, ips=("127.0.0.1",),
                    dns=(f"{ADAPTER}.kube-system.svc",), server=True)


def running(run_dir: Path) -> dict[str, int]:
    """KEDA's processes that run now, by name."""
    return {r.name: r.pid for r in procs.records(run_dir) if r.name in PROCESSES and procs.is_running(r)}


def start(run_dir: Path, authority: Authority, server: str, kubectl: Kubectl, *, timeout: float = 90) -> None:
    """Install KEDA's CRDs and objects (``kubectl`` runs kubectl as the cluster's admin), start the operator and
    the adapter, and wait until the API server serves :data:`API_SERVICE` and the adapter reached the operator.
    A no-op when both run already."""
    if set(running(run_dir)) == set(PROCESSES):
        return
    stop(run_dir, kubectl, keep_objects=True)  # a half-started pair of a crashed run
    built = programs()
    folder = run_dir / "keda"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    _certificates(authority, folder, server)
    ports = Ports(*(free_port() for _ in range(5)))
    kubectl("apply", "--server-side", "-f", str(built.crds))
    wait_until("KEDA's CRDs Established", lambda: _established(kubectl), timeout=60, interval=0.5)
    kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": manifests(ports.adapter, authority.ca_path.read_bytes())}))
    operator = procs.start(OPERATOR, operator_argv(built.operator, folder, ports), run_dir=run_dir,
                           marker=str(folder), env=environment(folder / "operator.kubeconfig"))
    procs.wait_started("KEDA's operator answering /readyz", lambda: _answers(ports.operator_health), operator,
                       timeout=timeout)
    adapter = procs.start(ADAPTER, adapter_argv(built.adapter, folder, ports), run_dir=run_dir, marker=str(folder),
                          env=environment(folder / "adapter.kubeconfig"))
    procs.wait_started(f"the API server serving {API_SERVICE} through KEDA's adapter",
                       lambda: api_service_available(kubectl, API_SERVICE), adapter, timeout=timeout)
    procs.wait_started("KEDA's adapter connected to the operator's metrics service (gRPC)",
                       lambda: "successfully established" in Path(adapter.log).read_text(errors="replace"), adapter,
                       timeout=timeout)


def stop(run_dir: Path, kubectl: Kubectl | None, *, keep_objects: bool = False) -> None:
    """End KEDA's processes; unless ``keep_objects``, remove its objects too (with ``kubectl``).

    The APIService goes first: an aggregated API nobody serves stalls discovery, and with it namespace deletion.
    ScaledObjects carry a finalizer only the operator removes: they are deleted while it runs, and whatever still
    holds one after that has it removed."""
    if kubectl is not None and not keep_objects:
        kubectl("delete", "apiservice", API_SERVICE, "--ignore-not-found")
        crds = set(kubectl("get", "crd", "-o", "name").split())
        for kind in ("scaledobjects.keda.sh", "scaledjobs.keda.sh"):
            if f"customresourcedefinition.apiextensions.k8s.io/{kind}" in crds:
                with contextlib.suppress(TestbedError):
                    kubectl("delete", kind, "--all-namespaces", "--all", "--wait=true", "--timeout=30s")
                for line in kubectl("get", kind, "-A", "-o", "jsonpath={range .items[*]}{.metadata.namespace}"
                                    " {.metadata.name}{'\\n'}{end}").splitlines():
                    namespace, name = line.split()
                    kubectl("patch", kind, name, "-n", namespace, "--type=merge",
                            "-p", '{"metadata":{"finalizers":null}}')
    for record in procs.records(run_dir):
        if record.name in PROCESSES:
            procs.stop(record, run_dir, grace=3)
    if kubectl is not None and not keep_objects:
        kubectl("delete", "--ignore-not-found", "--wait=true", "--timeout=60s",
                *(f"crd/{name}" for name in CRDS), f"namespace/{NAMESPACE}",
                f"clusterrole/{OPERATOR_USER}", f"clusterrole/{ADAPTER_USER}", f"clusterrolebinding/{OPERATOR_USER}",
                f"clusterrolebinding/{ADAPTER_USER}", "clusterrolebinding/keda-metrics-apiserver:system:auth-delegator")
        kubectl("delete", "--ignore-not-found", "-n", "kube-system", f"service/{ADAPTER}",
                "rolebinding/keda-metrics-apiserver-auth-reader")


def _established(kubectl: Kubectl) -> bool:
    """Whether every CRD of KEDA is Established (``kubectl wait`` fails on one without conditions yet)."""
    items = json.loads(kubectl("get", *(f"crd/{name}" for name in CRDS), "-o", "json"))["items"]
    return len(items) == len(CRDS) and all(
        any(c.get("type") == "Established" and c.get("status") == "True"
            for c in (item.get("status") or {}).get("conditions") or []) for item in items)


def _answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
