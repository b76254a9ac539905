"""Where a run's results go: one folder per run under ``reports/``.

::

    reports/
      history.jsonl                  Allure's history, carried from run to run (trends of a nightly job)
      <run id>/                      one ``resilience run`` (or one pytest session given --results-dir)
        summary.json                 every experiment's outcome and verdicts (docs/reports.md)
        experiments/<experiment id>/ ``<run id>-<n>``, the id of the experiment's lease and changes
          journal.json               everything the run observed
          timeline.png               the timeline plot
          load/                      per-second samples, Locust's stats and logs
        allure-results/              what allure-pytest wrote (with --alluredir)
        html/index.html              the report `resilience report` builds: one self-contained file

What a run writes may hold cluster data (names, events, messages, failure reasons): files are written 0600 and
folders 0700. The results folder itself is made 0700 when the run creates it or it holds nothing but a run's
outputs; a folder of your own that holds other files keeps its mode (its run subfolders are still 0700).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from resilience_tests.runids import new_run_id

DEFAULT_REPORTS = Path("reports")
HISTORY_FILE = "history.jsonl"
SUMMARY_FILE = "summary.json"
ALLURE_RESULTS = "allure-results"
HTML_DIR = "html"
EXPERIMENTS = "experiments"
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
RUN_OUTPUTS = frozenset({SUMMARY_FILE, ALLURE_RESULTS, HTML_DIR, EXPERIMENTS})


def new_results_id() -> str:
    """A results folder name: a new run id (sortable by time, unique between two runs started the same second)."""
    return new_run_id()


def results_dir(config: pytest.Config) -> Path | None:
    """The run's results folder (``--results-dir``), None when the run keeps no files."""
    value = config.getoption("resilience_results_dir", None) or config.getini("resilience_results_dir")
    return Path(value).resolve() if value else None


def experiment_dir(results: Path, run_id: str) -> Path:
    """Where one experiment's journal, plot and load files go."""
    return results / EXPERIMENTS / run_id


def private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner can read (created with its parents if missing; made 0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    path.chmod(PRIVATE_DIR)
    return path


def secure_results(results: Path) -> None:
    """Make a run's results folder private before anything is written into it: created 0700 when missing, made
    0700 when it holds nothing but a run's outputs (what allure-pytest created a moment before), left as it is
    when it holds other files (a folder of your own); its ``experiments/`` folder is private either way."""
    fresh = not results.exists()
    results.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    if fresh or {p.name for p in results.iterdir()} <= RUN_OUTPUTS:
        results.chmod(PRIVATE_DIR)
    private_dir(results / EXPERIMENTS)
    if (results / ALLURE_RESULTS).is_dir() and not (results / ALLURE_RESULTS).is_symlink():
        (results / ALLURE_RESULTS).chmod(PRIVATE_DIR)


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` as a 0600 file, whole or not at all (a temporary file beside it, then renamed)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def private_tree(root: Path) -> None:
    """Make every folder under ``root`` 0700 and every file 0600 (what other tools wrote there: Locust's files,
    allure-pytest's results, the Allure tool's report). Symbolic links are left alone."""
    if not root.is_dir() or root.is_symlink():
        return
    root.chmod(PRIVATE_DIR)
    for path in root.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_symlink():
                continue
            path.chmod(PRIVATE_DIR if path.is_dir() else PRIVATE_FILE)


ALLURE_FILES = ("*-result.json", "*-container.json", "*-attachment*", "environment.properties", "categories.json",
                "executor.json")


def private_allure(alluredir: Path) -> None:
    """Make allure-pytest's files 0600, and the folder 0700 when it holds nothing else (``--alluredir .`` must
    not turn a source folder private)."""
    if not alluredir.is_dir() or alluredir.is_symlink():
        return
    ours = {p for pattern in ALLURE_FILES for p in alluredir.glob(pattern) if p.is_file() and not p.is_symlink()}
    for path in ours:
        with contextlib.suppress(OSError):
            path.chmod(PRIVATE_FILE)
    if all(p in ours for p in alluredir.iterdir()):
        alluredir.chmod(PRIVATE_DIR)


def journal_records(results: Path, run_id: str) -> list[dict[str, Any]]:
    """The ``records`` of one experiment's ``journal.json`` under ``results`` (none when it is missing or
    unreadable: the caller judges without them)."""
    try:
        data = json.loads((experiment_dir(results, run_id) / "journal.json").read_text())
    except (OSError, ValueError):
        return []
    records = data.get("records") if isinstance(data, dict) else None
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
