"""The demo application's behaviours, on 127.0.0.1, without a cluster.

Each misbehaviour is shown next to the well-behaved default, so the SLA checks built on
them have targets that really fail and really pass.
"""

from __future__ import annotations

import http.client
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from resilience_tests.net import free_port
from resilience_tests.testbed.images import demoapp_binary
from resilience_tests.waiting import wait_until


@pytest.fixture(scope="module")
def binary() -> Path:
    return demoapp_binary()


def _get(port: int, path: str = "/", timeout: float = 5) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, dict(resp.getheaders())
    finally:
        conn.close()


class App:
    def __init__(self, binary: Path, *args: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([str(binary), "--port", str(self.port), *args],
                                     env={"POD_NAME": "web-1", "NODE_ZONE": "zone-a"},
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_listening(self) -> None:
        def up() -> bool:
            try:
                _get(self.port, "/healthz", timeout=1)
                return True
            except OSError:
                return False

        wait_until("demoapp listening", up, timeout=20, interval=0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def start(binary: Path) -> Iterator[Callable[..., App]]:
    apps: list[App] = []

    def _start(*args: str, wait: bool = True) -> App:
        app = App(binary, *args)
        apps.append(app)
        if wait:
            app.wait_listening()
        return app

    yield _start
    for app in apps:
        app.stop()


def _slow_request(port: int, results: list[object]) -> threading.Thread:
    def run() -> None:
        try:
            results.append(_get(port, "/?sleep=1500ms")[0])
        except OSError as exc:
            results.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.3)
    return thread


def test_answers_with_pod_and_zone_headers(start: Callable[..., App]) -> None:
    app = start()
    status, headers = _get(app.port)
    assert status == 200 and headers["X-Pod"] == "web-1" and headers["X-Zone"] == "zone-a"
    assert _get(app.port, "/readyz")[0] == 200


def test_graceful_shutdown_fails_readiness_keeps_serving_then_exits_0(start: Callable[..., App]) -> None:
    app = start("--drain", "2s")
    results: list[object] = []
    slow = _slow_request(app.port, results)
    app.proc.send_signal(signal.SIGTERM)
    wait_until("readiness failing", lambda: _get(app.port, "/readyz")[0] == 503, timeout=2, interval=0.02)
    assert _get(app.port)[0] == 200, "new requests are still served while draining"
    slow.join()
    assert results == [200], "the in-flight request finished"
    assert app.proc.wait(timeout=15) == 0


def test_exit_on_term_drops_in_flight_requests(start: Callable[..., App]) -> None:
    app = start("--misbehave", "exit-on-term")
    results: list[object] = []
    slow = _slow_request(app.port, results)
    app.proc.send_signal(signal.SIGTERM)
    slow.join()
    assert isinstance(results[0], OSError), results
    assert app.proc.wait(timeout=5) == 1


def test_ignore_term_keeps_running_until_killed(start: Callable[..., App]) -> None:
    app = start("--misbehave", "ignore-term")
    app.proc.send_signal(signal.SIGTERM)
    time.sleep(1)
    assert app.proc.poll() is None and _get(app.port, "/readyz")[0] == 200
    app.proc.send_signal(signal.SIGKILL)
    assert app.proc.wait(timeout=5) == -signal.SIGKILL


def test_ready_early_reports_ready_before_it_can_serve(start: Callable[..., App]) -> None:
    app = start("--misbehave", "ready-early", "--start-delay", "3s")
    assert _get(app.port, "/readyz")[0] == 200
    assert _get(app.port)[0] == 503
    wait_until("serving", lambda: _get(app.port)[0] == 200, timeout=10)


def test_slow_start_listens_only_after_the_delay(start: Callable[..., App]) -> None:
    started = time.monotonic()
    app = start("--misbehave", "slow-start", "--start-delay", "2s", wait=False)
    app.wait_listening()
    assert time.monotonic() - started >= 1.9


def test_error_ratio(start: Callable[..., App]) -> None:
    good = start()
    bad = start("--misbehave", "errors", "--error-ratio", "0.5")
    good_codes = [_get(good.port)[0] for _ in range(100)]
    bad_codes = [_get(bad.port)[0] for _ in range(100)]
    assert set(good_codes) == {200}
    assert 20 <= bad_codes.count(500) <= 80, bad_codes.count(500)


def test_unknown_misbehaviour_is_refused(binary: Path) -> None:
    proc = subprocess.run([str(binary), "--misbehave", "crash-loop"], capture_output=True, text=True, timeout=10)
    assert proc.returncode != 0 and 'unknown --misbehave "crash-loop"' in proc.stderr


def _call(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def test_stateful_mode_keeps_records_across_a_restart_and_exports_what_import_restores(binary: Path,
                                                                                      tmp_path: Path) -> None:
    import hashlib
    import json

    data = tmp_path / "data"
    app = App(binary, "--data", str(data))
    try:
        app.wait_listening()
        ids = [json.loads(_call(app.port, "POST", f"/records?value=v{i}")[1])["id"] for i in range(5)]
        assert ids == [1, 2, 3, 4, 5]
        assert _call(app.port, "GET", "/records?id=3") == (200, '{"id":3,"value":"v2"}\n')
        assert _call(app.port, "GET", "/records?id=9")[0] == 404
    finally:
        app.stop()
    # the checksum is computed here from the records as written, independently of the app
    expected = hashlib.sha256("".join(f"{i + 1}\tv{i}\n" for i in range(5)).encode()).hexdigest()
    with (data / "records.jsonl").open("a") as torn:
        torn.write('{"id": 6, "val')  # a write cut short by a crash: dropped, not fatal
    app = App(binary, "--data", str(data))
    try:
        app.wait_listening()
        assert json.loads(_call(app.port, "GET", "/records/checksum")[1]) == {"count": 5, "sha256": expected}
        exported = _call(app.port, "GET", "/records/export")[1]
        # an exec hook imports into the running app's folder: the app serves what it added, and goes on above it
        done = subprocess.run([str(binary), "import", "--data", str(data)], input='{"id": 7, "value": "x"}\n',
                              capture_output=True, text=True, check=True, timeout=30)
        assert json.loads(done.stdout) == {"imported": 1}
        assert json.loads(_call(app.port, "GET", "/records/count")[1]) == {"count": 6}
        assert json.loads(_call(app.port, "POST", "/records?value=after")[1])["id"] == 8
        assert _call(app.port, "GET", "/records?id=7") == (200, '{"id":7,"value":"x"}\n')
    finally:
        app.stop()
    assert len(exported.splitlines()) == 5
    # the commands an exec hook runs: import into an empty volume, twice (the second adds nothing)
    empty = tmp_path / "restored"
    for added in (5, 0):
        done = subprocess.run([str(binary), "import", "--data", str(empty)], input=exported, capture_output=True,
                              text=True, check=True, timeout=30)
        assert json.loads(done.stdout) == {"imported": added}
    done = subprocess.run([str(binary), "checksum", "--data", str(empty)], capture_output=True, text=True,
                          check=True, timeout=30)
    assert json.loads(done.stdout) == {"count": 5, "sha256": expected}
    bad = subprocess.run([str(binary), "import", "--data", str(empty)], input="not json\n", capture_output=True,
                         text=True, check=False, timeout=30)
    assert bad.returncode == 1 and "line 1" in bad.stderr
