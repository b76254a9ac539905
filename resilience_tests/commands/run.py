"""``resilience run`` (experiments through pytest, results under one run id, the HTML report at the end) and
``resilience report`` (the HTML report of a results folder)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from resilience_tests.commands.common import Parser, say
from resilience_tests.errors import ResilienceError, UsageError
from resilience_tests.plugin import OPTIONS

if TYPE_CHECKING:
    from resilience_tests.reporting.html import Built


def add_run_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    run = sub.add_parser("run", help="run experiments through pytest (exit code is pytest's)")
    run.add_argument("paths", nargs="*", default=["experiments"], help="experiment files or directories")
    for flag, dest, help_text, kwargs in OPTIONS:
        run.add_argument(flag, dest=dest, help=help_text, **kwargs)
    run.add_argument("--pytest-args", default="", help="extra pytest arguments, quoted as one string")
    run.add_argument("--reports", default="reports", metavar="DIR",
                     help="results go to DIR/<run id>/ (default reports); ignored with --results-dir")
    run.add_argument("--no-report", action="store_true",
                     help="keep the results but do not build the HTML report at the end")


def add_report_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    report = sub.add_parser("report", help="build the HTML report of a run's results (Allure 3)",
                            description="Build one self-contained HTML file from a run's Allure results, with the "
                                        "history of earlier runs (reports/history.jsonl); print its path.")
    report.add_argument("results", nargs="?", type=Path, metavar="RESULTS_DIR",
                        help="a folder `resilience run` wrote (default: the newest under reports/)")
    report.add_argument("--reports", default="reports", type=Path, metavar="DIR",
                        help="where to look for the newest run (default reports)")


def pytest_args(args: argparse.Namespace) -> list[str]:
    argv: list[str] = []
    for path in args.paths:
        if not Path(path).exists():
            raise UsageError(f"experiment path {path} does not exist", hint="give a YAML file or a directory")
        argv += [path, "--experiments", path]
    try:
        extra = shlex.split(args.pytest_args)
    except ValueError as exc:  # No closing quotation
        raise UsageError(f"--pytest-args {args.pytest_args!r}: {str(exc).lower()}",
                         hint="quote it as a shell would, e.g. --pytest-args \"-k 'drain and not zone'\"") from None
    return argv + option_args(args) + extra


def option_args(args: argparse.Namespace) -> list[str]:
    """The plugin's options given on the command line, as pytest arguments."""
    argv: list[str] = []
    for flag, dest, _, kwargs in OPTIONS:
        value = getattr(args, dest, None)
        if value in (None, False, []) or flag == "--experiments":
            continue
        if kwargs.get("action") == "store_true":
            argv.append(flag)
        elif kwargs.get("action") == "append":
            argv += [part for item in value for part in (flag, str(item))]
        else:
            argv += [flag, str(value)]
    return argv


def run_command(args: argparse.Namespace) -> int:
    args.resilience_run_id = choose_run_id(args)  # handed to pytest as --run-id: one id for the whole run
    argv = pytest_args(args)
    given = bool(args.resilience_results_dir)
    results = Path(args.resilience_results_dir) if given else Path(args.reports) / args.resilience_run_id
    return run_pytest(argv, results, add_results_dir=not given, dry_run=bool(args.resilience_dry_run),
                    no_report=args.no_report)


def choose_run_id(args: argparse.Namespace) -> str:
    """The run's id: ``--run-id`` (checked, and never one whose results folder exists already), else a new one."""
    from resilience_tests.runids import check_run_id, new_run_id

    if not args.resilience_run_id:
        return new_run_id()
    run_id = check_run_id(args.resilience_run_id)
    if not args.resilience_results_dir and (Path(args.reports) / run_id).exists():
        raise UsageError(f"run id {run_id} was used already: {Path(args.reports) / run_id} exists",
                         hint="give another --run-id, or leave it out for a new one")
    return run_id


def alluredir_of(argv: Sequence[str]) -> Path | None:
    """The ``--alluredir`` among pytest arguments (``--alluredir X`` or ``--alluredir=X``; the last one wins)."""
    found: Path | None = None
    for i, arg in enumerate(argv):
        if arg == "--alluredir" and i + 1 < len(argv):
            found = Path(argv[i + 1])
        elif arg.startswith("--alluredir="):
            found = Path(arg.split("=", 1)[1])
    return found


def run_pytest(argv: list[str], results: Path, *, add_results_dir: bool, dry_run: bool, no_report: bool) -> int:
    """Run experiments through pytest with their results under ``results`` (Allure's in ``results/allure-results``
    unless the pytest arguments name an ``--alluredir``); build the HTML report from them at the end."""
    import pytest

    from resilience_tests.reporting.results import ALLURE_RESULTS

    if add_results_dir:
        argv = [*argv, "--results-dir", str(results)]
    alluredir = alluredir_of(argv)
    if alluredir is None:
        alluredir = results / ALLURE_RESULTS
        argv = [*argv, "--alluredir", str(alluredir)]
    code = int(pytest.main(["-p", "no:cacheprovider", *argv]))
    if not alluredir.is_dir() or dry_run:
        return code
    folder = results if results.is_dir() else alluredir  # where html/ goes
    if no_report:
        where = results if alluredir == results / ALLURE_RESULTS else alluredir
        say(f"results: {results} (build the report with `resilience report {where}`)")
        return code
    try:
        say(f"report: {build_html(folder, alluredir).index}")
    except ResilienceError as exc:
        say(f"results: {results}; the HTML report was not built: {str(exc).splitlines()[0]}", file=sys.stderr)
    return code


def build_html(results: Path, alluredir: Path | None = None) -> Built:
    from resilience_tests.reporting import html

    return html.build(results, allure=alluredir)


def report_command(args: argparse.Namespace) -> int:
    from resilience_tests.reporting import html

    results = html.find_results(args.results, args.reports)
    built = html.build(results)
    say(f"report: {built.index} ({built.tests} experiment(s), {built.size / 1e6:.1f} MB, {built.seconds:.1f} s)")
    return 0
