"""The ready-pods replay (cluster/ready.py) that the recovery-time check and the plot's replicas panel share."""

from __future__ import annotations

from resilience_tests.cluster.ready import counts_as_ready, replay_ready
from resilience_tests.cluster.timeline import PodRecord, PodState

ZONES = {"node-a": "zone-a", "node-b": "zone-b"}


def rec(t: float, name: str, change: str = "updated", *, ready: bool = True, terminating: bool = False,
        node: str | None = "node-a", revision: str = "1") -> PodRecord:
    return PodRecord(t, name, change, PodState(phase="Running", ready=ready, node=node, terminating=terminating,
                                               labels={"pod-template-hash": revision}))


def totals(records: list[PodRecord], **kwargs: object) -> list[tuple[float, int]]:
    return [(step.record.t, step.total) for step in replay_ready(records, **kwargs)]  # type: ignore[arg-type]


def test_a_pod_counts_while_ready_and_not_terminating_nor_deleted() -> None:
    assert counts_as_ready(rec(0, "a"))
    assert not counts_as_ready(rec(0, "a", ready=False))
    assert not counts_as_ready(rec(0, "a", terminating=True))
    assert not counts_as_ready(rec(0, "a", "deleted"))
    records = [rec(0, "a", "initial"), rec(0, "b", "initial"), rec(1, "a", terminating=True),
               rec(2, "c", "added", ready=False), rec(3, "c"), rec(4, "a", "deleted", ready=False)]
    assert totals(records) == [(0, 1), (0, 2), (1, 1), (2, 1), (3, 2), (4, 2)]


def test_nothing_to_replay_gives_nothing() -> None:
    assert totals([]) == []


def test_a_deleted_pod_is_forgotten_and_a_new_pod_of_its_name_counts_again() -> None:
    """A StatefulSet's web-0 is deleted and comes back under the same name."""
    records = [rec(0, "web-0"), rec(1, "web-0", "deleted", ready=False), rec(2, "web-0", "added", ready=False),
               rec(3, "web-0")]
    assert totals(records) == [(0, 1), (1, 0), (2, 0), (3, 1)]


def test_counts_adds_a_condition_such_as_the_current_revision() -> None:
    records = [rec(0, "old-1", revision="1"), rec(0, "old-2", revision="1"), rec(5, "new-1", "added", revision="2"),
               rec(6, "old-1", "deleted", revision="1"), rec(7, "new-2", "added", revision="2")]
    assert totals(records, counts=lambda r: r.state.labels.get("pod-template-hash") == "2") == \
        [(0, 0), (0, 0), (5, 1), (6, 1), (7, 2)]
    assert totals(records) == [(0, 1), (0, 2), (5, 3), (6, 2), (7, 3)]


def test_groups_follow_each_pod_and_a_record_without_a_node_leaves_it_where_it_was() -> None:
    def zone(record: PodRecord, was: str) -> str:
        return ZONES.get(record.state.node, "?") if record.state.node else was

    records = [rec(0, "a", ready=False, node=None), rec(1, "a", node="node-a"), rec(2, "b", node="node-b"),
               rec(3, "a", node=None), rec(4, "a", ready=False, node="node-b")]
    steps = list(replay_ready(records, group=zone, first="?"))
    assert [(s.was, s.group, s.counted) for s in steps] == [
        ("?", "?", False), ("?", "zone-a", True), ("?", "zone-b", True), ("zone-a", "zone-a", True),
        ("zone-a", "zone-b", False)]
    assert [dict(s.ready) for s in steps] == [
        {"?": 0}, {"?": 0, "zone-a": 1}, {"?": 0, "zone-a": 1, "zone-b": 1}, {"?": 0, "zone-a": 1, "zone-b": 1},
        {"?": 0, "zone-a": 0, "zone-b": 1}]
    assert [s.total for s in steps] == [0, 1, 2, 2, 1]


def test_each_step_holds_its_own_counts() -> None:
    steps = list(replay_ready([rec(0, "a"), rec(1, "a", "deleted", ready=False)]))
    assert [dict(s.ready) for s in steps] == [{"": 1}, {"": 0}]
