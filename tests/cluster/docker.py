"""A private Docker engine for tests: its own socket, data and state in a temporary folder, no iptables rules,
no bridge (containers get no network), stopped and removed afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from resilience_tests.testbed.realnodes import RealNodes
from resilience_tests.waiting import wait_until


@dataclass(frozen=True)
class DockerEngine:
    """A running engine: ``env`` points the docker CLI at it."""

    folder: Path
    host: str
    pid: int

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, timeout=120,
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def state(self, container: str) -> str:
        """``running``, ``paused``, ... of a container."""
        return self.docker("inspect", "-f", "{{.State.Status}}", container).stdout.strip()


@contextlib.contextmanager
def docker_engine() -> Iterator[DockerEngine]:
    """Start dockerd for the duration of the block (needs root and Debian's docker.io)."""
    folder = Path(tempfile.mkdtemp(prefix="rt-docker-", dir="/tmp"))
    host = f"unix://{folder}/docker.sock"
    log = open(folder / "dockerd.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        ["dockerd", "--host", host, "--data-root", str(folder / "data"), "--exec-root", str(folder / "exec"),
         "--pidfile", str(folder / "docker.pid"), "--iptables=false", "--ip6tables=false", "--bridge=none",
         "--ip-masq=false", "--userland-proxy=false"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    engine = DockerEngine(folder, host, proc.pid)
    try:
        wait_until("dockerd answering", lambda: (proc.poll() is None and engine.docker("info", check=False)
                   .returncode == 0) or proc.poll() is not None, timeout=60, interval=0.2)
        if proc.poll() is not None:
            raise AssertionError(f"dockerd exited: {(folder / 'dockerd.log').read_text()[-2000:]}")
        yield engine
    finally:
        with contextlib.suppress(Exception):
            ids = engine.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                engine.docker("rm", "-f", *ids, check=False)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        time.sleep(0.5)  # its containerd follows it down
        log.close()
        RealNodes._unmount_under(folder)  # the containers' overlay and network-namespace mounts
        shutil.rmtree(folder, ignore_errors=True)

