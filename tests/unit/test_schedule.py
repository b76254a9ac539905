"""The fault schedule on a fake clock: order, overlaps, a fault failing mid-schedule, interrupts at each phase,
and each fault's own events (a background round is recorded under its own fault)."""

from __future__ import annotations

import contextlib
import threading
from typing import Any, cast

import pytest

from resilience_tests.cluster.timeline import Record, Timeline
from resilience_tests.experiment.model import parse_experiment
from resilience_tests.experiment.result import RunResult
from resilience_tests.experiment.runner import FaultStage
from resilience_tests.experiment.schedule import FaultEvents, FaultRef, Schedule, Slot, SystemClock
from resilience_tests.faults.base import FaultError, load_registry


class FakeClock:
    """Time moves only when the schedule waits; every wait is logged."""

    def __init__(self, interrupt_at: float | None = None) -> None:
        self.t = 100.0
        self.waits: list[float] = []
        self.interrupt_at = interrupt_at

    def now(self) -> float:
        return self.t

    def wait_until(self, deadline: float, stop: threading.Event | None = None) -> bool:
        self.waits.append(deadline)
        if stop is not None and stop.is_set():
            return True
        if self.interrupt_at is not None and deadline - 100.0 >= self.interrupt_at:
            self.t = 100.0 + self.interrupt_at
            raise KeyboardInterrupt("Ctrl-C while waiting")
        self.t = max(self.t, deadline)
        return False


class Recorder:
    """A stage that logs (time from zero, action, fault) and fails where told."""

    def __init__(self, clock: FakeClock, fail: dict[tuple[str, int], BaseException] | None = None) -> None:
        self.clock = clock
        self.log: list[tuple[float, str, str]] = []
        self.fail = fail or {}

    def _do(self, action: str, ref: FaultRef) -> None:
        self.log.append((self.clock.now() - 100.0, action, str(ref)))
        problem = self.fail.get((action, ref.index))
        if problem is not None:
            raise problem

    def inject(self, ref: FaultRef) -> None:
        self._do("inject", ref)

    def revert(self, ref: FaultRef) -> None:
        self._do("revert", ref)


A, B, C, D = FaultRef(0, "scale"), FaultRef(1, "pod-kill"), FaultRef(2, "node-drain"), FaultRef(3, "pod-kill")
SLOTS = [Slot(A, 0, 10), Slot(B, 5, 2), Slot(C, 5), Slot(D, 7)]


def _play(clock: FakeClock, stage: Recorder, slots: list[Slot] = SLOTS) -> None:
    with contextlib.ExitStack() as reverts:
        Schedule(slots, clock).play(stage, 100.0, reverts)


def test_faults_overlap_in_time_order_reverts_first_at_the_same_time_and_the_rest_revert_newest_first() -> None:
    clock = FakeClock()
    stage = Recorder(clock)
    _play(clock, stage)
    assert stage.log == [
        (0, "inject", "0:scale"), (5, "inject", "1:pod-kill"), (5, "inject", "2:node-drain"),
        (7, "revert", "1:pod-kill"),  # B's revert at 5+2 comes before D's inject at 7
        (7, "inject", "3:pod-kill"),
        (10, "revert", "0:scale"),
        # held to the end of the run: reverted when the stack closes, newest first
        (10, "revert", "3:pod-kill"), (10, "revert", "2:node-drain")]
    assert clock.waits == [100, 105, 105, 107, 107, 110], "each step waits for its own time, no earlier"


def test_a_fault_listed_twice_is_two_faults_each_injected_and_reverted_once() -> None:
    clock = FakeClock()
    stage = Recorder(clock)
    twice = [Slot(FaultRef(0, "pod-kill"), 0, 3), Slot(FaultRef(1, "pod-kill"), 3, 3)]
    _play(clock, stage, twice)
    assert stage.log == [(0, "inject", "0:pod-kill"), (3, "revert", "0:pod-kill"), (3, "inject", "1:pod-kill"),
                         (6, "revert", "1:pod-kill")]


def test_a_fault_failing_mid_schedule_stops_the_later_ones_and_every_started_one_is_reverted() -> None:
    clock = FakeClock()
    stage = Recorder(clock, {("inject", 1): FaultError("no pod matches")})
    with pytest.raises(FaultError, match="no pod matches"):
        _play(clock, stage)
    assert stage.log == [(0, "inject", "0:scale"), (5, "inject", "1:pod-kill"),
                         # C (same time, later in the list) and D never start; B's half-done inject is reverted
                         (5, "revert", "1:pod-kill"), (5, "revert", "0:scale")]


@pytest.mark.parametrize("where, expected", [
    ("waiting", [(0, "inject", "0:scale"), (5, "inject", "1:pod-kill"), (5, "inject", "2:node-drain"),
                 (6, "revert", "2:node-drain"), (6, "revert", "1:pod-kill"), (6, "revert", "0:scale")]),
    ("inject", [(0, "inject", "0:scale"), (5, "inject", "1:pod-kill"),
                (5, "revert", "1:pod-kill"), (5, "revert", "0:scale")]),
    ("timed revert", [(0, "inject", "0:scale"), (5, "inject", "1:pod-kill"), (5, "inject", "2:node-drain"),
                      (7, "revert", "1:pod-kill"), (7, "revert", "2:node-drain"), (7, "revert", "0:scale")]),
    ("closing", [(0, "inject", "0:scale"), (5, "inject", "1:pod-kill"), (5, "inject", "2:node-drain"),
                 (7, "revert", "1:pod-kill"), (7, "inject", "3:pod-kill"), (10, "revert", "0:scale"),
                 (10, "revert", "3:pod-kill"), (10, "revert", "2:node-drain")]),
])
def test_an_interrupt_at_any_phase_still_reverts_every_started_fault_once(where: str,
                                                                          expected: list[Any]) -> None:
    clock = FakeClock(interrupt_at=6 if where == "waiting" else None)
    ctrl_c = KeyboardInterrupt("Ctrl-C")
    fail = {"inject": {("inject", 1): ctrl_c}, "timed revert": {("revert", 1): ctrl_c},
            "closing": {("revert", 3): ctrl_c}}.get(where, {})
    stage = Recorder(clock, fail)
    with pytest.raises(KeyboardInterrupt):
        _play(clock, stage)
    assert stage.log == expected
    reverted = [ref for _, action, ref in stage.log if action == "revert"]
    assert len(reverted) == len(set(reverted)), "no fault is reverted twice"
    assert set(reverted) == {ref for _, action, ref in stage.log if action == "inject"}


def test_a_stop_event_ends_the_schedule_and_leaves_the_reverts_to_the_stack() -> None:
    clock, stop = FakeClock(), threading.Event()

    class Stopper(Recorder):
        def inject(self, ref: FaultRef) -> None:
            super().inject(ref)
            stop.set()

    stage = Stopper(clock)
    with contextlib.ExitStack() as reverts:
        Schedule(SLOTS, clock).play(stage, 100.0, reverts, stop)
    assert stage.log == [(0, "inject", "0:scale"), (0, "revert", "0:scale")]


def test_the_system_clock_waits_until_its_deadline_or_its_stop_event() -> None:
    clock, stop = SystemClock(), threading.Event()
    assert clock.wait_until(clock.now() - 1) is False, "a deadline passed returns at once"
    stop.set()
    assert clock.wait_until(clock.now() + 60, stop) is True, "a set stop event ends the wait"


# --- each fault's own events -----------------------------------------------------------------------------------

class FakeTimeline:
    """What the stage and the events mark, in order."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.t = 1000.0

    def mark(self, kind: str, name: str, change: str, *, data: Any = None, **details: Any) -> Record:
        self.t += 1
        record = Record(self.t, kind, name, change, tuple(sorted(details.items())), data=data)
        self.records.append(record)
        return record


class RepeatedKill:
    """Like pod-kill with ``every:``: the first round in ``inject``, the next from its own thread."""

    def __init__(self, events: FaultEvents, go: threading.Event, done: threading.Event) -> None:
        self.events, self.go, self.done = events, go, done
        self.thread = threading.Thread(target=self._round, daemon=True)

    def inject(self) -> None:
        self.events.acts()
        self.events.record("pod-kill", {"pod": "web-1", "node": "sim-a1", "round": 0})
        self.thread.start()

    def _round(self) -> None:
        self.go.wait(10)
        self.events.record("pod-kill", {"pod": "web-2", "node": "sim-b1", "round": 1})
        self.done.set()

    def revert(self) -> None:
        self.thread.join(10)


class Scale:
    """Another fault, being injected while the first one's background round runs."""

    def __init__(self, events: FaultEvents, go: threading.Event, done: threading.Event) -> None:
        self.events, self.go, self.done = events, go, done

    def inject(self) -> None:
        self.go.set()  # the other fault's round runs now, while this inject is still going on
        assert self.done.wait(10)
        self.events.record("scale", {"workload": "deployment/web", "replicas": 5})

    def revert(self) -> None:
        self.events.record("scale-undone", {"workload": "deployment/web"})


def test_a_background_round_is_recorded_under_its_own_fault_while_another_fault_is_injected() -> None:
    exp = parse_experiment({"name": "two", "target": {"namespace": "demo", "workload": "deployment/web"},
                            "faults": [{"type": "pod-kill", "every": "2s", "duration": "6s"},
                                       {"type": "scale", "at": "2s", "replicas": 5, "duration": "2s"}]},
                           load_registry())
    timeline, clock = FakeTimeline(), FakeClock()
    kill_ref, scale_ref = FaultRef(0, "pod-kill"), FaultRef(1, "scale")
    kill_events = FaultEvents(kill_ref, timeline.mark)
    scale_events = FaultEvents(scale_ref, timeline.mark)
    go, done = threading.Event(), threading.Event()
    faults = {kill_ref: RepeatedKill(kill_events, go, done), scale_ref: Scale(scale_events, go, done)}

    class Item:
        def __init__(self, ref: FaultRef, events: FaultEvents) -> None:
            self.ref, self.events, self.fault = ref, events, faults[ref]

    built = [Item(kill_ref, kill_events), Item(scale_ref, scale_events)]
    result = RunResult(experiment=exp, run_id="two-1", plan=[], events=[kill_events, scale_events])
    stage = FaultStage(cast(Any, built), cast(Timeline, timeline), result, lambda line: None, None)
    with contextlib.ExitStack() as reverts:
        Schedule([Slot(kill_ref, 0, 6), Slot(scale_ref, 2, 2)], clock).play(stage, 100.0, reverts)

    actions = [(r.name, r.get("fault"), r.get("round")) for r in timeline.records if r.kind == "action"]
    assert actions == [("pod-kill", "0:pod-kill", "0"), ("pod-kill", "0:pod-kill", "1"),
                       ("scale", "1:scale", None), ("scale-undone", "1:scale", None)]
    journal = result.freeze()
    touched = {w.label: w.touched for w in journal.windows}
    assert touched == {"0:pod-kill": ("pod-kill: node sim-a1, pod web-1", "pod-kill: node sim-b1, pod web-2"),
                       "1:scale": ("scale: workload deployment/web", "scale-undone: workload deployment/web")}
    kill = next(w for w in journal.windows if w.index == 0)
    assert kill.start == kill_events.acted, "the window starts where the fault said it acts"


def test_fault_events_count_the_first_act_only_and_say_which_fault_speaks() -> None:
    said: list[str] = []
    walls = iter([5.0, 9.0])
    events = FaultEvents(FaultRef(2, "node-failure"), None, say=said.append, wall=lambda: next(walls))
    assert events.acted is None
    events.acts()
    events.acts()
    events.say("nodes stopped")
    events.record("node-failure", {"nodes": "sim-a1"})  # no timeline (a plan): kept as touched only
    assert (events.acted, said, events.touched) == (5.0, ["2:node-failure: nodes stopped"],
                                                    ("node-failure: nodes sim-a1",))
    assert str(FaultRef(2, "node-failure")) == "2:node-failure"


def test_each_built_fault_has_its_own_events_and_shares_the_guard_and_the_hand_over_with_the_others() -> None:
    from resilience_tests.cluster.kube import Kube
    from resilience_tests.experiment.preflight import build_faults, fault_context
    from resilience_tests.faults.backup_restore import SHARED

    class Cluster:
        def namespace_exists(self, namespace: str) -> bool:
            return True

        def workload_labels(self, workload: object) -> dict[str, str]:
            return {"app": "web"}

    registry = load_registry()
    exp = parse_experiment({"name": "dr", "target": {"namespace": "demo", "workload": "deployment/web"},
                            "faults": [{"type": "backup", "engine": "builtin"},
                                       {"type": "disaster", "at": "1s", "what": "objects"},
                                       {"type": "restore", "at": "2s"}]}, registry)
    ctx = fault_context(cast(Kube, Cluster()), exp, run_id="dr-1", seed=0, namespace=None)
    timeline = FakeTimeline()
    built = build_faults(exp, ctx, registry, mark=timeline.mark)
    assert [str(b.ref) for b in built] == ["0:backup", "1:disaster", "2:restore"]
    contexts = [cast(Any, b.fault).ctx for b in built]
    assert all(c.guard is ctx.guard and c.shared is ctx.shared for c in contexts), "one guard, one hand-over"
    assert ctx.shared[SHARED]["engine"] == "builtin", "the backup's plan handed its engine over"
    contexts[1].record("disaster", {"what": "objects"})
    assert [(r.name, r.get("fault")) for r in timeline.records] == [("disaster", "1:disaster")]
    assert [b.events.touched for b in built] == [(), ("disaster",), ()]
    assert [b.slot for b in built] == [Slot(FaultRef(0, "backup"), 0), Slot(FaultRef(1, "disaster"), 1),
                                       Slot(FaultRef(2, "restore"), 2)]
