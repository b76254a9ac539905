"""Experiments as pytest items: one YAML file, one test."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resilience_tests.errors import ResilienceError
from resilience_tests.experiment.model import Experiment, load_experiment
from resilience_tests.experiment.runner import Runner, RunResult
from resilience_tests.session import get_session


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
        runner = Runner(run.kube(), run.registry, seed=run.seed, namespace=run.namespace, say=self._say)
        self.result = runner.run(self.experiment, dry_run=run.dry_run)
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

    def _say(self, line: str) -> None:
        """A progress line on the terminal while the experiment runs (not captured: a game day watches it)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            reporter.ensure_newline()
            reporter.write_line(f"[resilience {time.strftime('%H:%M:%S')}] {line}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ResilienceError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"experiment {self.experiment.name}"
