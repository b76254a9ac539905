"""The change ledger: what every run changed on an object, so that reverts in any order end where they began.

Every change a fault makes to a node or workload is recorded on the object itself, in one annotation
(``resilience-tests.io/changes``, a JSON list), in the same write as the change. An entry names the run,
the fault, the field (``replicas``, ``unschedulable``, ``image/web``, ``env/web/MODE``, ``label/KEY``,
``taint/KEY/EFFECT``), the value before and the value set (``None``: absent).

Entries of one field form a stack in the order they were made. Undoing an entry:

- at the top of its stack: the field is set back to the entry's ``before``, but only if it still holds the
  entry's ``after``; if someone else changed it since, it is left alone and reported;
- below the top: the field is not touched (a later change owns its value); the entry above inherits its
  ``before``, so that undoing that one later restores the value from before both.

So two runs scaling 4 -> 2 and 2 -> 1 end at 4 whichever reverts first, and a ``kubectl apply`` made after a
run killed is never rolled back by ``resilience cleanup``. Pure functions; :mod:`resilience_tests.cluster.kube`
reads and writes the objects.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

LEDGER_ANNOTATION = "resilience-tests.io/changes"
RUN_LABEL = "resilience-tests.io/changed"  # a label (so it can be selected) on every object a run changed

Value = Any  # JSON: str, int, bool, None (absent) or a list/dict


@dataclass(frozen=True)
class Change:
    """One change a fault made to one field of one object."""

    run: str
    fault: str
    field: str
    before: Value
    after: Value


@dataclass(frozen=True)
class Undo:
    """What undoing some entries means for an object: values to set, entries left, and conflicts."""

    restore: dict[str, Value]
    ledger: tuple[Change, ...]
    conflicts: tuple[str, ...]


def parse(text: str | None) -> tuple[Change, ...]:
    """The ledger of an annotation value (empty when absent or unreadable)."""
    if not text:
        return ()
    try:
        rows = json.loads(text)
        return tuple(Change(str(r["run"]), str(r["fault"]), str(r["field"]), r.get("before"), r.get("after"))
                     for r in rows)
    except (ValueError, TypeError, KeyError):
        return ()


def dump(ledger: tuple[Change, ...]) -> str | None:
    """The annotation value of a ledger (None removes the annotation when the ledger is empty)."""
    return json.dumps([asdict(c) for c in ledger], separators=(",", ":")) if ledger else None


def record(ledger: tuple[Change, ...], run: str, fault: str, current: dict[str, Value],
           wanted: dict[str, Value]) -> tuple[Change, ...]:
    """The ledger after ``run``'s ``fault`` sets the fields of ``wanted`` (their values now: ``current``)."""
    return ledger + tuple(Change(run, fault, name, current.get(name), value) for name, value in wanted.items()
                          if current.get(name) != value)


def undo(ledger: tuple[Change, ...], current: dict[str, Value], *, run: str,
         fault: str | None = None) -> Undo:
    """Undo the entries of ``run`` (only ``fault``'s, if given), newest first, against the ``current`` values."""
    entries: list[Change | None] = list(ledger)
    values = dict(current)
    restore: dict[str, Value] = {}
    conflicts: list[str] = []
    mine = [i for i, c in enumerate(ledger) if c.run == run and (fault is None or c.fault == fault)]
    for index in reversed(mine):
        change = ledger[index]
        above = next((i for i in range(index + 1, len(entries))
                      if (later := entries[i]) is not None and later.field == change.field), None)
        if above is not None:  # a later change owns the value: hand it our 'before'
            later = entries[above]
            assert later is not None
            entries[above] = Change(later.run, later.fault, later.field, change.before, later.after)
        elif values.get(change.field) == change.after:
            values[change.field] = restore[change.field] = change.before
        else:
            conflicts.append(f"{change.field} is {values.get(change.field)!r}, not the {change.after!r} this run "
                             f"set: changed by someone else since, left as it is")
        entries[index] = None
    return Undo(restore, tuple(c for c in entries if c is not None), tuple(conflicts))


def runs(ledger: tuple[Change, ...]) -> list[str]:
    """The runs that have entries, in the order of their first entry."""
    return list(dict.fromkeys(c.run for c in ledger))
