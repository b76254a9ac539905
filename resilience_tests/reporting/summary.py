"""``summary.json``: one file per run for CI dashboards (schema in docs/reports.md)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from resilience_tests import __version__
from resilience_tests.errors import UsageError
from resilience_tests.experiment.journal import JOURNAL_VERSION, Journal, verdict_json, window_json

SUMMARY_VERSION = 1


def build(journals: list[Journal], *, interrupted: bool = False) -> dict[str, Any]:
    """The summary of a run's experiments: outcomes, verdicts with measured values and thresholds, durations,
    revert outcomes."""
    outcomes = Counter(j.outcome for j in journals)
    started = [j.started for j in journals if j.started]
    ended = [j.ended for j in journals if j.ended]
    return {
        "version": SUMMARY_VERSION,
        "journal_version": JOURNAL_VERSION,
        "tool_version": __version__,
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
        "run_id": j.run_id,
        "outcome": j.outcome,
        "duration_s": round(j.ended - j.started, 3) if j.ended and j.started else 0.0,
        "context": j.facts.context,
        "seed": j.facts.seed,
        "faults": [window_json(w) for w in j.windows],
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
    if versions != (SUMMARY_VERSION, JOURNAL_VERSION):
        raise UsageError(f"{path} was written by summary version {versions[0]} (journal version {versions[1]}); "
                         f"this resilience-tests {__version__} reads summary version {SUMMARY_VERSION} (journal "
                         f"version {JOURNAL_VERSION})",
                         hint="rerun the experiments, or use the resilience-tests version that wrote them")
    return dict(data)
