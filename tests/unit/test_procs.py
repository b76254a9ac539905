from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from resilience_tests import procs


def _sleeper(tmp_path: Path) -> procs.ProcessRecord:
    marker = str(tmp_path / "marker")
    return procs.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)", marker],
                       run_dir=tmp_path, marker=marker)


def test_started_process_is_recorded_running_and_stopped(tmp_path: Path) -> None:
    record = _sleeper(tmp_path)
    assert procs.is_running(record)
    assert [r.pid for r in procs.records(tmp_path)] == [record.pid]
    procs.stop(record, tmp_path)
    assert not procs.is_running(record)
    assert procs.records(tmp_path) == []


def test_a_pid_whose_command_line_lacks_the_marker_is_never_signalled(tmp_path: Path) -> None:
    record = _sleeper(tmp_path)
    try:
        stranger = replace(record, marker="/not/our/process")
        procs.stop(stranger, tmp_path)
        assert procs.is_running(record), "a process without our marker was signalled"
    finally:
        procs.stop(record, tmp_path)


def test_marker_must_appear_on_the_command_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="marker"):
        procs.start("x", ["true"], run_dir=tmp_path, marker="/absent")


def test_log_tail_returns_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("\n".join(str(i) for i in range(30)))
    assert procs.log_tail(log, 3) == "27\n28\n29"
    assert procs.log_tail(tmp_path / "missing.log") == ""


def test_a_start_survives_a_shell_exec_and_an_exit_at_start_is_seen(tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")
    # the way real nodes start: a shell that execs the program (its command line changes on the way)
    shell = procs.start("shell", ["/bin/sh", "-c", f'exec "{sys.executable}" -c "import time; time.sleep(60)" '
                                  f'{marker}', marker], run_dir=tmp_path, marker=marker)
    try:
        assert procs.survived_start(shell)
    finally:
        procs.stop(shell, tmp_path)
    dies = procs.start("dies", [sys.executable, "-c", "import sys; sys.exit(3)", marker + "-2"], run_dir=tmp_path,
                       marker=marker + "-2")
    assert not procs.survived_start(dies, timeout=1)
    stranger = replace(_sleeper(tmp_path), marker="/not/our/process")
    try:
        assert not procs.survived_start(stranger, timeout=1)  # another program at that pid: not ours, no wait
    finally:
        procs.stop(replace(stranger, marker=str(tmp_path / "marker")), tmp_path)
