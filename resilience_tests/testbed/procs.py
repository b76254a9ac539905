"""Supervision of the processes the local cluster starts itself.

Each process runs in its own session (detached from the caller), writes to a
log file, and is recorded in a pid file together with a marker that appears on
its command line. A pid is only ever signalled after checking that marker, so a
recycled pid belonging to someone else is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


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
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def is_ours(record: ProcessRecord) -> bool:
    """Return True if the pid still runs the process we started."""
    return record.marker in cmdline(record.pid)


def is_running(record: ProcessRecord) -> bool:
    """Return True if the process runs and is not a zombie."""
    if not is_ours(record):
        return False
    try:
        stat = Path(f"/proc/{record.pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


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
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            close_fds=True,
        )
    record = ProcessRecord(name=name, pid=proc.pid, marker=marker, log=str(log_path))
    # Until exec() completes the child still shows our command line; wait for its own.
    deadline = time.monotonic() + 5
    while proc.poll() is None and not is_ours(record) and time.monotonic() < deadline:
        time.sleep(0.01)
    pids = run_dir / "pids"
    pids.mkdir(parents=True, exist_ok=True)
    (pids / f"{name}.json").write_text(json.dumps(record.__dict__))
    return record


def survived_start(record: ProcessRecord, *, settle: float = 0.2, timeout: float = 5.0) -> bool:
    """Whether a process just started is still running after ``settle`` seconds.

    A process in the middle of exec() (a shell exec'ing the real program, slow on a cold page cache) shows an
    empty command line for a moment; that is neither ours nor gone, so it is waited out rather than taken for
    an exit."""
    time.sleep(settle)
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{record.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        if state == "Z":
            return False
        line = cmdline(record.pid)
        if record.marker in line:
            return True
        if line or time.monotonic() > deadline:
            return False  # another program now, or still nothing after the timeout
        time.sleep(0.05)


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
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and is_running(record):
                time.sleep(0.05)
            if not is_running(record):
                break
        _reap(record.pid)
    (run_dir / "pids" / f"{record.name}.json").unlink(missing_ok=True)


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
