"""The timeline plot: a synthetic run rendered to PNG, and the replay behind its replicas panel (pure)."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import sys
import time
from pathlib import Path

from resilience_tests.cluster.timeline import ContainerState, PodState, Record
from resilience_tests.experiment.journal import ClusterFacts, FaultWindow, Journal
from resilience_tests.experiment.model import parse_experiment
from resilience_tests.faults.base import load_registry
from resilience_tests.load.locust import LoadOutcome
from resilience_tests.load.samples import Sample
from resilience_tests.reporting.plot import replay_zones, timeline_png

REGISTRY = load_registry()
ZERO = 1_790_000_000.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NODES = {f"node-{z}{i}": f"zone-{z}" for z in "abc" for i in (1, 2)}


def _pod(t: float, name: str, change: str, node: str, *, ready: bool, terminating: bool = False,
         exit_code: int | None = None, reason: str = "") -> Record:
    web = ContainerState(exit_code=exit_code, reason=reason if exit_code is not None else None)
    return Record(t, "pod", f"demo/{name}", change, pod=PodState(
        phase="Running", ready=ready, node=node, terminating=terminating, labels={"app": "web"},
        containers={"web": web}))


def _records() -> list[Record]:
    """Six pods, two per zone; zone-a is lost at 30 s (its pods turn unready, are evicted at 70 s with exit
    code 137 and replaced in zones b and c); a pod in zone-b is killed at 150 s and replaced in zone-b."""
    start = ZERO - 20
    records = [_pod(start, f"web-{node}", "initial", node, ready=True) for node in NODES]
    for node in ("node-a1", "node-a2"):
        records.append(_pod(ZERO + 42, f"web-{node}", "updated", node, ready=False))
        records.append(_pod(ZERO + 70, f"web-{node}", "updated", node, ready=False, terminating=True,
                            exit_code=137, reason="Error"))
        records.append(_pod(ZERO + 71, f"web-{node}", "deleted", node, ready=False, terminating=True,
                            exit_code=137, reason="Error"))
    for name, node, ready_at in (("web-new1", "node-b1", 79), ("web-new2", "node-c2", 84)):
        records.append(_pod(ZERO + 71, name, "added", node, ready=False))
        records.append(_pod(ZERO + ready_at, name, "updated", node, ready=True))
    records += [
        _pod(ZERO + 150.2, "web-node-b2", "updated", "node-b2", ready=True, terminating=True),
        _pod(ZERO + 150.4, "web-node-b2", "updated", "node-b2", ready=False, terminating=True),
        _pod(ZERO + 180.5, "web-node-b2", "updated", "node-b2", ready=False, terminating=True, exit_code=137,
             reason="Error"),
        _pod(ZERO + 180.6, "web-node-b2", "deleted", "node-b2", ready=False, terminating=True, exit_code=137,
             reason="Error"),
        _pod(ZERO + 150.3, "web-new3", "added", "node-b2", ready=False),
        _pod(ZERO + 158, "web-new3", "updated", "node-b2", ready=True),
    ]
    records += [Record(ZERO + t, "fault", name, change) for t, name, change in (
        (30, "0:zone-outage", "start"), (90, "0:zone-outage", "end"), (150, "1:pod-kill", "start"),
        (152, "1:pod-kill", "end"))]
    return records


def _samples(seconds: int = 280) -> list[Sample]:
    """50 requests a second at 10-40 ms; while zone-a is unready (42-75 s) a fifth fail fast or time out."""
    rng = random.Random(7)
    samples = []
    for second in range(int(ZERO) - 10, int(ZERO) + seconds):
        sample = Sample(second)
        offset = second - ZERO
        for i in range(50):
            t = second + i / 50
            if 42 <= offset < 75 and i % 5 == 0:
                sample.add(rng.choice([2, 2000]), failed=True, t=t, name="GET /", reason="ConnectionRefusedError")
            elif 150 <= offset < 151 and i % 10 == 0:
                sample.add(3, failed=True, t=t, name="GET /", reason="HTTP 502")
            else:
                sample.add(rng.uniform(10, 40) * (3 if 42 <= offset < 80 else 1))
        samples.append(sample)
    return samples


def make_journal(*, load: bool = True, records: bool = True, open_window: bool = False) -> Journal:
    """A 300-second run of a zone outage and a pod kill, with load, pod records in three zones and two windows."""
    experiment = parse_experiment({
        "name": "zone-a-outage", "target": {"namespace": "demo", "workload": "deployment/web"},
        "guardrails": {"max_nodes": 3},
        "faults": [{"type": "zone-outage", "at": "30s", "zone": "zone-a", "duration": "60s"},
                   {"type": "pod-kill", "at": "150s", "count": 1}]}, REGISTRY)
    windows = (FaultWindow(0, "zone-outage", ZERO + 30, ZERO + 90, touched=("node-a1", "node-a2")),
               FaultWindow(1, "pod-kill", ZERO + 150, None if open_window else ZERO + 152, touched=("web-node-b2",)))
    samples = _samples()
    return Journal(
        experiment=experiment, run_id="r-3f9a2c", plan=("zone-outage zone-a", "pod-kill 1 pod"),
        facts=ClusterFacts(context="kwok-resilience", nodes=6, zones=3, node_zones=tuple(sorted(NODES.items()))),
        started=ZERO - 20, ended=ZERO + 280, zero=ZERO, windows=windows,
        records=tuple(_records()) if records else (),
        load=LoadOutcome(samples=samples, complete=True, started=samples[0].t, ended=samples[-1].t + 1)
        if load else None)


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 30_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 1000)


def test_a_full_run_renders_to_a_png(tmp_path: Path) -> None:
    began = time.perf_counter()
    path = timeline_png(make_journal(), tmp_path / "out" / "timeline.png")
    elapsed = time.perf_counter() - began
    assert path == tmp_path / "out" / "timeline.png"
    _assert_png(path)
    assert elapsed < 5  # ~0.5 s here; generous for slow CI machines


def test_it_renders_without_load_without_records_and_with_a_window_never_reverted(tmp_path: Path) -> None:
    for name, journal in (("no-load", make_journal(load=False)), ("no-records", make_journal(records=False)),
                          ("open-window", make_journal(open_window=True))):
        _assert_png(timeline_png(journal, tmp_path / f"{name}.png"))


def test_it_renders_empty_and_zero_length_runs(tmp_path: Path) -> None:
    empty = dataclasses.replace(make_journal(load=False, records=False), windows=(), ended=ZERO - 20)
    _assert_png(timeline_png(empty, tmp_path / "empty.png"))
    planned = dataclasses.replace(empty, started=0.0, ended=0.0, zero=0.0)
    _assert_png(timeline_png(planned, tmp_path / "planned.png"))
    no_samples = dataclasses.replace(make_journal(records=False), load=LoadOutcome(problem="locust did not start"))
    _assert_png(timeline_png(no_samples, tmp_path / "no-samples.png"))


def test_replicas_are_replayed_per_zone_with_exits() -> None:
    replay = replay_zones(make_journal(), ZERO)
    final = {zone: steps[-1][1] for zone, steps in replay.steps.items()}
    assert final == {"zone-a": 0, "zone-b": 3, "zone-c": 3}
    assert max(n for _, n in replay.steps["zone-a"]) == 2
    assert replay.total[-1][1] == 6 and min(n for x, n in replay.total if x > 0) == 4
    assert [(e.zone, e.code, round(e.x)) for e in replay.exits] == [
        ("zone-a", 137, 70), ("zone-a", 137, 70), ("zone-b", 137, 180)]


def test_an_unseen_crash_counts_once_through_its_last_exit() -> None:
    steps: tuple[tuple[float, str, bool, ContainerState], ...] = (
        (0, "initial", True, ContainerState(restarts=0)),
        (5, "updated", True, ContainerState(restarts=1, last_exit_code=1)),
        (9, "updated", False, ContainerState(restarts=1, last_exit_code=1)),
        (12, "updated", True, ContainerState(restarts=1, exit_code=1, last_exit_code=1)),
        (15, "updated", True, ContainerState(restarts=2, last_exit_code=1)))
    records = [Record(ZERO + t, "pod", "demo/p", change,
                      pod=PodState(ready=ready, node="node-a1", containers={"app": app}))
               for t, change, ready, app in steps]
    journal = dataclasses.replace(make_journal(load=False, records=False), records=tuple(records))
    assert [round(e.x) for e in replay_zones(journal, ZERO).exits] == [5, 12]


def test_importing_the_module_does_not_load_matplotlib() -> None:
    code = "import sys, resilience_tests.reporting.plot; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _hpa_records() -> list[Record]:
    """The target's HPA web asking 1, 4, 6 then 3 replicas of at most 10; another HPA (api) in the namespace."""
    from resilience_tests.cluster.hpa import HpaState

    records = [Record(ZERO + t, "hpa", "demo/web", "updated",
                      data=HpaState("Deployment/web", 1, 10, desired, desired)) for t, desired in
               ((-20, 1), (12, 4), (40, 6), (200, 3))]
    records.append(Record(ZERO + 5, "hpa", "demo/api", "added", data=HpaState("Deployment/api", 1, 3, 2, 2)))
    return records


def test_the_hpa_panel_shows_the_target_s_hpa_desired_and_ready_replicas(tmp_path: Path) -> None:
    from resilience_tests.reporting.plot import hpa_series

    base = make_journal()
    journal = dataclasses.replace(base, records=(*base.records, *_hpa_records()))
    series = hpa_series(journal, ZERO, replay_zones(journal, ZERO).total)
    assert series.name == "web"
    assert series.desired == [(-20.0, 1), (12.0, 4), (40.0, 6), (200.0, 3)]
    assert {n for _, n in series.max_replicas} == {10}
    assert series.ready == replay_zones(journal, ZERO).total and series.ready[-1][1] == 6
    with_hpa = timeline_png(journal, tmp_path / "hpa.png")
    _assert_png(with_hpa)
    without = timeline_png(base, tmp_path / "plain.png")
    assert with_hpa.read_bytes() != without.read_bytes()


def test_the_hpa_panel_is_left_out_without_hpa_records_or_a_hpa_of_the_target() -> None:
    from resilience_tests.reporting.plot import hpa_series

    assert hpa_series(make_journal(), ZERO, []).desired == []
    others = [r for r in _hpa_records() if r.name != "demo/web"]
    alone = dataclasses.replace(make_journal(), records=tuple(others))
    assert hpa_series(alone, ZERO, []).name == "api"  # the only HPA there
    two = dataclasses.replace(make_journal(), records=(*others, Record(
        ZERO, "hpa", "demo/db", "added", data=others[0].data)))
    selectorless = dataclasses.replace(two, experiment=two.experiment.model_copy(
        update={"target": two.experiment.target.model_copy(update={"workload": None})}))
    assert hpa_series(selectorless, ZERO, []).name == ""  # two HPAs, neither the target's: none drawn
