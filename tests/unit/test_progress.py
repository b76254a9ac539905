"""The game-day status line: composed from the run's state, on the run's own clock."""

from __future__ import annotations

import threading
import time

from resilience_tests.experiment.progress import Progress, Status, compose
from resilience_tests.load.samples import Sample
from resilience_tests.waiting import Wait, current_waits, wait_until


def test_the_status_line_says_offset_phase_faults_wait_and_load() -> None:
    zero = 1_000.0
    status = Status(now=zero + 12.4, zero=zero, started=zero - 9, phase="faults", active={"1:node-drain": zero + 4},
                    waits=[Wait("drain of sim-a2", since=50.0, timeout=60)], waits_now=58.0,
                    last=Sample(t=int(zero) + 9, requests=45, failures=2, users=20))
    assert compose(status) == ("t+12s | faults | fault 1:node-drain active 8s | waiting for drain of sim-a2 "
                               "(8 s of 60 s) | load 20 users, 45 req/s, 2 failed (2 s ago)")


def test_before_any_fault_and_without_load_it_says_only_where_the_run_is() -> None:
    assert compose(Status(now=5.0, zero=None, started=2.0, phase="steady state", active={}, waits=[],
                          waits_now=0.0, last=None)) == "3s in | steady state"  # the zero is not fixed yet


def test_a_wait_in_progress_is_visible_from_another_thread_and_gone_after() -> None:
    seen: list[list[Wait]] = []
    release = threading.Event()
    worker = threading.Thread(target=lambda: wait_until("the rollout of web", release.is_set, timeout=10,
                                                        interval=0.01, max_interval=0.02))
    worker.start()
    wait_until("the wait registered", lambda: current_waits(), timeout=5, interval=0.01)
    seen.append(current_waits())
    release.set()
    worker.join()
    assert [w.what for w in seen[0]] == ["the rollout of web"] and seen[0][0].timeout == 10
    assert current_waits() == []


def test_progress_calls_show_every_interval_until_stopped() -> None:
    lines: list[str] = []
    progress = Progress(lines.append, interval=0.05).start()
    progress.set_zero(time.time())
    progress.set_phase("faults")
    progress.fault_started("0:scale")
    time.sleep(0.3)
    progress.stop()
    count = len(lines)
    time.sleep(0.15)
    assert count >= 2 and len(lines) == count  # stopped means stopped
    assert "faults | fault 0:scale active 0s" in lines[-1]
