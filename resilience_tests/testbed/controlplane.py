"""The local cluster's control plane: etcd, kube-apiserver, controller-manager and scheduler (through kwokctl),
and the kwok controller that gives simulated nodes their heartbeat.

The kwok controller manages only nodes labelled ``resilience-tests.io/heartbeat=on``, so taking that label
away is a real heartbeat loss (:mod:`resilience_tests.testbed.simnodes`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from importlib import resources
from pathlib import Path

from resilience_tests import procs
from resilience_tests.errors import TestbedError, WaitTimeoutError
from resilience_tests.labels import HEARTBEAT_LABEL
from resilience_tests.net import free_port
from resilience_tests.testbed import metrics
from resilience_tests.testbed.kwokctl import Kwokctl, Timings
from resilience_tests.testbed.pki import Authority
from resilience_tests.testbed.topology import SIM_POD_CIDR
from resilience_tests.waiting import wait_until

# Enough workers that lease renewals keep up with 1,000 nodes on 2 cores.
KWOK_CONFIGURATION = {
    "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
    "kind": "KwokConfiguration",
    "options": {"nodeLeaseParallelism": 16, "nodePlayStageParallelism": 8, "podPlayStageParallelism": 16},
}
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
OWN = ("kwok", metrics.PROCESS)  # started here, not by kwokctl


class ControlPlane:
    """The control plane of one local cluster.

    Args:
        name: the cluster's name.
        binaries: directory with the built binaries.
        root: state root (kwokctl's work directory is under it).
        run_dir: the cluster's own state: logs and pid files of the processes started here.
    """

    def __init__(self, name: str, binaries: Path, root: Path, run_dir: Path) -> None:
        self.binaries = binaries
        self.run_dir = run_dir
        self.kwokctl = Kwokctl(binaries, root / "kwok", name)

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig of the cluster."""
        return self.kwokctl.kubeconfig

    def exists(self) -> bool:
        """Whether kwokctl holds state of this cluster."""
        return self.kwokctl.cluster_dir.exists()

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        """Run kubectl against this cluster and return its stdout."""
        cmd = [str(self.binaries / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        try:
            proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise TestbedError(f"kubectl {' '.join(args[:3])} did not answer in {timeout:.0f} s") from exc
        if proc.returncode != 0:
            raise TestbedError(f"kubectl {' '.join(args[:3])} failed: {proc.stderr.strip()[:500]}")
        return proc.stdout

    def api_ready(self) -> bool:
        """Whether the API server answers ``/readyz`` with ok."""
        if not self.kubeconfig.exists():
            return False
        try:
            return self.kubectl("get", "--raw", "/readyz", "--request-timeout=3s", timeout=6).strip() == "ok"
        except TestbedError:
            return False

    # ------------------------------------------------------------------ processes
    def components(self) -> dict[str, int]:
        """The kwokctl components that run, by name (pids checked against the cluster's directory)."""
        marker = str(self.kwokctl.cluster_dir)
        return {name: pid for name, pid in self.kwokctl.pids().items() if marker in procs.cmdline(pid)}

    def own(self) -> dict[str, int]:
        """The processes started here that run (the kwok controller, Velero ...), by name."""
        return {r.name: r.pid for r in procs.records(self.run_dir) if procs.is_running(r)}

    def running(self) -> dict[str, int]:
        """Every process of the control plane that runs, by name."""
        return {**self.components(), **self.own()}

    def healthy(self) -> bool:
        """Every component and the kwok controller run and the API server answers.

        While every process is alive, a slow API server (a busy machine) gets up to 20 s to answer."""
        if not (set(COMPONENTS) <= set(self.components()) and set(OWN) <= set(self.own())):
            return False
        try:
            wait_until("API server answering /readyz", self.api_ready, timeout=20, interval=0.5)
        except WaitTimeoutError:
            return False
        return True

    def missing(self) -> list[str]:
        """Processes of the control plane that should run and do not."""
        return sorted({*COMPONENTS, *OWN} - set(self.running()))

    def start(self, port: int, timeout: float, timings: Timings) -> None:
        """Start the components (kwokctl), then the kwok controller and metrics-server."""
        self.kwokctl.create(port, timeout, timings)
        self._start_kwok(timings)
        metrics.start(self.run_dir, self.authority(), self.server(), self.kubectl, timeout=timeout)

    def authority(self) -> Authority:
        """The cluster CA (kwokctl's PKI), to issue identities of the components started here."""
        return Authority(self.kubeconfig.parent / "pki")

    def server(self) -> str:
        """The API server's URL, as the admin kubeconfig names it."""
        return Authority.server_of(self.kubeconfig)

    def _start_kwok(self, timings: Timings) -> None:
        stages = self.run_dir / "stages.yaml"
        parts = [json.dumps(KWOK_CONFIGURATION), *(json.dumps(d) for d in metrics.kwok_documents())]
        parts += [resources.files("resilience_tests.testbed").joinpath("stages", f).read_text()
                  for f in ("nodes.yaml", "pods.yaml")]
        stages.write_text("\n---\n".join(parts))
        port = free_port()
        tls = metrics.kwok_tls(self.authority(), self.run_dir / "kwok-tls")
        argv = [
            str(self.binaries / "kwok"),
            f"--kubeconfig={self.kubeconfig}",
            f"--config={stages}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-label-selector={HEARTBEAT_LABEL}=on",
            "--node-ip=127.0.0.1",
            f"--cidr={SIM_POD_CIDR}",
            f"--node-lease-duration-seconds={timings.lease_seconds}",
            f"--server-address=127.0.0.1:{port}",
            f"--node-port={port}",
            f"--tls-cert-file={tls.cert}", f"--tls-private-key-file={tls.key}",  # muxed with plain HTTP
        ]
        record = procs.start("kwok", argv, run_dir=self.run_dir, marker=str(stages))
        if not procs.survived_start(record):
            raise TestbedError(f"kwok exited at start:\n{procs.log_tail(record.log)}")

    def teardown(self) -> list[str]:
        """Stop every process of the control plane and the ones started here, and delete kwokctl's state;
        returns what could not be done."""
        errors = []
        for record in procs.records(self.run_dir):
            procs.stop(record, self.run_dir)
        try:
            self.kwokctl.delete()
        except TestbedError as exc:
            errors.append(str(exc))
        for pid in self.components().values():  # whatever kwokctl could not stop (its state half-written)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.kwokctl.cluster_dir, ignore_errors=True)
        if self.components():
            errors.append(f"still running: {', '.join(sorted(self.components()))}")
        return errors

    def logs(self) -> list[Path]:
        """Log files of the control plane's processes."""
        return [Path(r.log) for r in procs.records(self.run_dir)] + sorted(self.kwokctl.logs_dir().glob("*.log"))
