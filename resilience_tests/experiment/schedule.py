"""The fault schedule: which fault is injected or reverted when, on an injected clock.

The schedule knows the faults only by their :class:`FaultRef` and their ``at``/``duration``; what injecting and
reverting means is the :class:`Stage`'s business (the runner's marks, phases and windows, or a test's stand-ins).
Its rules:

* steps run in time order; at the same time reverts come before injects, then faults in experiment order;
* a fault's revert is registered on the caller's :class:`contextlib.ExitStack` *before* it is injected, so a
  fault that fails half-way, a later fault that fails, an exception or Ctrl-C anywhere still reverts every fault
  that was started (newest first, when the caller closes the stack), and a fault whose inject failed stops the
  schedule: later faults are not injected;
* a fault is reverted at most once (at ``at + duration`` or when the stack closes).

Each fault also gets its own :class:`FaultEvents`: what it records, from any thread (a ``pod-kill`` with
``every:`` kills later rounds from its own), is recorded under that fault and no other.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from resilience_tests.cluster.timeline import ActionData, Scalar
from resilience_tests.sla.evidence import FaultRef

__all__ = ["TOUCH_KEYS", "Clock", "FaultEvents", "FaultRef", "Mark", "Schedule", "Slot", "Stage", "Step",
           "SystemClock"]

TOUCH_KEYS = ("pod", "node", "nodes", "workload", "action", "zone")
"""Keys of an action's details that say what it touched (listed in the journal's ``touched``)."""


class Clock(Protocol):
    """Time for the schedule: a monotonic ``now()`` and a wait that can be cut short."""

    def now(self) -> float:
        """Seconds on a monotonic scale (only differences mean something)."""

    def wait_until(self, deadline: float, stop: threading.Event | None = None) -> bool:
        """Block until ``now() >= deadline`` (at once if it already is); True if ``stop`` was set first."""


class SystemClock:
    """The real clock: :func:`time.monotonic` and an :class:`threading.Event` wait (Ctrl-C reaches it)."""

    def now(self) -> float:
        """:func:`time.monotonic`."""
        return time.monotonic()

    def wait_until(self, deadline: float, stop: threading.Event | None = None) -> bool:
        """Wait on ``stop`` (or a private event) until ``deadline``."""
        left = deadline - self.now()
        event = stop or threading.Event()
        if left <= 0:
            return event.is_set()
        return event.wait(left)


class Mark(Protocol):
    """Where a fault's records go (:meth:`resilience_tests.cluster.timeline.Timeline.mark`)."""

    def __call__(self, kind: str, name: str, change: str, *, data: ActionData | None = None,
                 **details: Scalar) -> object: ...


class FaultEvents:
    """One fault's own events: what it records and when it first acted, under its :class:`FaultRef`.

    Given to the fault (as its context's ``record`` and ``acts``) when it is built, so a record made from a
    fault's background thread is that fault's, whatever else is being injected at the time. Thread-safe.

    Args:
        ref: the fault.
        mark: where its records go (None: nowhere, as when only planning).
        say: where its progress lines go (prefixed with the fault).
        wall: the wall clock of :attr:`acted` (epoch seconds).
    """

    def __init__(self, ref: FaultRef, mark: Mark | None = None, *, say: Callable[[str], None] = lambda line: None,
                 wall: Callable[[], float] = time.time) -> None:
        self.ref = ref
        self._mark, self._say, self._wall = mark, say, wall
        self._lock = threading.Lock()
        self._touched: list[str] = []
        self._acted: float | None = None

    def record(self, kind: str, data: Mapping[str, object] | ActionData) -> None:
        """Record one action of this fault: a mapping of details (shown as text), or a typed value."""
        typed = None if isinstance(data, Mapping) else data
        details = {k: str(v) for k, v in data.items()} if isinstance(data, Mapping) else {}
        what = ", ".join(f"{k} {v}" for k, v in sorted(details.items()) if k in TOUCH_KEYS)
        with self._lock:
            self._touched.append(f"{kind}: {what}" if what else kind)
        if self._mark is not None:
            self._mark("action", kind, "done", data=typed, fault=str(self.ref), **details)

    def acts(self) -> None:
        """The fault is about to do what the workload feels: its window starts now (the first call counts)."""
        with self._lock:
            if self._acted is None:
                self._acted = self._wall()

    def say(self, line: str) -> None:
        """A progress line about this fault."""
        self._say(f"{self.ref}: {line}")

    @property
    def acted(self) -> float | None:
        """When the fault first said it acts (None: it never did)."""
        with self._lock:
            return self._acted

    @property
    def touched(self) -> tuple[str, ...]:
        """What its actions touched, in order (``pod-kill: node sim-a1, pod web-1``)."""
        with self._lock:
            return tuple(self._touched)


@dataclass(frozen=True)
class Slot:
    """One fault on the schedule: when it starts (seconds from ``at: 0``) and how long it is held (None: until
    the end of the run)."""

    ref: FaultRef
    at: float
    duration: float | None = None


@dataclass(frozen=True)
class Step:
    """One thing the schedule does: inject or revert a fault at an offset from ``at: 0``."""

    at: float
    ref: FaultRef
    action: Literal["inject", "revert"]


class Stage(Protocol):
    """What the schedule drives: the faults themselves, by reference."""

    def inject(self, ref: FaultRef) -> None:
        """Inject the fault (its revert is already registered)."""

    def revert(self, ref: FaultRef) -> None:
        """Revert the fault (called at most once per injected fault)."""


class Schedule:
    """The faults of one run in the order and at the times they are injected and reverted.

    Args:
        slots: the faults with their times.
        clock: the clock it waits on.
    """

    def __init__(self, slots: Sequence[Slot], clock: Clock | None = None) -> None:
        self.slots = tuple(slots)
        self.clock: Clock = clock or SystemClock()
        steps = [Step(s.at, s.ref, "inject") for s in self.slots]
        steps += [Step(s.at + s.duration, s.ref, "revert") for s in self.slots if s.duration is not None]
        self.steps = tuple(sorted(steps, key=lambda s: (s.at, s.action == "inject", s.ref.index)))

    def play(self, stage: Stage, zero: float, reverts: contextlib.ExitStack,
             stop: threading.Event | None = None) -> None:
        """Run every step at ``zero + at`` (``zero`` on the clock's scale), registering each revert on
        ``reverts`` before its inject. An exception from an inject stops the schedule (the caller closes
        ``reverts``); ``stop`` set ends it early, leaving the rest to the stack."""
        reverted: set[FaultRef] = set()

        def revert_once(ref: FaultRef) -> None:
            if ref not in reverted:
                reverted.add(ref)
                stage.revert(ref)

        for step in self.steps:
            if self.clock.wait_until(zero + step.at, stop):
                return
            if step.action == "inject":
                reverts.callback(revert_once, step.ref)
                stage.inject(step.ref)
            else:
                revert_once(step.ref)
