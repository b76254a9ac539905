"""What SLA checks look at: load samples, the timeline, cluster snapshots and the run's windows.

Pure data; :mod:`resilience_tests.sla.checks` turns it into verdicts.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field

from resilience_tests.audit.model import Finding
from resilience_tests.cluster.timeline import PodRecord, Record, pod_records
from resilience_tests.errors import UsageError
from resilience_tests.labels import has_labels
from resilience_tests.load.samples import Sample


@dataclass(frozen=True)
class PodSnap:
    """One pod at snapshot time."""

    name: str
    node: str
    zone: str
    ready: bool
    terminating: bool = False
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """The target workload at one moment: its pods, desired replicas, and the zones that exist."""

    t: float
    pods: tuple[PodSnap, ...] = ()
    desired: int = 0
    zones: tuple[str, ...] = ()

    def ready_by_zone(self) -> Counter[str]:
        """Ready, not terminating replicas per zone (every known zone present, possibly 0)."""
        counts: Counter[str] = Counter({z: 0 for z in self.zones})
        for pod in self.pods:
            if pod.ready and not pod.terminating:
                counts[pod.zone or "unknown"] += 1
        return counts


@dataclass(frozen=True)
class Window:
    """A named span of the run, in epoch seconds."""

    name: str
    start: float
    end: float

    def __contains__(self, t: float) -> bool:
        return self.start <= t < self.end

    def describe(self, zero: float) -> str:
        """``faults (+3.0s..+21.4s)``: offsets from the zero of the fault schedule (``at: 0``)."""
        return f"{self.name} ({self.start - zero:+.1f}s..{self.end - zero:+.1f}s)"


@dataclass(frozen=True)
class Measure:
    """A verdict as numbers: the measured value and the threshold in one unit, for trends across runs.

    Attributes:
        value: what was measured (None: nothing could be, e.g. a workload that never recovered).
        threshold: the limit the value was judged against.
        unit: ``ratio`` (0..1), ``ms``, ``s``, ``req/s``, or what was counted (``requests``, ``records``...).
        at_most: True when the value passes at or below the threshold, False at or above it.
    """

    value: float | None
    threshold: float
    unit: str
    at_most: bool = True

    @property
    def margin(self) -> float | None:
        """Headroom to the threshold, in the unit: positive on the passing side, negative past it."""
        if self.value is None:
            return None
        return self.threshold - self.value if self.at_most else self.value - self.threshold


WINDOW_NAMES = ("whole", "before", "faults", "after")


def window_problem(spec: str, faults: list[tuple[int, str]] | tuple[tuple[int, str], ...]) -> str | None:
    """Why ``spec`` names no window of an experiment with ``faults`` ((index, type) pairs); None if it does."""
    if spec in WINDOW_NAMES:
        return None
    known = ", ".join(f"fault:{i} ({t})" for i, t in faults) or "no faults"
    if spec.startswith("fault:"):
        key = spec.split(":", 1)[1]
        if any(str(i) == key or t == key for i, t in faults):
            return None
        return f"window {spec!r} matches no fault of the experiment; faults: {known}"
    return f"unknown window {spec!r}; use {', '.join(WINDOW_NAMES)}, fault:N or fault:TYPE ({known})"


@dataclass(frozen=True)
class FaultRef:
    """Which fault of an experiment: its place in ``faults`` and its type. Shown as ``0:pod-kill``."""

    index: int
    type: str

    def __str__(self) -> str:
        return f"{self.index}:{self.type}"


@dataclass(frozen=True)
class FaultWindow:
    """When one fault was active (``end`` None: its revert never ran), what it touched and how its revert went.

    The one window type: the runner records it, the checks judge by it, the journal and reports show it.
    """

    index: int
    type: str
    start: float
    end: float | None
    error: str = ""
    touched: tuple[str, ...] = ()

    @property
    def ref(self) -> FaultRef:
        """The fault this window is of."""
        return FaultRef(self.index, self.type)

    @property
    def label(self) -> str:
        """The fault as shown: ``0:pod-kill``."""
        return str(self.ref)

    @property
    def reverted(self) -> bool:
        """Whether its revert ran and worked."""
        return self.end is not None and not self.error


@dataclass
class Evidence:
    """Everything a check may use.

    ``started``/``ended`` bound the whole run (load included); ``zero`` is the start of the fault
    schedule (``at: 0``), the origin of every offset a verdict shows (the steady-state window and the
    load's ramp have negative offsets). Without it, offsets count from ``started``.
    """

    started: float
    ended: float
    samples: list[Sample] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    faults: list[FaultWindow] = field(default_factory=list)
    snapshot: Snapshot | None = None
    selector: dict[str, str] = field(default_factory=dict)
    load_complete: bool | None = None  # None: the experiment ran no load
    load_problem: str = ""
    zero: float = 0.0
    audit: tuple[Finding, ...] | None = None  # the audit of the target, when a check asks for it
    audit_at: float = 0.0
    workload: str = ""  # the target workload, ``deployment/web`` ("" when the target is a selector)

    @property
    def origin(self) -> float:
        """The zero of every offset shown: the start of the fault schedule."""
        return self.zero or self.started

    def offset(self, t: float, digits: int = 2) -> str:
        """``+12.30s`` (or ``-4.00s`` before the schedule started)."""
        return f"{t - self.origin:+.{digits}f}s"

    def window(self, spec: str) -> Window:
        """Resolve a window name.

        ``whole`` (the run), ``before`` (start until the first fault), ``faults`` (first fault start until
        the last fault end), ``after`` (last fault end until the end), ``fault:N`` (fault number N, from 0)
        or ``fault:TYPE`` (the first fault of that type, e.g. ``fault:rollout``).
        """
        first = min((f.start for f in self.faults), default=self.ended)
        last = max((self._end(f) for f in self.faults), default=self.ended)
        if spec == "whole":
            return Window(spec, self.started, self.ended)
        if spec == "before":
            return Window(spec, self.started, first)
        if spec == "faults":
            return Window(spec, first, last)
        if spec == "after":
            return Window(spec, last, self.ended)
        if spec.startswith("fault:"):
            key = spec.split(":", 1)[1]
            chosen = [f for f in self.faults if (str(f.index) == key or f.type == key)]
            if chosen:
                return Window(spec, chosen[0].start, self._end(chosen[0]))
        # Windows are validated when the experiment is parsed; this is a fault that never started.
        raise UsageError(window_problem(spec, [(f.index, f.type) for f in self.faults])
                         or f"window {spec!r}: its fault did not run")

    def _end(self, fault: FaultWindow) -> float:
        """A fault's end; one never reverted lasts to the end of the run."""
        return fault.end if fault.end is not None else self.ended

    @functools.cached_property
    def pod_records(self) -> list[PodRecord]:
        """Pod records of the target workload (matching its selector), in time order (computed once)."""
        wanted = self.selector
        return [r for r in pod_records(self.records) if has_labels(r.state.labels, wanted)]
