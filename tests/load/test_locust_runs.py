"""Locust in its own processes against the demo app on 127.0.0.1 (no cluster): samples, workers, crashes."""

from __future__ import annotations

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
    with pytest.raises(LoadError, match=r"http://127.0.0.1:1/ does not answer"):
        check_target("http://127.0.0.1:1/", timeout=2)


def test_shape_and_spec_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="workers"):
        LoadSpec.model_validate({"shape": SHAPE, "workers": -1})
    assert parse_shape(SHAPE).duration == 4
