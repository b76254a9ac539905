"""What every platform does on this machine: load generators of dead runs, and the kernel's netem.

Load generators run on this machine (Locust subprocesses, :mod:`resilience_tests.load.locust`). Each carries
the run it loads for and the cluster it loads: the names of those variables are defined here, once, and the
load layer sets them.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

RUN_ID_ENV = "RT_RUN_ID"  # the run a load generator loads for
CLUSTER_ENV = "RT_CLUSTER"  # the API server URL of that run's cluster
THIS_MACHINE = "this machine"
IN_CLUSTER = "in the cluster"


def stop_load(server: str, dead: Callable[[str], bool]) -> list[tuple[str, str]]:
    """Stop Locust processes on this machine loading for a run of the cluster at ``server`` that ``dead`` says
    is dead. Only those of this cluster (:data:`CLUSTER_ENV`): a run against another cluster keeps its lease
    there, so it would look dead from here. Returns (run id, what was done) for each process stopped."""
    import psutil

    stopped = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if "locust" not in " ".join(proc.info["cmdline"] or []):
                continue
            env = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        run = env.get(RUN_ID_ENV, "")
        if not run or env.get(CLUSTER_ENV, "") != server or not dead(run):
            continue
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
        stopped.append((run, f"stopped load generator pid {proc.pid} left running"))
    return stopped


def netem_available(*, sys_module: Path = Path("/sys/module/sch_netem"),
                    run: Callable[[list[str]], int] | None = None) -> bool:
    """Whether this machine's kernel has the netem qdisc: the ``sch_netem`` module is loaded (or built in), or
    ``modprobe -n`` says it could be loaded. Nothing is loaded or changed."""
    if sys_module.exists():
        return True
    if run is None:
        if shutil.which("modprobe") is None and not Path("/sbin/modprobe").exists():
            return False
        run = _returncode
    return run(["modprobe", "-n", "-q", "sch_netem"]) == 0


def _returncode(argv: list[str]) -> int:
    try:
        return subprocess.run(argv, capture_output=True, timeout=10, check=False,
                              env={"PATH": "/usr/sbin:/sbin:/usr/bin:/bin"}).returncode
    except (OSError, subprocess.TimeoutExpired):
        return 1
