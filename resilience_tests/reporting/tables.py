"""Plain-text views of a journal: the verdict table, the failed requests, the cluster's events."""

from __future__ import annotations

from resilience_tests.experiment.journal import Journal
from resilience_tests.load.samples import by_second

MAX_LINES = 2000
EVENT_KINDS = ("event", "node", "fault", "action", "run", "watch")


def _at(journal: Journal, t: float) -> str:
    return f"{journal.offset(t):+8.2f}s"


def verdict_table(journal: Journal) -> str:
    """One row per verdict: check, result, measured, required, window; evidence below each failed one."""
    rows = [("kind", "check", "result", "measured", "required", "window")]
    for kind, verdicts in (("steady state", journal.steady), ("SLA", journal.verdicts)):
        rows += [(kind, v.check, "passed" if v.passed else "FAILED", v.measured, v.threshold, v.window)
                 for v in verdicts]
    widths = [min(40, max(len(r[i]) for r in rows)) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    for verdict in (*journal.steady, *journal.verdicts):
        if verdict.evidence:
            lines += ["", f"{verdict.check} ({'passed' if verdict.passed else 'FAILED'}):",
                      *(f"  - {line}" for line in verdict.evidence)]
    return "\n".join(lines) + "\n"


def failed_request_lines(journal: Journal) -> list[str]:
    """Every failed request kept in the samples: when (from ``at: 0``), which request, why, which pod answered,
    and which fault was active then."""
    if journal.load is None:
        return []
    lines = []
    for second in by_second(journal.load.samples).values():
        for failure in second.failed:
            active = [w.label for w in journal.windows if w.start <= failure.t <= (w.end or journal.ended)]
            pod = f" answered by {failure.pod}" if failure.pod else ""
            during = f" during {', '.join(active)}" if active else ""
            lines.append(f"{_at(journal, failure.t)}  {failure.name}: {failure.reason}{pod}{during}")
        if second.dropped_failures:
            lines.append(f"{_at(journal, second.t)}  ... {second.dropped_failures} more failures in this second")
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"... and {len(lines) - MAX_LINES} more"]
    return lines


def event_lines(journal: Journal) -> list[str]:
    """The cluster's events, node changes, fault marks and the run's actions, in time order, from ``at: 0``;
    pods only when they end (with exit codes)."""
    lines = []
    for record in journal.records:
        details = record.values()
        if record.pod is not None:
            if record.change != "deleted" and not record.pod.exits:
                continue
            details = record.pod.shown()
        elif record.kind not in EVENT_KINDS:
            continue
        shown = " ".join(f"{k}={v}" for k, v in details.items() if v not in (None, "") and k != "labels")
        lines.append(f"{_at(journal, record.t)}  {record.kind:<6} {record.name} {record.change}  {shown}".rstrip())
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"... and {len(lines) - MAX_LINES} more"]
    return lines
