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
from resilience_tests.experiment.journal import Journal
from resilience_tests.experiment.model import Experiment, load_experiment
from resilience_tests.experiment.runner import Runner
from resilience_tests.reporting.redact import redact
from resilience_tests.reporting.results import EXPERIMENTS, results_dir
from resilience_tests.session import get_session
from resilience_tests.text import printable

_terminal_lock = threading.Lock()  # event lines (the run's thread) and the status line (its ticker) take turns


class ExperimentFailed(ResilienceError):
    """The experiment ran but did not pass: the message says why, its first words say which way."""


class SLAViolated(ExperimentFailed, AssertionError):
    """The hypothesis failed: an SLA check measured a value beyond its threshold (a test failure, not an error)."""


class SteadyStateNotMet(ExperimentFailed):
    """The system was not in its steady state before any fault: the hypothesis was not tested."""


class RevertFailed(ExperimentFailed):
    """A change the run made could not be undone: the cluster may still be changed."""


class ExperimentError(ExperimentFailed):
    """A fault could not be injected or the run stopped with an error."""


class ExperimentInterrupted(ExperimentFailed):
    """The run was interrupted (Ctrl-C, SIGTERM, SIGHUP) after its faults were reverted."""


def journal_failure(journal: Journal) -> ExperimentFailed | None:
    """What a journal's outcome raises in its test, None when it passed. A failed revert comes first and names
    any SLA violation too: a failed cleanup is never reported as a failed hypothesis, nor hidden behind one."""
    name = journal.experiment.name
    failed = journal.failed_verdicts
    violations = "\n".join(v.message for v in failed)
    outcome = journal.outcome
    if outcome == "revert-failed":
        extra = f"\nand {len(failed)} check(s) failed:\n{violations}" if failed else ""
        return RevertFailed(f"revert failed: {name}: {'; '.join(journal.revert_errors)} (undo what is left with "
                            f"`resilience cleanup --run {journal.run_id}`){extra}")
    if outcome == "interrupted":
        reverted = [w.label for w in journal.windows if w.reverted]
        return ExperimentInterrupted(f"interrupted: {name}: {journal.aborted}; reverted: "
                                     f"{', '.join(reverted) or 'nothing was injected'}")
    if outcome == "error":
        return ExperimentError(f"experiment error: {name}: {'; '.join(journal.errors)}")
    if outcome == "steady-state-not-met":
        return SteadyStateNotMet(f"steady state not met: {name}: {journal.aborted}\n{violations}")
    if outcome == "sla-violated":
        return SLAViolated(f"SLA violated: {name}: {len(failed)} of {len(journal.verdicts)} SLA checks failed\n"
                           f"{violations}")
    return None


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
        self.journal: Journal | None = None
        self.add_marker(pytest.mark.experiment(faults=[f.type for f in experiment.faults]))

    def runtest(self) -> None:
        run = get_session(self.config)
        quiet = bool(self.config.getoption("resilience_no_progress", False) or
                     self.config.getini("resilience_no_progress"))
        results = results_dir(self.config)
        runner = Runner(run.kube(), run.registry, seed=run.seed, namespace=run.namespace, say=self._say,
                        progress=None if quiet else self._progress, platform=run.platform(),
                        results_dir=results / EXPERIMENTS if results else None, ids=run.ids)
        interrupted: KeyboardInterrupt | None = None
        try:
            runner.run(self.experiment, dry_run=run.dry_run)
        except KeyboardInterrupt as exc:
            if runner.journal is None:
                raise
            interrupted = exc
        except ResilienceError:
            if runner.journal is None:
                raise  # the journal's error is raised below, by its outcome
        finally:
            if self._status_shown:
                self._say("")  # clears the status line, writes nothing
            self.journal = runner.journal
            if self.journal is not None:
                self.config.hook.pytest_resilience_journal(config=self.config, item=self, journal=self.journal)
        if interrupted is not None:
            # Reported as this experiment's outcome (with what was reverted); pytest stops after it.
            self.session.shouldstop = f"interrupted during {self.experiment.name}: {interrupted}"
        failure = journal_failure(self.journal) if self.journal is not None else None
        if failure is not None:
            raise failure

    _status_shown = False
    _status_written = 0.0
    PLAIN_STATUS_EVERY = 10.0  # seconds between status lines when the output is not a terminal (CI logs)

    def _terminal(self) -> tuple[Any, Any]:
        return (self.config.pluginmanager.get_plugin("terminalreporter"),
                self.config.pluginmanager.get_plugin("capturemanager"))

    def _say(self, line: str) -> None:
        """An event line on the terminal while the experiment runs (not captured: a game day watches it); secrets
        masked and control characters escaped (an image name or an event from the cluster must not drive the
        terminal)."""
        line = printable(redact(line))
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
        line = printable(redact(line))
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
            return printable(str(excinfo.value))
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"experiment {self.experiment.name}"
