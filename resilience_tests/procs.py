"""Supervision of the processes the package starts itself: the local cluster's and Locust's.

Each long-lived process runs in its own session (detached from the caller), writes to a log file, and is
recorded in a pid file together with a marker that appears on its command line. A pid is only ever signalled
after checking that marker, so a recycled pid belonging to someone else is never touched. Process facts come
from psutil; every wait goes through :func:`resilience_tests.waiting.wait_until`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from resilience_tests.errors import TestbedError, WaitTimeoutError
from resilience_tests.waiting import wait_until


@dataclass(frozen=True)
class ProcessRecord:
    """A started process: its name, pid, marker and log file."""

    name: str
    pid: int
    marker: str
    log: str


def cmdline(pid: int) -> str:
    """The command line of ``pid``, space-joined ('' if it is gone)."""
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return ""


def _zombie(pid: int) -> bool | None:
    """Whether ``pid`` is a zombie (None if it is gone)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except (psutil.Error, OSError):
        return None


def is_ours(record: ProcessRecord) -> bool:
    """Return True if the pid still runs the process we started."""
    return record.marker in cmdline(record.pid)


def is_running(record: ProcessRecord) -> bool:
    """Return True if the process runs and is not a zombie."""
    return is_ours(record) and _zombie(record.pid) is False


def _until(what: str, probe: Callable[[], bool], timeout: float, interval: float) -> bool:
    """Wait for ``probe``; False once ``timeout`` passed (these waits are best effort, not errors)."""
    try:
        wait_until(what, probe, timeout=timeout, interval=interval, max_interval=max(interval, 0.1))
    except WaitTimeoutError:
        return False
    return True


def start(
    name: str, argv: list[str], *, run_dir: Path, marker: str, env: dict[str, str] | None = None
) -> ProcessRecord:
    """Start ``argv`` detached, log to ``run_dir/logs/name.log``, record its pid.

    ``marker`` must be a string that appears in ``argv`` (typically a path
    inside ``run_dir``) so that the process can be recognised later.
    """
    if not any(marker in arg for arg in argv):
        raise ValueError(f"marker {marker!r} does not appear in the command line of {name}")
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    proc = spawn(argv, log_path, env=env, append=True)
    record = ProcessRecord(name=name, pid=proc.pid, marker=marker, log=str(log_path))
    # Until exec() completes the child still shows our command line; wait for its own.
    _until(f"{name} to exec", lambda: proc.poll() is not None or is_ours(record), 5, 0.01)
    pids = run_dir / "pids"
    pids.mkdir(parents=True, exist_ok=True)
    (pids / f"{name}.json").write_text(json.dumps(record.__dict__))
    return record


def spawn(argv: list[str], log: Path, *, env: dict[str, str] | None = None, cwd: Path | None = None,
          append: bool = False) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own (a Ctrl-C at the terminal does not reach it; :func:`stop_groups`
    ends it with its children), its output to ``log``."""
    with open(log, "ab" if append else "wb") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env, cwd=cwd, close_fds=True)


def survived_start(record: ProcessRecord, *, settle: float = 0.2, timeout: float = 5.0) -> bool:
    """Whether a process just started is still running after ``settle`` seconds.

    A process in the middle of exec() (a shell exec'ing the real program, slow on a cold page cache) shows an
    empty command line for a moment; that is neither ours nor gone, so it is waited out rather than taken for
    an exit."""
    time.sleep(settle)  # the time a crash at start takes to show: nothing to wait for but the clock

    def settled() -> bool:  # ours, gone, a zombie, or another program
        return _zombie(record.pid) is not False or bool(cmdline(record.pid))

    _until(f"{record.name} to show its command line", settled, timeout, 0.05)
    return is_running(record)


def records(run_dir: Path) -> list[ProcessRecord]:
    """Return the process records found under ``run_dir``."""
    found = []
    for path in sorted((run_dir / "pids").glob("*.json")):
        try:
            found.append(ProcessRecord(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            path.unlink(missing_ok=True)
    return found


def stop(record: ProcessRecord, run_dir: Path, *, grace: float = 5.0) -> None:
    """Stop a recorded process (SIGTERM, then SIGKILL after ``grace`` s)."""
    if is_ours(record):
        for sig, wait in ((signal.SIGCONT, 0.0), (signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
            try:
                os.kill(record.pid, sig)
            except ProcessLookupError:
                break
            exited = _until(f"{record.name} to exit", lambda: not is_running(record), wait, 0.05) if wait \
                else not is_running(record)
            if exited:
                break
        _reap(record.pid)
    (run_dir / "pids" / f"{record.name}.json").unlink(missing_ok=True)


def stop_groups(children: list[subprocess.Popen[bytes]], *, grace: float) -> None:
    """Stop children started in sessions of their own, with everything they started: SIGTERM to every process
    group at once (a parent may wait for its children), SIGKILL to the groups still there ``grace`` seconds
    later; reaps the children."""
    for child in children:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=5)


def rss_bytes(pids: Iterable[int]) -> int:
    """Resident memory of ``pids``, summed (processes gone meanwhile count 0)."""
    total = 0
    for pid in set(pids):
        with contextlib.suppress(psutil.Error, OSError):
            total += psutil.Process(pid).memory_info().rss
    return total


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def log_tail(path: str | Path, lines: int = 15) -> str:
    """Return the last ``lines`` lines of a log file (empty if unreadable)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if there is no such process (or only
    its zombie); -1 if it exists but may not be inspected."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped by its parent: gone all the same
            return None
        return float(process.create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.Error:  # exists, but may not be inspected: assume it is the one we look for
        return -1.0


SAME_START = 1.0
"""Start times this close are one process (the clock behind them is read in whole seconds at boot)."""


def process_gone(pid: int, started: float | None) -> str:
    """Why process ``pid`` (started at ``started``, None: unknown) is no longer running; '' if it still is."""
    now = process_started(pid)
    if now is None:
        return f"pid {pid} on this host is gone"
    if started is not None and now >= 0 and abs(now - started) > SAME_START:
        return f"pid {pid} on this host is another process now (started {now - started:+.0f} s after the run's)"
    return ""


def wait_started(what: str, check: Callable[[], bool], record: ProcessRecord, *, timeout: float) -> None:
    """Wait until ``check()`` holds for a process just started; raise TestbedError with its log's tail if it exits
    first or ``timeout`` passes."""
    def ready() -> bool:
        if not is_running(record):
            raise TestbedError(f"{record.name} exited at start:\n{log_tail(Path(record.log))}")
        return check()

    try:
        wait_until(what, ready, timeout=timeout, interval=0.5)
    except WaitTimeoutError:
        raise TestbedError(f"{what}: not after {timeout:.0f} s\n{log_tail(Path(record.log))}") from None
