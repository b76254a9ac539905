"""Velero on the local cluster, as host processes: Velero's server, its AWS object-store plugin, and an
S3-compatible object store on 127.0.0.1.

Versions are pinned: Velero v1.18.3 (``velero/go.mod``), velero-plugin-for-aws :data:`AWS_PLUGIN_VERSION`
(``go install``), gofakes3 v1.2.0 (``objectstore/go.mod``). All three are built from the Go module proxy into the
cache, like the cluster's other binaries.

:func:`start` installs Velero's CRDs, namespace ``velero``, a backup storage location ``default`` pointing at the
store, and a Deployment ``velero`` scaled to 0 (Velero's restore reads its image for the init container of
file-system restores; nothing runs in it: the server is the host process), then starts the store and the server
and waits until the location is Available. Velero backs up and restores objects only here: it has no node agent,
so volume data goes through the experiment's data hooks. :func:`stop` ends the processes and removes all of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

from resilience_tests import procs
from resilience_tests.errors import TestbedError
from resilience_tests.net import free_port

AWS_PLUGIN = "github.com/vmware-tanzu/velero-plugin-for-aws/velero-plugin-for-aws"
AWS_PLUGIN_VERSION = "v1.14.3"
NAMESPACE = "velero"
LOCATION = "default"
BUCKET = "velero"
PROCESSES = ("objectstore", "velero")
# Velero 1.18's server also starts controller-runtime's metrics server on its default, :8080 (every interface),
# and has no flag to move it: the port must be free, and one Velero runs per machine.
MANAGER_METRICS_PORT = 8080
Kubectl = Callable[..., str]


def binaries() -> tuple[Path, Path, Path]:
    """Velero, the object store and the AWS plugin (each built on first use, then reused from the cache)."""
    from resilience_tests.testbed.build import cache_root
    from resilience_tests.testbed.images import REPO, build_go_program

    velero = build_go_program(REPO / "velero", "velero")
    store = build_go_program(REPO / "objectstore", "objectstore")
    folder = cache_root() / "programs" / f"velero-plugin-for-aws-{AWS_PLUGIN_VERSION}"
    plugin = folder / "velero-plugin-for-aws"
    if not plugin.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOBIN": str(folder), "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
        proc = subprocess.run(["go", "install", "-trimpath", "-ldflags", "-s -w", f"{AWS_PLUGIN}@{AWS_PLUGIN_VERSION}"],
                              env=env, capture_output=True, text=True, check=False, timeout=1800)
        if proc.returncode != 0:
            raise TestbedError(f"building velero-plugin-for-aws failed: {proc.stderr.strip()[-800:]}",
                               hint="install Go >= 1.26 (go on PATH) and check GOPROXY")
    return velero, store, plugin


def running(run_dir: Path) -> dict[str, int]:
    """Velero's processes that run now, by name."""
    return {r.name: r.pid for r in procs.records(run_dir) if r.name in PROCESSES and procs.is_running(r)}


def start(run_dir: Path, kubeconfig: Path, kubectl: Kubectl, *, timeout: float = 90) -> None:
    """Start the store and Velero's server against the cluster of ``kubeconfig`` (its admin); ``kubectl`` runs
    kubectl as that admin. A no-op when both run already."""
    if set(running(run_dir)) == set(PROCESSES):
        return
    stop(run_dir, kubectl, keep_objects=True)  # a half-started set of a crashed run
    with socket.socket() as probe:
        try:
            probe.bind(("", MANAGER_METRICS_PORT))
        except OSError:
            raise TestbedError(f"port {MANAGER_METRICS_PORT} is taken, and Velero's server listens on it (a "
                               "controller-runtime default Velero cannot change)",
                               hint=f"stop what listens there (`ss -ltnp 'sport = :{MANAGER_METRICS_PORT}'`); "
                                    "another cluster's Velero stops with `resilience cluster down`") from None
    velero, store, plugin = binaries()
    folder = run_dir / "velero"
    (folder / "plugins").mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    (folder / "plugins" / plugin.name).unlink(missing_ok=True)
    (folder / "plugins" / plugin.name).symlink_to(plugin)
    credentials = folder / "credentials"
    credentials.write_text("[default]\naws_access_key_id = resilience\naws_secret_access_key = resilience-local\n")
    credentials.chmod(0o600)
    port = free_port()
    record = procs.start("objectstore", [str(store), f"-listen=127.0.0.1:{port}", f"-data={folder / 'store'}",
                                         f"-bucket={BUCKET}"], run_dir=run_dir, marker=str(folder))
    procs.wait_started(f"the object store on 127.0.0.1:{port}", lambda: _answers(port), record, timeout=30)
    crds = subprocess.run([str(velero), "install", "--crds-only", "--dry-run", "-o", "json"], capture_output=True,
                          text=True, check=False, timeout=120)
    if crds.returncode != 0:
        raise TestbedError(f"velero install --crds-only failed: {crds.stderr.strip()[-400:]}")
    kubectl("apply", "--server-side", "-f", "-", stdin=crds.stdout)
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/backupstoragelocations.velero.io",
            "crd/backups.velero.io", "crd/restores.velero.io")
    kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                   "items": _objects(port)}))
    server = procs.start("velero", [str(velero), "server", f"--kubeconfig={kubeconfig}", f"--namespace={NAMESPACE}",
                                    f"--plugin-dir={folder / 'plugins'}", "--metrics-address=127.0.0.1:0",
                                    "--profiler-address=127.0.0.1:0", "--store-validation-frequency=5s"],
                         run_dir=run_dir, marker=str(folder),
                         env={**os.environ, "AWS_SHARED_CREDENTIALS_FILE": str(credentials)})
    procs.wait_started("Velero's backup storage location Available",
                       lambda: _location_phase(kubectl) == "Available", server, timeout=timeout)


def stop(run_dir: Path, kubectl: Kubectl | None, *, keep_objects: bool = False) -> None:
    """End Velero's processes; unless ``keep_objects``, delete its namespace and CRDs too (with ``kubectl``).

    The objects go first, while the server runs: a Restore carries a finalizer only Velero's server removes.
    Whatever still holds one after that (the server was gone already) has it removed.
    """
    if kubectl is not None and not keep_objects:
        names = [n for n in kubectl("get", "crd", "-o", "name").split() if n.endswith(".velero.io")]
        for kind in ("restores.velero.io", "backups.velero.io"):
            if f"customresourcedefinition.apiextensions.k8s.io/{kind}" in names:
                with contextlib.suppress(TestbedError):
                    kubectl("delete", kind, "-n", NAMESPACE, "--all", "--wait=true", "--timeout=30s")
                for name in kubectl("get", kind, "-n", NAMESPACE, "-o", "name").split():
                    kubectl("patch", name, "-n", NAMESPACE, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    for record in procs.records(run_dir):
        if record.name in PROCESSES:
            procs.stop(record, run_dir, grace=3)
    if kubectl is not None and not keep_objects:
        kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=60s")
        if names:
            kubectl("delete", "--ignore-not-found", "--wait=true", "--timeout=60s", *names)


def _objects(port: int) -> list[dict[str, object]]:
    labels = {"app.kubernetes.io/managed-by": "resilience-tests", "component": "velero"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "velero", "namespace": NAMESPACE,
                                                                     "labels": labels},
         "spec": {"replicas": 0, "selector": {"matchLabels": {"component": "velero"}},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [{"name": "velero", "image": "registry.local/pause:1"}]}}}},
        {"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
         "metadata": {"name": LOCATION, "namespace": NAMESPACE, "labels": labels},
         "spec": {"provider": "aws", "default": True, "objectStorage": {"bucket": BUCKET},
                  "config": {"region": "local", "s3ForcePathStyle": "true", "s3Url": f"http://127.0.0.1:{port}"}}},
    ]


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _location_phase(kubectl: Kubectl) -> str:
    try:
        return kubectl("get", "backupstoragelocations.velero.io", "-n", NAMESPACE, LOCATION, "-o",
                       "jsonpath={.status.phase}").strip()
    except TestbedError:
        return ""
