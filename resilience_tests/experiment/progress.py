"""A status line once a second while an experiment runs, for the person watching a game day.

It says where the run is on its own clock (``t+12s``, the zero of ``at:``), which phase it is in,
which faults are active and for how long, what a wait is still waiting for, and what the load did
in its latest complete second (users, requests, failures, and how long ago that second was: a
second is complete only once every request sent in it has its answer, so a growing age means
requests are hanging).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from resilience_tests.load.samples import Sample, SampleReader
from resilience_tests.waiting import Wait, current_waits


@dataclass(frozen=True)
class Status:
    """What a status line is made of (pure data, so that composing it is testable)."""

    now: float
    zero: float | None  # None until the schedule's zero is fixed (the load runs, the steady window ended)
    started: float
    phase: str
    active: dict[str, float]  # fault label -> start (epoch)
    waits: list[Wait]
    waits_now: float  # monotonic clock of ``waits``
    last: Sample | None  # the load's latest complete second


def compose(status: Status) -> str:
    """The status line."""
    clock = f"t{status.now - status.zero:+.0f}s" if status.zero is not None else \
        f"{status.now - status.started:.0f}s in"
    parts = [clock, status.phase]
    for label, start in sorted(status.active.items(), key=lambda item: item[1]):
        parts.append(f"fault {label} active {status.now - start:.0f}s")
    if status.waits:
        wait = status.waits[-1]  # the innermost
        parts.append(f"waiting for {wait.what} ({status.waits_now - wait.since:.0f} s of {wait.timeout:.0f} s)")
    last = status.last
    if last is not None:
        behind = status.now - (last.t + 1)
        parts.append(f"load {last.users} users, {last.requests} req/s, {last.failures} failed "
                     f"({behind:.0f} s ago)")
    return " | ".join(parts)


class Progress:
    """Calls ``show`` with a fresh status line every ``interval`` seconds from :meth:`start` to :meth:`stop`.

    Offsets count from the zero of ``at:`` once :meth:`set_zero` fixed it; before that, from the start. The
    load's sample stream is read with a reader of its own (the runner's reader is not shared between threads).
    """

    def __init__(self, show: Callable[[str], None], *, interval: float = 1.0) -> None:
        self.show = show
        self.started = time.time()
        self.zero: float | None = None
        self.interval = interval
        self.phase = "starting"
        self.active: dict[str, float] = {}
        self._reader: SampleReader | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def follow_load(self, samples: Path) -> None:
        """Show the load from this sample stream on."""
        self._reader = SampleReader(samples)

    def set_zero(self, zero: float) -> None:
        with self._lock:
            self.zero = zero

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self.phase = phase

    def fault_started(self, label: str) -> None:
        with self._lock:
            self.active[label] = time.time()

    def fault_ended(self, label: str) -> None:
        with self._lock:
            self.active.pop(label, None)

    def status(self) -> Status:
        """The state now."""
        last = None
        if self._reader is not None:
            self._reader.poll()
            seconds = self._reader.samples
            last = seconds[-1] if seconds else None
        with self._lock:
            return Status(time.time(), self.zero, self.started, self.phase, dict(self.active), current_waits(),
                          time.monotonic(), last)

    def start(self) -> Progress:
        self._thread = threading.Thread(target=self._tick, daemon=True, name="progress")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.show(compose(self.status()))
            except Exception:
                continue
