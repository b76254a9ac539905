"""``summary.json``: one file per run for CI dashboards (schema in docs/reports.md).

Version 2 carries the run id, each experiment's id, each verdict's numbers with their unit, and fault windows
in seconds from ``at: 0``; version 1 (display texts only) is still read.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from resilience_tests import __version__
from resilience_tests.errors import UsageError
from resilience_tests.experiment.journal import JOURNAL_VERSION, Journal, verdict_json, window_json

SUMMARY_VERSION = 2
READABLE = {(1, 1), (SUMMARY_VERSION, JOURNAL_VERSION)}
"""(summary version, journal version) pairs :func:`read` accepts: this one, and version 1 of older runs."""


def build(journals: list[Journal], *, interrupted: bool = False, run_id: str = "") -> dict[str, Any]:
    """The summary of a run's experiments: outcomes, verdicts with measured values and thresholds, durations,
    revert outcomes. ``run_id`` defaults to the run of the first experiment."""
    outcomes = Counter(j.outcome for j in journals)
    started = [j.started for j in journals if j.started]
    ended = [j.ended for j in journals if j.ended]
    return {
        "version": SUMMARY_VERSION,
        "journal_version": JOURNAL_VERSION,
        "tool_version": __version__,
        "run_id": run_id or (journals[0].run if journals else ""),
        "started": min(started) if started else 0.0,
        "ended": max(ended) if ended else 0.0,
        "interrupted": interrupted,
        "passed": all(j.outcome in ("passed", "planned") for j in journals),
        "outcomes": dict(sorted(outcomes.items())),
        "experiments": [_experiment(j) for j in journals],
    }


def _experiment(j: Journal) -> dict[str, Any]:
    return {
        "name": j.experiment.name,
        "source": j.experiment.source,
        "run_id": j.run,
        "experiment_id": j.run_id,
        "outcome": j.outcome,
        "duration_s": round(j.ended - j.started, 3) if j.ended and j.started else 0.0,
        "context": j.facts.context,
        "seed": j.facts.seed,
        "faults": [window_json(w, j.zero or j.started) for w in j.windows],
        "revert_errors": list(j.revert_errors),
        "errors": list(j.errors),
        "aborted": j.aborted,
        "steady_state": [verdict_json(v) for v in j.steady],
        "slas": [verdict_json(v) for v in j.verdicts],
    }


def read(path: Path) -> dict[str, Any]:
    """Read a summary, refusing one this version cannot read (one line saying what to do)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable summary ({exc})", hint="rerun the experiments") from None
    versions = (data.get("version"), data.get("journal_version")) if isinstance(data, dict) else (None, None)
    if versions not in READABLE:
        raise UsageError(f"{path} was written by summary version {versions[0]} (journal version {versions[1]}); "
                         f"this resilience-tests {__version__} reads summary versions 1 and {SUMMARY_VERSION} "
                         f"(journal version {JOURNAL_VERSION})",
                         hint="rerun the experiments, or use the resilience-tests version that wrote them")
    return dict(data)


def experiment_id(entry: dict[str, Any]) -> str:
    """An experiment's id in a summary of either version (version 1 called it ``run_id``)."""
    return str(entry.get("experiment_id") or entry.get("run_id") or "")
