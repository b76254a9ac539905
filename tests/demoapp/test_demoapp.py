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


# --- CPU per request and /metrics (the autoscaling demo, deploy/demo-hpa.yaml) ---------------------------------

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """The samples of a Prometheus text exposition (0.0.4); each sample's metric has its HELP and TYPE lines."""
    samples: Samples = {}
    described: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("# "):
            keyword, name = line.split(" ", 3)[1:3]
            described.setdefault(name, set()).add(keyword)
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        pairs = frozenset((k, v.strip('"'))
                          for k, v in (kv.split("=", 1) for kv in labels.rstrip("}").split(",") if kv))
        assert described.get(name) == {"HELP", "TYPE"}, f"{name} has no HELP and TYPE before its samples"
        samples[(name, pairs)] = float(value)
    return samples


def _metrics(port: int) -> Samples:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
        return parse_metrics(resp.read().decode())
    finally:
        conn.close()


def _value(samples: Samples, name: str) -> float:
    return samples[(name, frozenset())]


def _by_code(samples: Samples) -> dict[int, int]:
    return {int(dict(labels)["code"]): int(v) for (name, labels), v in samples.items() if name == "demo_requests_total"}


def test_the_metrics_parser_reads_labels_and_refuses_undescribed_samples() -> None:
    text = ('# HELP x_total X.\n# TYPE x_total counter\nx_total{code="200"} 3\nx_total{code="500"} 1\n'
            "# HELP g G.\n# TYPE g gauge\ng 0.5\n")
    assert parse_metrics(text) == {("x_total", frozenset({("code", "200")})): 3.0,
                                   ("x_total", frozenset({("code", "500")})): 1.0, ("g", frozenset()): 0.5}
    with pytest.raises(AssertionError, match="no HELP and TYPE"):
        parse_metrics("g 1\n")


def _timed(port: int, path: str) -> float:
    started = time.monotonic()
    assert _get(port, path)[0] == 200
    return time.monotonic() - started


def test_cpu_per_request_burns_that_much_cpu_and_counts_it(start: Callable[..., App]) -> None:
    app = start("--cpu-per-request", "200ms")
    for path, cost in [("/", 0.2), ("/?cpu=300ms", 0.3), ("/?cpu=300ms&sleep=200ms", 0.3), ("/?cpu=0", 0.0)]:
        before = _value(_metrics(app.port), "demo_cpu_seconds_total")
        took = _timed(app.port, path)
        burnt = _value(_metrics(app.port), "demo_cpu_seconds_total") - before
        assert cost <= burnt <= cost + 0.05, (path, burnt)
        assert took >= cost + (0.2 if "sleep" in path else 0), (path, took)
    assert _by_code(_metrics(app.port)) == {200: 4}


def test_a_cpu_cost_out_of_range_is_refused_in_one_line(start: Callable[..., App], binary: Path) -> None:
    app = start()
    for bad, reason in [("5s", "5s is out of range: give 0 to 2s"), ("-1ms", "-1ms is out of range"),
                        ("lots", '"lots" is not a duration')]:
        status, body = _call(app.port, "GET", f"/?cpu={bad}")
        assert status == 400 and body.startswith(f"bad ?cpu=: {reason}") and body.count("\n") == 1, body
    assert _call(app.port, "GET", "/?cpu=1ms")[0] == 200
    assert _by_code(_metrics(app.port)) == {400: 3, 200: 1}
    proc = subprocess.run([str(binary), "--cpu-per-request", "3s"], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 1 and proc.stderr.strip().endswith("--cpu-per-request: 3s is out of range: give 0 to 2s")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_metrics_count_the_requests_sent_by_code_and_not_the_probes(start: Callable[..., App]) -> None:
    app = start("--misbehave", "errors", "--error-ratio", "0.5")
    sent: dict[int, int] = {}
    for i in range(60):
        code = _get(app.port)[0]
        sent[code] = sent.get(code, 0) + 1
        _get(app.port, ["/readyz", "/healthz", "/metrics"][i % 3])  # probes and scrapes are not requests
    assert set(sent) == {200, 500}, sent
    samples = _metrics(app.port)
    assert _by_code(samples) == sent
    assert _value(samples, "demo_requests_in_flight") == 0
    assert _value(samples, "demo_cpu_seconds_total") == 0


def test_requests_per_second_is_the_last_five_whole_seconds_and_decays_to_zero_when_idle(
        start: Callable[..., App]) -> None:
    app = start()
    assert _value(_metrics(app.port), "demo_requests_per_second") == 0
    time.sleep(1 - time.time() % 1 + 0.05)  # at the start of a second, so the 20 requests fall in one
    for _ in range(20):
        assert _get(app.port)[0] == 200
    second = int(time.time())
    assert time.time() - second < 0.9, "quick requests, all in one second"
    assert _value(_metrics(app.port), "demo_requests_per_second") == 0, "the second in progress is left out"
    time.sleep(second + 1.2 - time.time())
    assert _value(_metrics(app.port), "demo_requests_per_second") == 20 / 5, "a whole second: in the window"
    time.sleep(second + 5.5 - time.time())
    assert _value(_metrics(app.port), "demo_requests_per_second") == 20 / 5, "still in the window 5 s later"
    time.sleep(second + 6.3 - time.time())
    assert _value(_metrics(app.port), "demo_requests_per_second") == 0, "6 s later: out of the window"


def test_the_in_flight_gauge_counts_a_pending_request(start: Callable[..., App]) -> None:
    app = start()
    results: list[object] = []

    def slow() -> None:
        results.append(_get(app.port, "/?sleep=1s")[0])

    thread = threading.Thread(target=slow)
    thread.start()
    try:
        wait_until("the slow request in flight", lambda: _value(_metrics(app.port), "demo_requests_in_flight") == 1,
                   timeout=0.8, interval=0.05)
    finally:
        thread.join()
    assert results == [200]
    samples = _metrics(app.port)
    assert _value(samples, "demo_requests_in_flight") == 0 and _by_code(samples) == {200: 1}
