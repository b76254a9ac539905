"""The HTML report: Allure 3's command-line tool turns a run's Allure results into one self-contained file.

The tool is the npm package ``allure``, pinned by ``allure3/package.json`` and its lock file, and installed
with ``npm ci`` into ``$RESILIENCE_CACHE/allure/<lock digest>/`` (default ``~/.cache/resilience-tests``), never
into the repo: ``python3 -m resilience_tests.reporting.html --install`` (scripts/setup runs it). History is
carried between runs in ``reports/history.jsonl`` so a nightly job's report shows trends.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from resilience_tests.errors import ResilienceError, UsageError, WaitTimeoutError
from resilience_tests.reporting import summary
from resilience_tests.reporting.allure import allure3_categories
from resilience_tests.reporting.results import (
    ALLURE_RESULTS,
    HISTORY_FILE,
    HTML_DIR,
    PRIVATE_FILE,
    SUMMARY_FILE,
    private_tree,
)
from resilience_tests.waiting import wait_until

PINNED = Path(__file__).parent / "allure3"
INSTALL_HINT = "run `python3 -m resilience_tests.reporting.html --install` (or scripts/setup)"
GENERATE_TIMEOUT_S = 600


class ReportError(ResilienceError):
    """The report could not be built."""


def cache_root() -> Path:
    """The cache the tool is installed under (``$RESILIENCE_CACHE``, default ``~/.cache/resilience-tests``)."""
    return Path(os.environ.get("RESILIENCE_CACHE") or Path.home() / ".cache" / "resilience-tests")


def tool_dir() -> Path:
    """Where the pinned tool is installed: one folder per lock file, so a new pin never reuses an old install."""
    digest = hashlib.sha256((PINNED / "package-lock.json").read_bytes()).hexdigest()[:12]
    return cache_root() / "allure" / digest


def tool_path() -> Path:
    return tool_dir() / "node_modules" / ".bin" / "allure"


NODE_MAJOR = 20


def check_node() -> None:
    """Node.js must be there and new enough for the Allure tool."""
    node = shutil.which("node")
    if node is None:
        raise UsageError("node is not installed, and the HTML report needs Node.js",
                         hint=f"install Node.js {NODE_MAJOR} or newer with npm, then " + INSTALL_HINT)
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return  # let the tool itself say what is wrong
    if major < NODE_MAJOR:
        raise UsageError(f"Node.js {version} is too old for the Allure tool",
                         hint=f"install Node.js {NODE_MAJOR} or newer (NodeSource or nvm), then " + INSTALL_HINT)


def install(*, quiet: bool = False) -> Path:
    """Install the pinned Allure tool with ``npm ci`` (idempotent); return its path."""
    tool = tool_path()
    if tool.exists():
        return tool
    check_node()
    npm = shutil.which("npm")
    if npm is None:
        raise ReportError("npm is not installed, and the HTML report needs Node.js and npm",
                          hint="install them (Debian: `apt-get install nodejs npm`), then " + INSTALL_HINT)
    target = tool_dir()
    target.parent.mkdir(parents=True, exist_ok=True)  # staged next to it: os.replace cannot cross filesystems
    staging = Path(tempfile.mkdtemp(prefix="allure-", dir=target.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(PINNED / name, staging / name)
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=staging,
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise ReportError(f"npm ci of the Allure tool failed (exit {done.returncode}): {tail}",
                              hint="check npm's registry access, then " + INSTALL_HINT)
        if not target.exists():
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not quiet:
        print(f"Allure tool installed: {tool}")
    return tool


@dataclass(frozen=True)
class Built:
    """A built report."""

    index: Path
    seconds: float
    size: int
    tests: int


def holds_allure_results(folder: Path) -> bool:
    """Whether ``folder`` is a folder of Allure results (``*-result.json`` files)."""
    return folder.is_dir() and any(folder.glob("*-result.json"))


def allure_source(results: Path) -> Path:
    """Where the Allure results of ``results`` are: ``results/allure-results`` (a folder `resilience run` wrote),
    or ``results`` itself (a plain Allure results folder, e.g. one given to ``--alluredir``)."""
    ours = results / ALLURE_RESULTS
    if holds_allure_results(ours):
        return ours
    if holds_allure_results(results):
        return results
    raise UsageError(f"{results} holds no Allure results (no *-result.json in it nor in {ours})",
                     hint="give a folder `resilience run` wrote, or an --alluredir folder of allure-pytest; run "
                          "experiments with `resilience run` (or pytest --alluredir DIR --results-dir DIR)")


def find_results(path: Path | None, reports: Path = Path("reports")) -> Path:
    """The results folder to report on: ``path`` (a folder `resilience run` wrote, its ``allure-results``, or a
    plain Allure results folder), or the newest run under ``reports/``."""
    if path is None:
        runs = sorted((p for p in reports.glob("*/") if (p / ALLURE_RESULTS).is_dir()),
                      key=lambda p: p.stat().st_mtime) if reports.is_dir() else []
        if not runs:
            raise UsageError(f"no results under {reports}/", hint="run experiments first: `resilience run`")
        return runs[-1]
    if not path.exists():
        raise UsageError(f"results folder {path} does not exist", hint="give a folder `resilience run` wrote")
    if path.name == ALLURE_RESULTS:
        path = path.parent  # the report goes beside it, in html/
    return path


@contextlib.contextmanager
def history_lock(history: Path, *, timeout: float = GENERATE_TIMEOUT_S + 30) -> Iterator[None]:
    """Hold the history file's lock: two reports built at once (two jobs sharing a reports folder) append to
    the history one after the other instead of writing it together."""
    history.parent.mkdir(parents=True, exist_ok=True)
    with open(history.with_name(history.name + ".lock"), "w") as handle:
        def taken() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        try:
            wait_until(f"the lock of {history}", taken, timeout=timeout, interval=0.2, max_interval=1.0)
        except WaitTimeoutError:
            raise ReportError(f"another report has been writing {history} for {timeout:.0f} s",
                              hint="wait for it to finish, or pass another history file") from None
        yield


def build(results: Path, *, history: Path | None = None, name: str | None = None,
          allure: Path | None = None) -> Built:
    """Build ``<results>/html/index.html`` from the Allure results in ``allure`` (default: ``<results>/allure-results``,
    or ``results`` itself when it is a plain Allure results folder); history in ``history`` (default:
    ``history.jsonl`` next to the results folder)."""
    results = results.resolve()
    if allure is None:
        allure_results = allure_source(results)
    elif holds_allure_results(allure):
        allure_results = allure.resolve()
    else:
        raise UsageError(f"{allure} holds no Allure results (no *-result.json)",
                         hint="did the experiments run? see the output above")
    if (results / SUMMARY_FILE).exists():
        summary.read(results / SUMMARY_FILE)  # refuses results of another version, in one line
    check_node()
    tool = tool_path()
    if not tool.exists():
        raise UsageError(f"the Allure tool is not installed (looked for {tool})", hint=INSTALL_HINT)
    output = results / HTML_DIR
    history = history or results.parent / HISTORY_FILE
    config = {"name": name or f"resilience-tests: {results.name}", "output": str(output),
              "historyPath": str(history), "categories": allure3_categories(),
              "plugins": {"awesome": {"options": {"singleFile": True, "reportName": name or results.name,
                                                  "groupBy": ["feature"]}}}}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="resilience-report-") as scratch:
        rc = Path(scratch) / "allurerc.json"
        rc.write_text(json.dumps(config))
        tmp_out = Path(scratch) / "out"
        env = {**os.environ, "NO_COLOR": "1", "CI": "1"}
        try:
            with history_lock(history):
                done = subprocess.run([str(tool), "generate", "--config", str(rc), "--output", str(tmp_out),
                                       str(allure_results)], cwd=scratch, capture_output=True, text=True, env=env,
                                      timeout=GENERATE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ReportError(f"the Allure tool did not finish in {GENERATE_TIMEOUT_S} s",
                              hint="try again; report the results folder if it keeps happening") from None
        index = tmp_out / "index.html"
        if done.returncode != 0 or not index.exists():
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise ReportError(f"the Allure tool failed (exit {done.returncode}): {tail}",
                              hint=f"the results stay in {results}")
        if output.exists():
            shutil.rmtree(output)
        shutil.move(str(tmp_out), output)
    private_tree(output)  # the report holds what the journals hold: names, events, messages
    with contextlib.suppress(OSError):
        history.chmod(PRIVATE_FILE)
    tests = len(list(allure_results.glob("*-result.json")))
    final = output / "index.html"
    return Built(final, time.monotonic() - started, final.stat().st_size, tests)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--install"]:
        try:
            install()
        except ResilienceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    print("usage: python3 -m resilience_tests.reporting.html --install", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
