"""Autoscaling checks: capacity-follows-load, scale-up-time, scale-down, no-flapping, max-replicas-respected.

They read the load samples, the target's pod records (ready replicas replayed by
:func:`~resilience_tests.cluster.ready.replay_ready`, as recovery-time and the plot do) and the timeline's
``hpa`` records (:mod:`resilience_tests.cluster.hpa`), which explain a verdict: what the HPA desired and the
metric it saw at the moment capacity lagged. Definitions and examples: docs/experiments.md.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Literal

from pydantic import Field

from resilience_tests.cluster.hpa import HpaRecord, HpaState, hpa_records
from resilience_tests.cluster.ready import replay_ready
from resilience_tests.load.samples import Sample, Totals, by_second, totals
from resilience_tests.schema import Duration
from resilience_tests.sla.base import MAX_EVIDENCE, BaseCheck, LoadCheck, Verdict
from resilience_tests.sla.evidence import Evidence, Measure, Window


class Series:
    """A step function of time: ``(t, value)`` changes in time order; the value at ``t`` is the last change at or
    before ``t`` (``before`` until the first)."""

    def __init__(self, steps: list[tuple[float, int]], before: int = 0) -> None:
        self.steps = steps
        self.before = before
        self._times = [t for t, _ in steps]

    def at(self, t: float) -> int:
        """The value at ``t``."""
        i = bisect.bisect_right(self._times, t)
        return self.steps[i - 1][1] if i else self.before

    def first(self, start: float, end: float, ok: Callable[[int], bool]) -> float | None:
        """The first moment in ``[start, end]`` where ``ok(value)`` holds (``start`` itself if it holds then)."""
        if ok(self.at(start)):
            return start
        return next((t for t, v in self.steps if start < t <= end and ok(v)), None)

    def between(self, start: float, end: float) -> list[tuple[float, int]]:
        """The value at ``start`` and every change up to ``end``."""
        return [(start, self.at(start))] + [(t, v) for t, v in self.steps if start < t <= end]


def ready_series(ev: Evidence) -> Series:
    """Ready (not terminating) pods of the target over time."""
    return Series([(step.record.t, step.total) for step in replay_ready(ev.pod_records)])


def running_series(ev: Evidence) -> Series:
    """Running (phase Running, not terminating, ready or not) pods of the target over time."""
    running: dict[str, bool] = {}
    steps = []
    for record in ev.pod_records:
        running[record.name] = record.change != "deleted" and record.state.phase == "Running" \
            and not record.state.terminating
        steps.append((record.t, sum(running.values())))
    return Series(steps)


def autoscaler(ev: Evidence, name: str | None) -> tuple[str, list[HpaRecord]]:
    """The HPA a check judges (``name``, else the one whose scaleTargetRef is the target workload, else the only
    one recorded) and its records; ``("", [])`` when the timeline holds none."""
    records = hpa_records(ev.records)
    if name:
        return name, [r for r in records if r.hpa == name]
    kind, _, workload = ev.workload.partition("/")
    if workload:  # only an HPA of the target: another workload's HPA never stands in for it
        names = sorted({r.hpa for r in records if r.state.targets(kind, workload)})
    else:
        names = sorted({r.hpa for r in records})
    if len(names) != 1:
        return "", []
    return names[0], [r for r in records if r.hpa == names[0]]


def seen_at(records: list[HpaRecord], t: float) -> HpaState | None:
    """The HPA's state at ``t`` (its last record at or before ``t``)."""
    found = [r.state for r in records if r.t <= t]
    return found[-1] if found else None


def hpa_line(ev: Evidence, name: str, records: list[HpaRecord], t: float) -> str:
    """``HPA web at +32.0s: desired 1, current 1 (1..10), cpu 45% of 50%``."""
    state = seen_at(records, t)
    if state is None:
        why = "no record of it in the timeline" if not records else "not recorded yet"
        return f"HPA {name or '(none found)'} at {ev.offset(t, 1)}: {why}"
    return f"HPA {name} at {ev.offset(t, 1)}: {state.seen()}"


def load_seconds(ev: Evidence) -> dict[int, Sample]:
    """The load's seconds, one sample each (parts merged)."""
    return by_second(ev.samples)


def load_start(seconds: dict[int, Sample]) -> float | None:
    """The first second in which a request was sent."""
    return next((float(t) for t, s in seconds.items() if s.requests or s.unanswered), None)


def load_drop(seconds: dict[int, Sample]) -> float | None:
    """When the load ended: the end of its last second with more users than its final second (a spike's end, a
    ramp-down's last step); without such a second (a ramp held to the end), the end of its last second."""
    if not seconds:
        return None
    final = seconds[max(seconds)].users
    above = [t for t, s in seconds.items() if s.users > final]
    return float((max(above) if above else max(seconds)) + 1)


class CapacityFollowsLoad(LoadCheck):
    """From ``lag`` after the load started, every second ``t`` has ready replicas >= min(``max_replicas``,
    ceil(successful requests/s at ``t - lag`` / ``per_replica_rps``)); the rate is the mean over the ``smooth``
    seconds ending at ``t - lag``. A second whose source seconds were down (requests sent, most of them failed)
    fails too: successful requests then measure the outage, not the demand. When the load has fallen since
    (fewer requests *sent* per second over the ``smooth`` seconds ending at ``t``), the need is that lower
    demand's: capacity removed after a drop is judged by the demand that is left (``scale-down`` judges how fast
    it goes), never by the demand of ``lag`` ago."""

    type: Literal["capacity-follows-load"] = "capacity-follows-load"
    per_replica_rps: float = Field(gt=0)
    max_replicas: int = Field(ge=1)
    lag: Duration = 30.0
    smooth: Duration = Field(default=3.0, ge=1)
    hpa: str | None = None

    def _judge(self, ev: Evidence, window: Window, t: Totals) -> Verdict:
        seconds = load_seconds(ev)
        start = load_start(seconds)
        ready = ready_series(ev)
        name, records = autoscaler(ev, self.hpa)
        threshold = f"ready >= min({self.max_replicas}, ceil(ok req/s {self.lag:g}s earlier / " \
                    f"{self.per_replica_rps:g})) every second"
        first = max(math.floor(window.start), math.ceil((start or 0) + self.lag))
        last = min(math.ceil(window.end) - 1, max(seconds) if seconds else 0)
        judged, down = 0, 0
        lagging: list[tuple[int, str, int, int, bool]] = []
        lo = min(seconds) if seconds else 0
        for second in range(first, last + 1):
            # The source seconds inside the load; one missing from the stream there counts as down.
            sources = [seconds.get(s) for s in range(second - int(self.lag) - int(self.smooth) + 1,
                                                     second - int(self.lag) + 1) if s >= lo]
            rate = sum(s.ok for s in sources if s is not None) / max(1, len(sources))
            was_down = any(s is None or s.state == "down" for s in sources)
            now = [seconds.get(s) for s in range(second - int(self.smooth) + 1, second + 1) if s >= lo]
            sent = sum(s.requests + s.unanswered for s in now if s is not None) / max(1, len(now))
            need = min(self.max_replicas, math.ceil(min(rate, sent) / self.per_replica_rps))
            source = f"{sent:.1f} req/s sent (the load fell)" if sent < rate else \
                f"{rate:.1f} ok req/s at {ev.offset(second - self.lag, 0)}"
            have = ready.at(second + 1)
            judged += 1
            down += int(was_down)
            if was_down or have < need:
                lagging.append((second, source, need, have, was_down))
        if judged == 0:
            return self._verdict(ev, window, False, "no second judged", threshold,
                                 [f"no second of the window is {self.lag:g}s after the load's start "
                                  f"({ev.offset(start) if start is not None else 'no request sent'}): lengthen the "
                                  "load or shorten lag"])
        lines = [f"{judged} s judged from {ev.offset(first, 0)}, {len(lagging)} below need"
                 + (f", {down} of them with the load down {self.lag:g}s earlier (the successful rate then "
                    "measures the outage, not the demand: not judgeable as capacity)" if down else "")]
        lines += self._runs(ev, lagging, name, records)
        return self._verdict(ev, window, not lagging, f"{len(lagging)} of {judged} s below need", threshold,
                             lines, f"by {judged} s at or above need", Measure(len(lagging), 0, "s"))

    def _runs(self, ev: Evidence, lagging: list[tuple[int, str, int, int, bool]], name: str,
              records: list[HpaRecord]) -> list[str]:
        """One line per run of consecutive lagging seconds, described at its first second."""
        runs: list[list[tuple[int, str, int, int, bool]]] = []
        for item in lagging:
            if runs and item[0] == runs[-1][-1][0] + 1 and item[4] == runs[-1][-1][4]:
                runs[-1].append(item)
            else:
                runs.append([item])
        lines = []
        for run in runs[:MAX_EVIDENCE]:
            second, source, need, have, was_down = run[0]
            span = f"{ev.offset(second, 0)}..{ev.offset(run[-1][0] + 1, 0)} ({len(run)} s)"
            what = "load down then: demand unknown" if was_down else f"{source} needs {need}, ready {have}"
            lines.append(f"{span}: {what}; {hpa_line(ev, name, records, second + 1)}")
        if len(runs) > MAX_EVIDENCE:
            lines.append(f"... and {len(runs) - MAX_EVIDENCE} more runs of lagging seconds")
        return lines


class ScaleUpTime(BaseCheck):
    """Time from ``from`` (the load's first request, or the start of a fault: ``fault:N``/``fault:TYPE``) until
    ``to`` replicas of the target are ready: at most ``max``."""

    type: Literal["scale-up-time"] = "scale-up-time"
    to: int = Field(ge=1)
    max: Duration
    from_: str = Field(default="load-start", alias="from")
    hpa: str | None = None

    @property
    def label(self) -> str:
        return f"scale-up-time (from {self.from_})"

    def evaluate(self, ev: Evidence) -> Verdict:
        threshold = f"{self.to} ready within {self.max:g}s"
        if self.from_ == "load-start":
            start = load_start(load_seconds(ev))
            if start is None:
                return self._verdict(ev, Window("load-start", ev.started, ev.ended), False, "no load",
                                     threshold, ["no request was sent: nothing to scale up for"])
        else:
            start = ev.window(self.from_).start
        ready = ready_series(ev)
        name, records = autoscaler(ev, self.hpa)
        reached = ready.first(start, ev.ended, lambda v: v >= self.to)
        window = Window(self.from_, start, reached if reached is not None else ev.ended)
        levels = ready.between(start, ev.ended)
        peak = max(levels, key=lambda x: x[1])
        lines = [f"{levels[0][1]} ready at {ev.offset(start, 1)}, most {peak[1]} at {ev.offset(peak[0], 1)}"]
        if reached is None:
            lines.append(hpa_line(ev, name, records, min(start + self.max, ev.ended)))
            return self._verdict(ev, window, False, f"never in {ev.ended - start:.0f}s", threshold, lines,
                                 numbers=Measure(None, self.max, "s"))
        took = reached - start
        lines.append(f"{self.to} ready at {ev.offset(reached, 1)}")
        if took > self.max:
            lines.append(hpa_line(ev, name, records, start + self.max))
        return self._verdict(ev, window, took <= self.max, f"{took:.1f}s", f"<= {self.max:g}s ({threshold})",
                             lines, f"by {self.max - took:.1f}s", Measure(round(took, 3), self.max, "s"))


class ScaleDown(BaseCheck):
    """After the load ends (its drop: see :func:`load_drop`), ready replicas come down to ``to`` or fewer within
    ``within``, and no request sent from the drop until then (at the load's remaining level) failed."""

    type: Literal["scale-down"] = "scale-down"
    to: int = Field(ge=0)
    within: Duration
    hpa: str | None = None

    def evaluate(self, ev: Evidence) -> Verdict:
        threshold = f"<= {self.to} ready within {self.within:g}s, 0 failed"
        seconds = load_seconds(ev)
        drop = load_drop(seconds)
        if drop is None or load_start(seconds) is None:
            return self._verdict(ev, Window("after load", ev.started, ev.ended), False, "no load", threshold,
                                 ["scale-down judges the end of a load; the run sent no request"])
        ready = ready_series(ev)
        name, records = autoscaler(ev, self.hpa)
        reached = ready.first(drop, ev.ended, lambda v: v <= self.to)
        end = reached if reached is not None else ev.ended
        window = Window("after load", drop, max(end, drop))
        t = totals(ev.samples, drop, max(end, drop + 1), through=ev.ended)
        bad = t.failures + t.carried_in_failed + t.carried_in_unanswered + t.unanswered
        lines = [f"load ended at {ev.offset(drop, 1)} with {ready.at(drop)} ready; {t.requests} requests sent "
                 f"until {self.to} or fewer were ready, {bad} failed"]
        lines += [f"{ev.offset(f.t)} {f.name}: {f.reason}" + (f" answered by {f.pod}" if f.pod else "")
                  for f in t.failed[:MAX_EVIDENCE]]
        state = seen_at(records, ev.ended)
        if reached is None or reached - drop > self.within:
            lines.append(hpa_line(ev, name, records, min(drop + self.within, ev.ended)))
            if state is not None and state.down_stabilisation > self.within:
                lines.append(f"HPA {name} waits {state.down_stabilisation} s (behavior.scaleDown."
                             "stabilizationWindowSeconds) before it scales down: longer than within "
                             f"({self.within:g}s)")
        if reached is None:
            lines.insert(1, f"{ready.at(ev.ended)} ready at the end of the run ({ev.offset(ev.ended, 1)})")
            return self._verdict(ev, window, False, f"never in {ev.ended - drop:.0f}s, {bad} failed", threshold,
                                 lines, numbers=Measure(None, self.within, "s"))
        took = reached - drop
        return self._verdict(ev, window, took <= self.within and bad == 0, f"{took:.1f}s, {bad} failed", threshold,
                             lines, f"by {self.within - took:.1f}s", Measure(round(took, 3), self.within, "s"))


def direction_changes(values: list[tuple[float, int]]) -> list[tuple[float, int, int]]:
    """When a series turned (up then down, or down then up): ``(t, value before, value after)``."""
    turns, direction, last = [], 0, None
    for t, value in values:
        if last is not None and value != last:
            now = 1 if value > last else -1
            if direction and now != direction:
                turns.append((t, last, value))
            direction = now
        last = value
    return turns


def worst_minute(turns: list[tuple[float, int, int]]) -> list[tuple[float, int, int]]:
    """The most turns inside any 60 s."""
    best: list[tuple[float, int, int]] = []
    for i, (t, _, _) in enumerate(turns):
        inside = [x for x in turns[i:] if x[0] < t + 60]
        if len(inside) > len(best):
            best = inside
    return best


class NoFlapping(BaseCheck):
    """Neither the HPA's desired replicas nor the target's ready replicas change direction (up then down, or down
    then up) more than ``max_changes_per_minute`` times in any 60 s of the window."""

    type: Literal["no-flapping"] = "no-flapping"
    max_changes_per_minute: int = Field(default=2, ge=0)
    hpa: str | None = None

    def evaluate(self, ev: Evidence) -> Verdict:
        window = ev.window(self.window)
        name, records = autoscaler(ev, self.hpa)
        desired = Series([(r.t, r.state.desired_replicas) for r in records]).between(window.start, window.end)
        series = {"ready": ready_series(ev).between(window.start, window.end)}
        if records:
            series[f"desired (HPA {name})"] = desired
        worst = {what: worst_minute(direction_changes(values)) for what, values in series.items()}
        peak = max(len(w) for w in worst.values())
        lines = [] if records else [f"no HPA record in the timeline ({name or 'none found'}): ready replicas only"]
        for what, turns in worst.items():
            if turns:
                lines.append(f"{what}: {len(turns)} direction changes from {ev.offset(turns[0][0], 1)}: "
                             + ", ".join(f"{a}->{b} at {ev.offset(t, 1)}" for t, a, b in turns[:MAX_EVIDENCE]))
        return self._verdict(ev, window, peak <= self.max_changes_per_minute, f"{peak} direction changes in 60 s",
                             f"<= {self.max_changes_per_minute} per minute", lines,
                             f"by {self.max_changes_per_minute - peak}", Measure(peak, self.max_changes_per_minute,
                                                                                 "changes/min"))


class MaxReplicasRespected(BaseCheck):
    """Running pods of the target (phase Running, not terminating, ready or not) never exceed ``max``, or without
    it the HPA's maxReplicas at that moment."""

    type: Literal["max-replicas-respected"] = "max-replicas-respected"
    max: int | None = Field(default=None, ge=1)
    hpa: str | None = None

    def evaluate(self, ev: Evidence) -> Verdict:
        window = ev.window(self.window)
        name, records = autoscaler(ev, self.hpa)
        if self.max is None and not records:
            return self._verdict(ev, window, False, "no limit", "a max or an HPA's maxReplicas",
                                 [f"no HPA record in the timeline ({name or 'none found'}) and no max given"])
        points = []  # (t, running, limit)
        for t, running in running_series(ev).between(window.start, window.end):
            state = seen_at(records, t)
            limit = self.max if self.max is not None else (state.max_replicas if state else None)
            if limit is not None:
                points.append((t, running, limit))
        source = f"max {self.max}" if self.max is not None else f"HPA {name} maxReplicas"
        if not points:
            return self._verdict(ev, window, False, "nothing judged", f"<= {source}",
                                 [f"no pod record of the target in the window once the limit was known ({source})"])
        over = [f"{running} running at {ev.offset(t, 1)}, limit {limit}"
                + (f"; {hpa_line(ev, name, records, t)}" if records else "")
                for t, running, limit in points if running > limit]
        _, peak, limit = max(points, key=lambda p: (p[1] - p[2], p[1]))
        most = max(p[1] for p in points)
        return self._verdict(ev, window, not over, f"at most {most} running", f"<= {limit} ({source})",
                             over[:MAX_EVIDENCE], f"by {limit - peak}", Measure(peak, limit, "replicas"))


AUTOSCALE_CHECKS = (CapacityFollowsLoad, ScaleUpTime, ScaleDown, NoFlapping, MaxReplicasRespected)
"""The checks of an autoscaled target (preflight finds their HPA before any load starts)."""


def needs_hpa(check: BaseCheck) -> bool:
    """Whether ``check`` judges an HPA that must exist before the run starts (every autoscaling check but
    max-replicas-respected with its own ``max``)."""
    if isinstance(check, MaxReplicasRespected):
        return check.max is None
    return isinstance(check, AUTOSCALE_CHECKS)
