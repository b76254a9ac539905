"""Experiments as pytest items: one YAML file, one test (the pytest glue, next to plugin.py)."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resilience_tests.errors import ResilienceError
from resilience_tests.experiment.model import Experiment, load_experiment
from resilience_tests.experiment.runner import Runner, RunResult
from resilience_tests.session import get_session

_terminal_lock = threading.Lock()  # event lines (the run's thread) and the status line (its ticker) take turns


class ExperimentFailed(ResilienceError):
    """The experiment ran but a fault or revert failed."""


class ExperimentFile(pytest.File):
    """A YAML file holding one experiment."""

    def collect(self) -> Iterator[ExperimentItem]:
        try:
            experiment = load_experiment(self.path, get_session(self.config).registry)
        except ResilienceError as exc:
            raise self.CollectError(str(exc)) from None
        yield ExperimentItem.from_parent(self, name=experiment.name, experiment=experiment)


class ExperimentItem(pytest.Item):
    """Runs one experiment against the selected cluster."""

    def __init__(self, *, experiment: Experiment, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.experiment = experiment
        self.result: RunResult | None = None
        self.add_marker(pytest.mark.experiment(faults=[f.type for f in experiment.faults]))

    def runtest(self) -> None:
        run = get_session(self.config)
        quiet = bool(self.config.getoption("resilience_no_progress", False) or
                     self.config.getini("resilience_no_progress"))
        runner = Runner(run.kube(), run.registry, seed=run.seed, namespace=run.namespace, say=self._say,
                        progress=None if quiet else self._progress)
        try:
            self.result = runner.run(self.experiment, dry_run=run.dry_run)
        finally:
            if self._status_shown:
                self._say("")  # clears the status line, writes nothing
        if run.dry_run:
            self.user_properties.append(("plan", "\n".join(self.result.plan)))
            return
        result = self.result
        for verdict in result.steady:
            self.user_properties.append((f"steady-state {verdict.key}", verdict.message))
        for verdict in result.verdicts:
            self.user_properties.append((f"verdict {verdict.key}", verdict.message))
        problems = result.errors + result.revert_errors
        if problems:
            raise ExperimentFailed(f"{self.experiment.name}: {'; '.join(problems)}")
        if result.aborted:
            details = "\n".join(v.message for v in result.steady if not v.passed)
            raise ExperimentFailed(f"{self.experiment.name}: {result.aborted}\n{details}")
        failed = result.failed_verdicts
        if failed:
            raise ExperimentFailed(f"{self.experiment.name}: {len(failed)} of {len(result.verdicts)} SLA checks "
                                   "failed\n" + "\n".join(v.message for v in failed))

    _status_shown = False
    _status_written = 0.0
    PLAIN_STATUS_EVERY = 10.0  # seconds between status lines when the output is not a terminal (CI logs)

    def _terminal(self) -> tuple[Any, Any]:
        return (self.config.pluginmanager.get_plugin("terminalreporter"),
                self.config.pluginmanager.get_plugin("capturemanager"))

    def _say(self, line: str) -> None:
        """An event line on the terminal while the experiment runs (not captured: a game day watches it)."""
        reporter, capture = self._terminal()
        if reporter is None:
            return
        with _terminal_lock, capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            self._clear_status(reporter)  # the status line gives way, and comes back at the next tick
            if line:
                reporter.ensure_newline()
                reporter.write_line(f"[resilience {time.strftime('%H:%M:%S')}] {line}")

    def _clear_status(self, reporter: Any) -> None:
        if self._status_shown:
            reporter.rewrite("", erase=True)
            reporter.write("\r")
            self._status_shown = False

    def _progress(self, line: str) -> None:
        """The status line: rewritten in place on a terminal, a plain line every 10 s otherwise."""
        reporter, capture = self._terminal()
        if reporter is None:
            return
        if reporter.isatty():
            with _terminal_lock, capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
                reporter.ensure_newline()
                reporter.rewrite(line[: shutil.get_terminal_size().columns - 1], erase=True)
                self._status_shown = True
        elif time.monotonic() - self._status_written >= self.PLAIN_STATUS_EVERY:
            self._status_written = time.monotonic()
            self._say(line)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ResilienceError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"experiment {self.experiment.name}"
