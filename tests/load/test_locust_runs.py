"""Locust in its own processes against the demo app on 127.0.0.1 (no cluster): samples, workers, crashes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from resilience_tests.load.locust import LoadError, LoadRun, LoadSpec, check_target
from resilience_tests.load.samples import totals
from resilience_tests.load.shapes import parse_shape
from tests.demoapp.test_demoapp import App, binary  # noqa: F401 - the fixture
from tests.load.recording import RECORDING_LOCUSTFILE, true_availability, truth_by_second

SHAPE = {"type": "constant", "users": 5, "duration": "4s"}


@pytest.fixture
def app(binary: Path) -> Iterator[App]:  # noqa: F811
    demo = App(binary, "--misbehave=errors", "--error-ratio=0.2")
    demo.wait_listening()
    yield demo
    demo.proc.send_signal(signal.SIGKILL)
    demo.proc.wait(timeout=10)


def spec(**extra: object) -> LoadSpec:
    return LoadSpec.model_validate({"shape": SHAPE, "wait": "50ms", **extra})


def test_a_single_process_run_streams_every_request_with_failure_reasons(app: App, tmp_path: Path) -> None:
    with LoadRun(spec(), f"http://127.0.0.1:{app.port}", tmp_path) as run:
        run.wait_running(timeout=30)
        run.wait_done(timeout=30)
    outcome = run.outcome()
    assert outcome.complete, outcome.problem
    t = totals(outcome.samples)
    assert t.requests > 100 and 0.1 < t.error_rate < 0.3, t
    assert set(t.reasons) == {"HTTP 500"} and t.failed[0].pod == "web-1"
    assert outcome.samples[0].t >= int(run.started) - 1


def test_requests_waiting_when_the_shape_ends_get_their_answers(binary: Path, tmp_path: Path) -> None:  # noqa: F811
    """Every user is inside a 2.5 s answer when the 3 s shape ends: each answer is still counted (Locust stops a
    user after its request, not in the middle of it), so the end of a load reads as no failure."""
    demo = App(binary)
    demo.wait_listening()
    try:
        slow = spec(shape={"type": "constant", "users": 3, "duration": "3s"}, path="/?sleep=2500ms", wait="0s")
        with LoadRun(slow, f"http://127.0.0.1:{demo.port}", tmp_path) as run:
            run.wait_running(timeout=30)
            run.wait_done(timeout=30)
    finally:
        demo.proc.send_signal(signal.SIGKILL)
        demo.proc.wait(timeout=10)
    outcome = run.outcome()
    t = totals(outcome.samples)
    assert outcome.complete and t.requests >= 6 and t.unanswered == 0 and not t.failed, t  # 3 and 3 without


def test_two_workers_report_through_the_master(app: App, tmp_path: Path) -> None:
    with LoadRun(spec(workers=2), f"http://127.0.0.1:{app.port}", tmp_path) as run:
        run.wait_running(timeout=60)
        run.wait_done(timeout=60)
    outcome = run.outcome()
    assert outcome.complete, outcome.problem
    assert totals(outcome.samples).requests > 100
    assert (tmp_path / "locust-worker-2.log").exists()


def test_locust_killed_mid_run_is_incomplete(app: App, tmp_path: Path) -> None:
    long = spec(shape={"type": "constant", "users": 2, "duration": "60s"})
    run = LoadRun(long, f"http://127.0.0.1:{app.port}", tmp_path)
    run.start()
    try:
        run.wait_running(timeout=30)
        os.killpg(run.procs[0].pid, signal.SIGKILL)
        time.sleep(0.5)
    finally:
        run.stop()
    outcome = run.outcome()
    assert not outcome.complete and "without finishing" in outcome.problem, outcome.problem


def test_a_locustfile_that_fails_at_start_is_reported(app: App, tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('this locustfile is broken')\n")
    with LoadRun(spec(locustfile=str(broken)), f"http://127.0.0.1:{app.port}", tmp_path / "run") as run, \
            pytest.raises(LoadError, match="Locust exited at start"):
        run.wait_running(timeout=30)


def test_an_unreachable_target_is_refused() -> None:
    with pytest.raises(LoadError, match=r"http://127.0.0.1:1/ does not answer \(refused for 1 s\)"):
        check_target("http://127.0.0.1:1/", timeout=2, refused_for=1)


def test_a_target_that_starts_answering_within_the_grace_is_accepted() -> None:
    """A Service is refused until kube-proxy programs it: a port that opens 1 s later passes the check."""
    import http.server
    import threading

    from resilience_tests.net import free_port

    port = free_port()
    server: list[http.server.HTTPServer] = []

    def open_later() -> None:
        time.sleep(1)
        server.append(http.server.HTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler))
        server[0].handle_request()

    opener = threading.Thread(target=open_later, daemon=True)
    opener.start()
    started = time.monotonic()
    check_target(f"http://127.0.0.1:{port}/", timeout=2, refused_for=10)
    assert 0.9 < time.monotonic() - started < 8
    opener.join(timeout=10)
    server[0].server_close()


def test_shape_and_spec_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="workers"):
        LoadSpec.model_validate({"shape": SHAPE, "workers": -1})
    assert parse_shape(SHAPE).duration == 4


@pytest.mark.parametrize("workers", [0, 2])
def test_a_frozen_target_counts_every_second_once_with_its_late_timeouts(
        binary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:  # noqa: F811
    """The target stops answering (SIGSTOP: connections accepted, nothing answered) for 6 s: users hang in
    their 2 s timeouts, seconds go by with nothing sent. Every second is written exactly once, each request
    in the second it was sent (fast successes and later timeouts together), and availability matches what
    Locust's own request events say, second by second."""
    from resilience_tests.sla.checks import evaluate, parse_check
    from resilience_tests.sla.evidence import Evidence

    demo = App(binary)
    demo.wait_listening()
    locustfile = tmp_path / "recording.py"
    locustfile.write_text(RECORDING_LOCUSTFILE)
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("RT_TEST_RECORD", str(record))
    run = LoadRun(spec(locustfile=str(locustfile), timeout="2s", workers=workers,
                       shape={"type": "constant", "users": 8, "duration": "16s"}),
                  f"http://127.0.0.1:{demo.port}", tmp_path / "run")
    try:
        run.start()
        run.wait_running(timeout=60)
        time.sleep(3)
        # Freeze in the middle of a second: its first half answers, its second half times out, whatever the load
        # on the machine (a freeze at the very start of a second left no second holding both).
        time.sleep((0.5 - time.time() % 1) % 1)
        demo.proc.send_signal(signal.SIGSTOP)
        frozen = time.time()
        time.sleep(6)
        demo.proc.send_signal(signal.SIGCONT)
        run.wait_done(timeout=60)
    finally:
        run.stop()
        demo.proc.send_signal(signal.SIGCONT)
        demo.stop()
    outcome = run.outcome()
    assert outcome.complete, outcome.problem
    lines = [json.loads(x) for x in run.samples_path.read_text().splitlines()]
    written = [x["t"] for x in lines if "t" in x and not x.get("amends")]
    assert len(written) == len(set(written)) and written == sorted(written), written  # each second once
    assert written == list(range(written[0], written[-1] + 1))  # and every second, empty ones included
    truth = truth_by_second([json.loads(x) for x in record.read_text().splitlines()])
    seconds = {s.t: s for s in outcome.samples}
    for second, (sent, failed, carried, carried_failed) in truth.items():
        s = seconds[second]
        assert (s.requests, s.failures, s.carried, s.carried_failed) == (sent, failed, carried, carried_failed), second
    mixed = [s for s in outcome.samples if s.failures and s.ok and s.t >= int(frozen) - 1]
    assert mixed and all("timeout" in s.reasons for s in mixed), "no second held both successes and timeouts"
    silent = [t for t, (sent, _, carried, _) in truth.items() if sent == 0 and carried > 0]
    assert len(silent) >= 2, truth

    first, last = min(truth), max(truth)
    up, judged = true_availability(truth)
    ev = Evidence(started=first, ended=last + 1, samples=outcome.samples, load_complete=True)
    (verdict,) = evaluate([parse_check({"type": "availability", "min": "99%"})], ev)
    assert not verdict.passed and verdict.measured == f"{up / judged:.2%} ({up}/{judged} s up)", verdict.message
    assert f"{len(silent)} s with nothing sent" in verdict.message, verdict.message


def test_locust_dies_with_a_runner_that_is_sigkilled(app: App, tmp_path: Path) -> None:
    """A run killed with SIGKILL cannot stop its load generators; the kernel must (parent-death signal)."""
    import subprocess
    import sys

    import psutil

    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from resilience_tests.load.locust import LoadRun, LoadSpec\n"
        "spec = LoadSpec.model_validate({'shape': {'type': 'constant', 'users': 2, 'duration': '120s'},"
        " 'workers': 1})\n"
        f"run = LoadRun(spec, 'http://127.0.0.1:{app.port}', Path({str(tmp_path)!r}))\n"
        "run.start()\n"
        "run.wait_running(timeout=60)\n"
        "print(' '.join(str(p.pid) for p in run.procs), flush=True)\n"
        "time.sleep(300)\n")
    runner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert runner.stdout is not None
        pids = [int(p) for p in runner.stdout.readline().split()]
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    finally:
        runner.kill()
        runner.wait(timeout=10)
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))
    _, alive = psutil.wait_procs(procs, timeout=15)
    assert not alive, f"Locust outlived its runner: {[p.pid for p in alive]}"
