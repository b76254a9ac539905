"""A run killed on this host is dead at once: its lease names a pid that is gone or is another process now.
And the client key a killed process wrote does not outlive it beyond the next cleanup."""

from __future__ import annotations

import base64
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from resilience_tests.cluster import client as clients
from resilience_tests.cluster.leases import dead_here, holder_identity, judge, pid_space

HOST = socket.gethostname()


def _exited_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_holder_of_this_host_whose_pid_is_gone_is_dead() -> None:
    pid = _exited_pid()
    assert dead_here(f"me@{HOST}/{pid}/{time.time() - 5:.2f}/{pid_space()}") == f"pid {pid} on this host is gone"
    assert dead_here(f"me@{HOST}/{pid}") == f"pid {pid} on this host is gone"  # an identity of an older version


def test_a_live_pid_with_another_start_time_is_another_process() -> None:
    mine = holder_identity()
    assert dead_here(mine) == ""  # this process: alive
    user_host, pid, started, space = mine.rsplit("/", 3)
    reused = f"{user_host}/{pid}/{float(started) - 3600:.2f}/{space}"
    assert "is another process now" in dead_here(reused)
    assert dead_here(f"{user_host}/{pid}") == ""  # no start time kept: the pid alone says alive


def test_another_host_or_another_pid_space_keeps_the_expiry_rule() -> None:
    pid = _exited_pid()
    assert dead_here(f"me@not-{HOST}/{pid}/1.00/{pid_space()}") == ""
    assert dead_here(f"me@{HOST}/{pid}/1.00/0123456789ab") == ""  # same name, another machine or container
    assert dead_here("free text written by someone else") == ""


def test_judge_says_dead_at_once_and_why() -> None:
    pid = _exited_pid()
    now = dt.datetime.now(dt.UTC)
    state = judge(f"me@{HOST}/{pid}/1.00/{pid_space()}", now, 30)
    assert not state.alive and state.describe() == f"dead: pid {pid} on this host is gone"
    assert judge(holder_identity(), now, 30).alive
    assert not judge(f"me@elsewhere/{pid}", now - dt.timedelta(seconds=31), 30).alive  # expired
    assert judge(f"me@elsewhere/{pid}", now - dt.timedelta(seconds=5), 30).alive


def test_a_sigkilled_process_is_judged_dead_at_once() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        holder = holder_identity(proc.pid)
        assert dead_here(holder) == ""
        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        while not dead_here(holder):  # not reaped yet: a zombie counts as gone
            assert time.monotonic() - killed < 1.0
            time.sleep(0.001)
        took = time.monotonic() - killed
    finally:
        proc.kill()
        proc.wait()
    assert took < 1.0


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: %(ca)s}}]
users: [{name: u, user: {client-certificate-data: %(cert)s, client-key-data: %(key)s}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""
SECRET = b"-----BEGIN EC PRIVATE KEY-----\nnot a real key, only its place matters\n-----END EC PRIVATE KEY-----\n"


def _kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    data = {name: base64.b64encode(name.encode() + b" " + SECRET).decode() for name in ("ca", "cert", "key")}
    path.write_text(KUBECONFIG % data)
    return path


def _tmp_holding_secret() -> list[Path]:
    found = []
    for path in Path(tempfile.gettempdir()).iterdir():
        try:
            if path.is_file() and path.stat().st_size < 4096 and SECRET in path.read_bytes():
                found.append(path)
        except OSError:
            continue
    return found


def test_the_client_key_goes_to_a_private_folder_not_to_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            ) -> None:
    monkeypatch.setenv("RESILIENCE_CACHE", str(tmp_path / "cache"))
    before = set(_tmp_holding_secret())
    api = clients.api_client(clients.ClusterRef(str(_kubeconfig(tmp_path))))
    folder = clients.key_folder()
    assert api.configuration.key_file is not None and Path(api.configuration.key_file).parent == folder
    assert Path(api.configuration.key_file).read_bytes() == b"key " + SECRET
    assert oct(folder.stat().st_mode & 0o777) == "0o700" and oct(folder.parent.stat().st_mode & 0o777) == "0o700"
    assert set(_tmp_holding_secret()) == before
    assert folder not in [p for p, _ in clients.dead_key_folders()]  # this process lives


def test_a_killed_process_leaves_its_key_folder_to_cleanup_and_a_normal_exit_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESILIENCE_CACHE", str(tmp_path / "cache"))
    kubeconfig = _kubeconfig(tmp_path)
    code = ("import os, signal, sys; from resilience_tests.cluster.client import ClusterRef, api_client, key_folder; "
            f"api_client(ClusterRef({str(kubeconfig)!r})); print(key_folder(), flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL) if sys.argv[1] == 'kill' else None")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    ended = subprocess.run([sys.executable, "-c", code, "exit"], capture_output=True, text=True, env=env,
                           check=True)
    assert not Path(ended.stdout.strip()).exists()  # removed at exit
    killed = subprocess.run([sys.executable, "-c", code, "kill"], capture_output=True, text=True, env=env)
    assert killed.returncode == -signal.SIGKILL
    left = Path(killed.stdout.strip())
    assert left.is_dir() and any(left.iterdir())  # SIGKILL: nothing ran at exit
    found = clients.remove_dead_key_folders(dry_run=True)
    assert [p for p, _ in found] == [left] and "is gone" in found[0][1] and left.exists()
    assert [p for p, _ in clients.remove_dead_key_folders()] == [left]
    assert not left.exists()
