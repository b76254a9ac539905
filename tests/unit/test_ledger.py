"""The change ledger: stacked changes revert in any order, by any run, to where they began (pure)."""

from __future__ import annotations

import itertools
import random

from resilience_tests.cluster.ledger import Change, dump, parse, record, undo


def apply(ledger: tuple[Change, ...], value: int, run: str, fault: str, to: int) -> tuple[tuple[Change, ...], int]:
    return record(ledger, run, fault, {"replicas": value}, {"replicas": to}), to


def revert(ledger: tuple[Change, ...], value: int, run: str, fault: str | None = None) -> tuple[tuple[Change, ...],
                                                                                                 int, tuple[str, ...]]:
    result = undo(ledger, {"replicas": value}, run=run, fault=fault)
    return result.ledger, result.restore.get("replicas", value), result.conflicts


def test_two_faults_of_one_run_revert_newest_first_to_the_original() -> None:
    ledger, value = apply((), 4, "r", "0:scale", 1)
    ledger, value = apply(ledger, value, "r", "1:scale", 0)
    ledger, value, _ = revert(ledger, value, "r", "1:scale")
    assert value == 1
    ledger, value, _ = revert(ledger, value, "r", "0:scale")
    assert (value, ledger) == (4, ())


def test_two_runs_end_at_the_original_whichever_reverts_first() -> None:
    for first, second in (("A", "B"), ("B", "A")):
        ledger, value = apply((), 4, "A", "0:scale", 2)
        ledger, value = apply(ledger, value, "B", "0:scale", 1)
        ledger, value, conflicts = revert(ledger, value, first)
        ledger, value, conflicts2 = revert(ledger, value, second)
        assert (value, ledger, conflicts + conflicts2) == (4, (), ()), (first, second)


def test_a_value_changed_by_someone_else_is_left_alone_and_reported() -> None:
    ledger, value = apply((), 4, "A", "0:scale", 2)
    value = 6  # kubectl apply after the run was killed
    ledger, value, conflicts = revert(ledger, value, "A")
    assert value == 6 and ledger == ()
    assert conflicts == ("replicas is 6, not the 2 this run set: changed by someone else since, left as it is",)


def test_any_order_of_any_number_of_stacked_changes_ends_at_the_original() -> None:
    rng = random.Random(3)
    for _ in range(300):
        count = rng.randint(1, 5)
        ledger: tuple[Change, ...] = ()
        value = 10
        faults = []
        for i in range(count):
            run = rng.choice("ABC")
            ledger, value = apply(ledger, value, run, f"{i}:scale", rng.randint(0, 9))
            faults.append((run, f"{i}:scale"))
        for run, fault in rng.sample(faults, len(faults)):
            ledger, value, conflicts = revert(ledger, value, run, fault)
            assert not conflicts
        assert (value, ledger) == (10, ())


def test_a_change_to_the_value_already_there_records_nothing_and_the_ledger_round_trips() -> None:
    assert record((), "r", "f", {"replicas": 3}, {"replicas": 3}) == ()
    ledger = record((), "r", "f", {"image/web": "demo:1", "env/web/MODE": None},
                    {"image/web": "demo:2", "env/web/MODE": "slow"})
    assert parse(dump(ledger)) == ledger and dump(()) is None and parse("not json") == ()
    assert list(itertools.chain(c.field for c in ledger)) == ["image/web", "env/web/MODE"]
