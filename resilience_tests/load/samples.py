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


@dataclass
class Sample:
    """One second of load."""

    t: int
    requests: int = 0
    failures: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    hist: Counter[int] = field(default_factory=Counter)
    failed: list[Failure] = field(default_factory=list)
    dropped_failures: int = 0

    def add(self, latency_ms: float, *, failed: bool = False, t: float = 0.0, name: str = "", reason: str = "",
            pod: str = "") -> None:
        """Count one request."""
        self.requests += 1
        self.hist[bucket(latency_ms)] += 1
        if failed:
            self.failures += 1
            self.reasons[reason] += 1
            if len(self.failed) < MAX_FAILED_PER_SECOND:
                self.failed.append(Failure(t, name, reason, pod))
            else:
                self.dropped_failures += 1

    def merge(self, other: Sample) -> None:
        """Add another sample of the same second (another worker's)."""
        self.requests += other.requests
        self.failures += other.failures
        self.reasons.update(other.reasons)
        self.hist.update(other.hist)
        room = MAX_FAILED_PER_SECOND - len(self.failed)
        self.failed.extend(other.failed[:room])
        self.dropped_failures += other.dropped_failures + max(0, len(other.failed) - room)

    def to_json(self) -> dict[str, object]:
        return {"t": self.t, "requests": self.requests, "failures": self.failures, "reasons": dict(self.reasons),
                "hist": {str(k): v for k, v in sorted(self.hist.items())},
                "failed": [[f.t, f.name, f.reason, f.pod] for f in self.failed],
                "dropped_failures": self.dropped_failures}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sample:
        failed = [Failure(float(f[0]), str(f[1]), str(f[2]), str(f[3]) if len(f) > 3 else "")
                  for f in data.get("failed") or []]
        return cls(t=int(data["t"]), requests=int(data.get("requests", 0)), failures=int(data.get("failures", 0)),
                   reasons=Counter({str(k): int(v) for k, v in (data.get("reasons") or {}).items()}),
                   hist=Counter({int(k): int(v) for k, v in (data.get("hist") or {}).items()}),
                   failed=failed, dropped_failures=int(data.get("dropped_failures", 0)))


@dataclass(frozen=True)
class Totals:
    """Samples of a window summed up."""

    requests: int
    failures: int
    seconds: int
    hist: Counter[int]
    reasons: Counter[str]
    failed: tuple[Failure, ...]

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

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


def totals(samples: Iterable[Sample], start: float | None = None, end: float | None = None) -> Totals:
    """Sum the samples whose second lies in [start, end) (each bound optional)."""
    hist: Counter[int] = Counter()
    reasons: Counter[str] = Counter()
    failed: list[Failure] = []
    requests = failures = seconds = 0
    for s in samples:
        if (start is not None and s.t + 1 <= start) or (end is not None and s.t >= end):
            continue
        seconds += 1
        requests += s.requests
        failures += s.failures
        hist.update(s.hist)
        reasons.update(s.reasons)
        failed.extend(f for f in s.failed if (start is None or f.t >= start) and (end is None or f.t < end))
    return Totals(requests, failures, seconds, hist, reasons, tuple(failed))


class SampleReader:
    """Reads a samples file as it grows (complete lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.samples: list[Sample] = []
        self.done: dict[str, object] | None = None  # the listener's last line when Locust quit

    def poll(self) -> list[Sample]:
        """Read what was appended since the last call; return the new samples."""
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
                    new.append(Sample.from_json(data))
        self.samples.extend(new)
        return new

