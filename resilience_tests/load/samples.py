"""Per-second load samples: what the Locust listener writes and the SLA checks read.

Pure standard library (it is imported inside the Locust process too). One JSON
object per line and per second of wall-clock time::

    {"t": 1795777147, "requests": 412, "failures": 3,
     "reasons": {"ConnectionRefusedError": 3},
     "hist": {"12": 200, "13": 150, ...},          # latency bucket (ms) -> count
     "failed": [[1795777147.21, "GET /", "ConnectionRefusedError", ""], ...]}

Latencies go into HDR-style buckets: exact below 100 ms, then two significant
digits (100, 110, ... 990, 1000, 1100, ...), so a percentile is exact to its
bucket (at most 10 % above the true value). ``failed`` lists each failed request
(time, request name, reason, pod that answered if any), capped per second.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_FAILED_PER_SECOND = 200


def bucket(ms: float) -> int:
    """The histogram bucket of a latency in milliseconds (its upper bound, two significant digits)."""
    if ms < 100:
        return max(0, math.ceil(ms))
    digits = math.floor(math.log10(ms)) - 1
    step = 10**digits
    return int(math.ceil(ms / step) * step)


@dataclass
class Failure:
    """One failed request."""

    t: float
    name: str
    reason: str
    pod: str = ""


COUNTS = ("requests", "failures", "dropped_failures", "users", "open", "carried", "carried_failed",
          "carried_unanswered", "unanswered", "resolved")


@dataclass
class Sample:
    """One second of load: the requests *sent* in it, and what users were waiting on during it.

    Attributes:
        t: the second (epoch seconds, whole).
        requests, failures, reasons, hist, failed: requests sent in this second that got an answer
            (success or failure, a timeout included), whenever that answer came.
        users: most users active during the second (0 when the listener could not tell).
        open: most requests in flight at once during the second (sent in it or earlier).
        carried, carried_failed, carried_unanswered: requests sent in an earlier second and still
            waiting during this one, and how many of them ended failed or never got an answer.
        unanswered: requests sent in this second that had no answer when the second was written (Locust
            stopped the user while it waited, or the second was held too long); ``resolved`` of them
            got their answer later (counted in ``requests``). :attr:`pending` is the difference.
        amends: this line completes a second written earlier; readers merge it, never append it.
    """

    t: int
    requests: int = 0
    failures: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    hist: Counter[int] = field(default_factory=Counter)
    failed: list[Failure] = field(default_factory=list)
    dropped_failures: int = 0
    users: int = 0
    open: int = 0
    carried: int = 0
    carried_failed: int = 0
    carried_unanswered: int = 0
    unanswered: int = 0
    resolved: int = 0
    amends: bool = False

    def add(self, latency_ms: float, *, failed: bool = False, t: float = 0.0, name: str = "", reason: str = "",
            pod: str = "") -> None:
        """Count one request sent in this second, with its answer."""
        self.requests += 1
        self.hist[bucket(latency_ms)] += 1
        if failed:
            self.failures += 1
            self.reasons[reason] += 1
            if len(self.failed) < MAX_FAILED_PER_SECOND:
                self.failed.append(Failure(t, name, reason, pod))
            else:
                self.dropped_failures += 1

    def carry(self, *, failed: bool = False, answered: bool = True) -> None:
        """Count one request sent earlier that was still waiting during this second."""
        self.carried += 1
        self.carried_failed += int(answered and failed)
        self.carried_unanswered += int(not answered)

    def merge(self, other: Sample) -> None:
        """Add another part of the same second: another worker's, or a late answer (``amends``)."""
        self.requests += other.requests
        self.failures += other.failures
        self.reasons.update(other.reasons)
        self.hist.update(other.hist)
        room = MAX_FAILED_PER_SECOND - len(self.failed)
        self.failed.extend(other.failed[:room])
        self.dropped_failures += other.dropped_failures + max(0, len(other.failed) - room)
        self.users = max(self.users, other.users)
        self.open += other.open
        self.carried += other.carried
        self.carried_failed += other.carried_failed
        self.carried_unanswered += other.carried_unanswered
        self.unanswered += other.unanswered
        self.resolved += other.resolved

    @property
    def pending(self) -> int:
        """Requests sent in this second that never got an answer."""
        return max(0, self.unanswered - self.resolved)

    @property
    def ok(self) -> int:
        """Requests sent in this second that succeeded."""
        return self.requests - self.failures

    @property
    def state(self) -> str:
        """``up``, ``down`` or ``idle`` (nobody sent or waited on a request during the second).

        Users who sent a request in the second or were still waiting on one count; a second is up when
        some of their requests succeeded and fewer than half of those answered failed. A second in which
        users only waited on requests that never got an answer, or on requests that then failed, is down.
        """
        answered = self.requests + self.carried - self.carried_unanswered
        ok = self.ok + self.carried - self.carried_failed - self.carried_unanswered
        failed = answered - ok
        if answered == 0:
            return "down" if self.pending or self.carried_unanswered else "idle"
        return "up" if ok > 0 and failed * 2 < answered else "down"

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "t": self.t, "requests": self.requests, "failures": self.failures, "reasons": dict(self.reasons),
            "hist": {str(k): v for k, v in sorted(self.hist.items())},
            "failed": [[f.t, f.name, f.reason, f.pod] for f in self.failed],
            "dropped_failures": self.dropped_failures, "users": self.users, "open": self.open,
            "carried": self.carried, "carried_failed": self.carried_failed,
            "carried_unanswered": self.carried_unanswered, "unanswered": self.unanswered,
            "resolved": self.resolved}
        if self.amends:
            data["amends"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sample:
        failed = [Failure(float(f[0]), str(f[1]), str(f[2]), str(f[3]) if len(f) > 3 else "")
                  for f in data.get("failed") or []]
        ints = {k: int(data.get(k, 0)) for k in COUNTS}
        return cls(t=int(data["t"]), reasons=Counter({str(k): int(v) for k, v in (data.get("reasons") or {}).items()}),
                   hist=Counter({int(k): int(v) for k, v in (data.get("hist") or {}).items()}),
                   failed=failed, amends=bool(data.get("amends", False)), **ints)


@dataclass(frozen=True)
class Totals:
    """The samples of a window summed up, every second of the load inside the window counted.

    Attributes:
        requests, failures, hist, reasons, failed: requests sent inside the window, with their answers.
        seconds: seconds of the window during which the load ran (a second with no request counts too).
        up, down, idle: those seconds by :attr:`Sample.state`.
        missing: seconds inside the load with no sample at all (a broken stream); judged down.
        silent: seconds in which nothing was sent because every active user was waiting on an answer.
        carried_in, carried_in_failed, carried_in_unanswered: requests sent before the window and still
            waiting at its start, and how many of those failed or never got an answer.
        in_flight_at_end: requests sent before the window's end and still waiting at its end (their
            answers, even those that came after the end, are counted in the window).
        unanswered: requests sent in the window that never got an answer.
        down_seconds: the seconds judged down (missing ones included), in order.
    """

    requests: int
    failures: int
    seconds: int
    hist: Counter[int]
    reasons: Counter[str]
    failed: tuple[Failure, ...]
    up: int = 0
    down: int = 0
    idle: int = 0
    missing: int = 0
    silent: int = 0
    carried_in: int = 0
    carried_in_failed: int = 0
    carried_in_unanswered: int = 0
    in_flight_at_end: int = 0
    unanswered: int = 0
    down_seconds: tuple[int, ...] = ()

    @property
    def ok(self) -> int:
        return self.requests - self.failures

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def throughput(self) -> float:
        """Successful requests per second of the window."""
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def availability(self) -> float:
        """Share of the judged seconds (up, down and missing; idle ones are not judged) that were up."""
        judged = self.up + self.down
        return self.up / judged if judged else 0.0

    def percentile(self, p: float) -> float | None:
        """The latency (ms, bucket upper bound) below which ``p`` percent of requests fall."""
        return percentile(self.hist, p)


def percentile(hist: Counter[int], p: float) -> float | None:
    """Percentile ``p`` (0-100) of a bucket histogram; None when it is empty."""
    total = sum(hist.values())
    if not total:
        return None
    rank = max(1, math.ceil(total * p / 100))
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= rank:
            return float(value)
    return float(max(hist))


def by_second(samples: Iterable[Sample]) -> dict[int, Sample]:
    """One sample per second: parts of the same second (late answers, workers) merged, in time order."""
    merged: dict[int, Sample] = {}
    for sample in samples:
        mine = merged.get(sample.t)
        if mine is None:
            mine = merged[sample.t] = Sample(sample.t)
        mine.merge(sample)
    return dict(sorted(merged.items()))


def totals(samples: Iterable[Sample], start: float | None = None, end: float | None = None,
           through: float | None = None) -> Totals:
    """Sum the seconds that overlap [start, end) (each bound optional), from the load's first second to its
    last (or to ``through``, the moment the load is known to have run until): a second without requests
    counts, and a second with no sample inside the load counts as missing."""
    seconds = by_second(samples)
    if not seconds:
        return Totals(0, 0, 0, Counter(), Counter(), ())
    first = next(iter(seconds))
    last = math.floor(through) if through is not None else next(reversed(seconds))
    lo = first if start is None else max(first, math.floor(start))
    hi = last if end is None else min(last, math.ceil(end) - 1)
    hist: Counter[int] = Counter()
    reasons: Counter[str] = Counter()
    failed: list[Failure] = []
    counts = Counter[str]()
    down: list[int] = []
    requests = failures = silent = unanswered = 0
    for second in range(lo, hi + 1):
        s = seconds.get(second)
        if s is None:
            counts["missing"] += 1
            down.append(second)
            continue
        state = s.state
        counts[state] += 1
        if state == "down":
            down.append(second)
        requests += s.requests
        failures += s.failures
        unanswered += s.pending
        silent += int(s.requests == 0 and s.carried > 0)
        hist.update(s.hist)
        reasons.update(s.reasons)
        failed.extend(s.failed)
    at_end = seconds.get(math.floor(end)) if end is not None else None
    at_start = seconds.get(lo) if start is not None else None
    carried_in = (at_start.carried, at_start.carried_failed, at_start.carried_unanswered) if at_start else (0, 0, 0)
    return Totals(requests, failures, max(0, hi - lo + 1), hist, reasons, tuple(failed), up=counts["up"],
                  down=counts["down"] + counts["missing"], idle=counts["idle"], missing=counts["missing"],
                  silent=silent, carried_in=carried_in[0], carried_in_failed=carried_in[1],
                  carried_in_unanswered=carried_in[2], in_flight_at_end=at_end.carried if at_end is not None else 0,
                  unanswered=unanswered, down_seconds=tuple(down))


class SampleReader:
    """Reads a samples file as it grows (complete lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._seconds: dict[int, Sample] = {}
        self.done: dict[str, object] | None = None  # the listener's last line when Locust quit

    @property
    def samples(self) -> list[Sample]:
        """One sample per second so far, in time order (late parts of a second merged into it)."""
        return [self._seconds[t] for t in sorted(self._seconds)]

    @property
    def last_second(self) -> int | None:
        """The latest second written so far (every earlier one is final too)."""
        return max(self._seconds) if self._seconds else None

    def poll(self) -> list[Sample]:
        """Read what was appended since the last call; return the lines read (parts of a second included)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        new = []
        for line in lines:
            if line.strip():
                data = json.loads(line)
                if "done" in data:
                    self.done = data
                else:
                    sample = Sample.from_json(data)
                    new.append(sample)
                    mine = self._seconds.get(sample.t)
                    if mine is None:
                        self._seconds[sample.t] = mine = Sample(sample.t)
                    mine.merge(sample)
        return new

