"""Where a run's results go: one folder per run under ``reports/``.

::

    reports/
      history.jsonl                  Allure's history, carried from run to run (trends of a nightly job)
      <run id>/                      one ``resilience run`` (or one pytest session given --results-dir)
        summary.json                 every experiment's outcome and verdicts (docs/reports.md)
        experiments/<experiment run id>/
          journal.json               everything the run observed
          timeline.png               the timeline plot
          load/                      per-second samples, Locust's stats and logs
        allure-results/              what allure-pytest wrote (with --alluredir)
        html/index.html              the report `resilience report` builds: one self-contained file
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

DEFAULT_REPORTS = Path("reports")
HISTORY_FILE = "history.jsonl"
SUMMARY_FILE = "summary.json"
ALLURE_RESULTS = "allure-results"
HTML_DIR = "html"
EXPERIMENTS = "experiments"


def new_results_id() -> str:
    """A results folder name: sortable by time, unique between two runs started the same second."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def results_dir(config: pytest.Config) -> Path | None:
    """The run's results folder (``--results-dir``), None when the run keeps no files."""
    value = config.getoption("resilience_results_dir", None) or config.getini("resilience_results_dir")
    return Path(value).resolve() if value else None


def experiment_dir(results: Path, run_id: str) -> Path:
    """Where one experiment's journal, plot and load files go."""
    return results / EXPERIMENTS / run_id


def journal_records(results: Path, run_id: str) -> list[dict[str, Any]]:
    """The ``records`` of one experiment's ``journal.json`` under ``results`` (none when it is missing or
    unreadable: the caller judges without them)."""
    try:
        data = json.loads((experiment_dir(results, run_id) / "journal.json").read_text())
    except (OSError, ValueError):
        return []
    records = data.get("records") if isinstance(data, dict) else None
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
