"""The ready-pods replay: the timeline's pod records, in time order, turned into how many pods were ready after
each one, per group (a zone, or one group for all). The recovery-time check and the plot's replicas panel both
read it, so "ready" means the same in a verdict and in the picture beside it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from resilience_tests.cluster.timeline import PodRecord


@dataclass(frozen=True)
class ReadyStep:
    """The ready pods just after one pod record.

    Attributes:
        record: the pod record.
        was: the group the pod was in before this record (``first`` for a pod not seen before).
        group: the group it is in after this record.
        counted: whether it counts as ready after this record.
        ready: ready pods per group after this record (every group seen so far, zeros included).
    """

    record: PodRecord
    was: str
    group: str
    counted: bool
    ready: Mapping[str, int]

    @property
    def total(self) -> int:
        """Ready pods over all groups."""
        return sum(self.ready.values())


def counts_as_ready(record: PodRecord) -> bool:
    """Whether a pod counts as ready after this record of it: Ready, not terminating, not deleted."""
    return record.change != "deleted" and record.state.ready and not record.state.terminating


def _one_group(record: PodRecord, was: str) -> str:
    return was


def _everyone(record: PodRecord) -> bool:
    return True


def replay_ready(records: Iterable[PodRecord], *, group: Callable[[PodRecord, str], str] = _one_group,
                 first: str = "", counts: Callable[[PodRecord], bool] = _everyone) -> Iterator[ReadyStep]:
    """Replay pod records (in the order given: :func:`~resilience_tests.cluster.timeline.pod_records` sorts them)
    and yield the ready pods after each.

    A pod counts as ready in its group from a record that :func:`counts_as_ready` and ``counts`` accept until
    the next record of it that one of them refuses. A deleted pod is forgotten: a new pod of the same name
    (a StatefulSet's) starts again from ``first``.

    Args:
        records: pod records in time order.
        group: the group a record puts its pod in, given the group it was in (``first`` for a new pod); e.g. the
            zone of its node, or the group it was in when the record names no node. Default: one group ``first``.
        first: the group of a pod before its first record.
        counts: a further condition for counting a pod as ready (e.g. that it is of the current revision).
    """
    ready: Counter[str] = Counter()
    pods: dict[str, tuple[str, bool]] = {}  # pod -> (its group, counted)
    for record in records:
        was, was_counted = pods.get(record.name, (first, False))
        now = group(record, was)
        counted = counts_as_ready(record) and counts(record)
        ready[was] -= int(was_counted)
        ready[now] += int(counted)
        if record.change == "deleted":
            pods.pop(record.name, None)
        else:
            pods[record.name] = (now, counted)
        yield ReadyStep(record, was, now, counted, dict(ready))
