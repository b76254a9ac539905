"""The timeline plot's data, replayed from the journal (pure): ready replicas per zone with container exits, the
load per second, and the HPA's desired and ready replicas. Drawn by :mod:`resilience_tests.reporting.plot`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from resilience_tests.cluster.hpa import hpa_records
from resilience_tests.cluster.ready import replay_ready
from resilience_tests.cluster.timeline import PodRecord, PodState, pod_records
from resilience_tests.experiment.journal import FaultWindow, Journal
from resilience_tests.load.samples import by_second, percentile

UNKNOWN_ZONE = "?"
PERCENTILES = (50, 95, 99)
RUG_RESOLUTION_S = 0.05
"""Failed requests closer together than this draw one tick (keeps thousands of failures fast)."""


@dataclass(frozen=True)
class Exit:
    """A container that exited: when, in which zone, its code and reason."""

    x: float
    zone: str
    pod: str
    code: int | None
    reason: str
    ready_after: int


@dataclass
class ZoneReplay:
    """Ready replicas per zone as step points (x, count), and the container exits seen on the way."""

    steps: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    total: list[tuple[float, int]] = field(default_factory=list)
    exits: list[Exit] = field(default_factory=list)


@dataclass
class _Pod:
    exits: dict[tuple[str, str], int] = field(default_factory=dict)  # (exit|last_exit, container) -> code
    restarts: dict[str, int] = field(default_factory=dict)
    marked: set[str] = field(default_factory=set)


def replay_zones(journal: Journal, origin: float) -> ZoneReplay:
    """Replay the pod records in time order: a pod counts as ready in its node's zone while it is ready and not
    terminating. A container exit is a record in which its exit code appears or changes, or its last exit code
    does with a restart (the terminated state itself was not seen)."""
    zones = dict(journal.facts.node_zones)
    replay = ZoneReplay()
    pods: dict[str, _Pod] = {}
    records = pod_records(journal.records)
    first = records[0].t - origin if records else 0.0

    def zone(record: PodRecord, was: str) -> str:  # a record without a node leaves the pod where it was
        return zones.get(record.state.node, UNKNOWN_ZONE) if record.state.node else was

    for step in replay_ready(records, group=zone, first=UNKNOWN_ZONE):
        record, x = step.record, step.record.t - origin
        pod = pods.setdefault(record.name, _Pod())
        if record.state.node and step.group not in replay.steps:
            replay.steps[step.group] = [(first, 0)] if x > first else []
        exits = _exits(record.change, record.state, pod)
        for touched in {step.was, step.group}:
            if touched in replay.steps:
                replay.steps[touched].append((x, step.ready.get(touched, 0)))
        replay.total.append((x, step.total))
        replay.exits += [Exit(x, step.group, record.name, code, reason, step.ready.get(step.group, 0))
                         for code, reason in exits]
        if record.change == "deleted":
            del pods[record.name]
    return replay


def _exits(change: str, state: PodState, pod: _Pod) -> list[tuple[int | None, str]]:
    """The containers of one pod record that exited since the pod's previous record, as (code, reason)."""
    found: list[tuple[int | None, str]] = []
    containers = sorted(state.containers.items())
    codes = [(("exit", name), c.exit_code, c) for name, c in containers if c.exit_code is not None]
    codes += [(("last_exit", name), c.last_exit_code, c) for name, c in containers if c.last_exit_code is not None]
    for key, code, container in codes:
        name = key[1]
        restarted = container.restarts != pod.restarts.get(name)
        # a last exit only counts for a restart whose terminated state the timeline never saw
        new = code != pod.exits.get(key) if key[0] == "exit" else restarted and name not in pod.marked
        if new and change != "initial":
            found.append((code, container.reason or ""))
            pod.marked.add(name)
    pod.exits = {key: code for key, code, _ in codes}
    for name, container in containers:
        if container.restarts != pod.restarts.get(name) and container.exit_code is None:
            pod.marked.discard(name)  # running again: its next exit is a new one
        pod.restarts[name] = container.restarts
    return found


@dataclass
class LoadSeries:
    """Per-second load values at second starts (x), NaN where the second has no sample."""

    x: list[float] = field(default_factory=list)
    ok: list[float] = field(default_factory=list)
    failures: list[float] = field(default_factory=list)
    latency: dict[int, list[float]] = field(default_factory=dict)
    failed_at: list[float] = field(default_factory=list)


def load_series(journal: Journal, origin: float) -> LoadSeries:
    """Requests OK and failed, latency percentiles and failed-request times, one value per second."""
    series = LoadSeries(latency={p: [] for p in PERCENTILES})
    if journal.load is None:
        return series
    seconds = by_second(journal.load.samples)
    if not seconds:
        return series
    nan = math.nan
    rug: set[int] = set()
    for t in range(min(seconds), max(seconds) + 1):
        series.x.append(t - origin)
        sample = seconds.get(t)
        series.ok.append(float(sample.ok) if sample else nan)
        series.failures.append(float(sample.failures) if sample else nan)
        for p, values in series.latency.items():
            value = percentile(sample.hist, p) if sample else None
            values.append(nan if value is None else value)
        if sample:
            rug.update(round((f.t - origin) / RUG_RESOLUTION_S) for f in sample.failed)
    series.failed_at = [r * RUG_RESOLUTION_S for r in sorted(rug)]
    return series


def time_origin(journal: Journal) -> float:
    """The epoch second shown as 0: the start of the fault schedule, else of the run, else of the first data."""
    if journal.zero or journal.started:
        return journal.zero or journal.started
    times = [r.t for r in journal.records] + [float(s.t) for s in (journal.load.samples if journal.load else [])]
    return min(times, default=0.0)


def window_end(window: FaultWindow, journal: Journal, hi: float, origin: float) -> float:
    """Where a window ends on the axis: its end, or the end of the run when its revert never ran."""
    if window.end is not None:
        return window.end - origin
    return journal.ended - origin if journal.ended else hi


@dataclass
class HpaSeries:
    """The HPA of the target as step points (x, count): its desired replicas and limit, and the ready replicas."""

    name: str = ""
    desired: list[tuple[float, int]] = field(default_factory=list)
    max_replicas: list[tuple[float, int]] = field(default_factory=list)
    ready: list[tuple[float, int]] = field(default_factory=list)


def hpa_series(journal: Journal, origin: float, ready: list[tuple[float, int]]) -> HpaSeries:
    """The desired replicas of the HPA that scales the target workload (else the only HPA of the records; none
    when there are several and none is the target's), with the ``ready`` replicas of the zone replay."""
    records = hpa_records(journal.records)
    target = journal.experiment.target
    names = list(dict.fromkeys(r.hpa for r in records))
    mine = [n for n in names if target.workload_kind and target.workload_name and any(
        r.state.targets(target.workload_kind, target.workload_name) for r in records if r.hpa == n)]
    name = mine[0] if mine else names[0] if len(names) == 1 else ""
    if not name:
        return HpaSeries()
    chosen = [r for r in records if r.hpa == name]
    return HpaSeries(name, [(r.t - origin, r.state.desired_replicas) for r in chosen],
                     [(r.t - origin, r.state.max_replicas) for r in chosen], list(ready))
