"""Two reports built at once take turns on the history file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from resilience_tests.reporting.html import ReportError, history_lock


def test_a_second_report_waits_for_the_history_and_gives_up_in_one_line(tmp_path: Path) -> None:
    history = tmp_path / "reports" / "history.jsonl"
    with history_lock(history), pytest.raises(ReportError, match=r"another report has been writing .* for 1 s"), \
            history_lock(history, timeout=1):
        pass
    with history_lock(history, timeout=1):
        pass  # free again once the first one is done


def test_the_second_report_goes_on_once_the_first_is_done(tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    order: list[str] = []
    first_holds = threading.Event()

    def first() -> None:
        with history_lock(history):
            first_holds.set()
            time.sleep(0.5)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    first_holds.wait(5)
    with history_lock(history, timeout=10):
        order.append("second writes")
    thread.join()
    assert order == ["first done", "second writes"]
