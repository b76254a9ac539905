"""The reporting side of the pytest plugin: every output of a run is made here, from its journal.

Receives each experiment's journal through ``pytest_resilience_journal`` and writes: JUnit properties, the
journal JSON, the timeline plot and the load files (with ``--results-dir``), Allure steps, labels and
attachments (with ``--alluredir``), the terminal's "SLA verdicts" section, ``summary.json``, and Allure's
``environment.properties`` and ``categories.json``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from resilience_tests.reporting.redact import Redactor
from resilience_tests.reporting.results import (
    SUMMARY_FILE,
    experiment_dir,
    private_allure,
    private_dir,
    private_tree,
    results_dir,
    secure_results,
    write_private,
)
from resilience_tests.text import printable

if TYPE_CHECKING:  # loaded on every pytest start: the heavy modules wait until an experiment ends
    from resilience_tests.experiment.journal import Journal


class ClusterSource(Protocol):
    """Where the run's cluster is (the run session): its kubeconfig, once known, and the run's id."""

    @property
    def kubeconfig(self) -> str | None: ...

    @property
    def run_id(self) -> str: ...


class ReportingPlugin:
    """Collects the session's journals and writes what they say where it was asked for.

    ``cluster`` tells which kubeconfig the run uses: its tokens, passwords and client keys are masked in every
    output (read when the first journal arrives, when the session has settled on a cluster).
    """

    def __init__(self, config: pytest.Config, cluster: ClusterSource | None = None) -> None:
        self.config = config
        self.cluster = cluster
        self.results = results_dir(config)
        self.journals: list[tuple[str, Journal]] = []
        self.redactor = Redactor()
        self.problems: list[str] = []
        self._kubeconfigs: set[str] = set()
        if self.results is not None and not config.option.collectonly:
            with contextlib.suppress(OSError):  # a folder that cannot be made is reported when it is written
                secure_results(self.results)  # private before Locust or allure-pytest write into it

    # ------------------------------------------------------------- per experiment
    @pytest.hookimpl
    def pytest_resilience_journal(self, config: pytest.Config, item: pytest.Item, journal: Journal) -> None:
        self.journals.append((item.nodeid, journal))
        self._learn_secrets(journal)
        for key, value in _junit_properties(journal):
            item.user_properties.append((key, self.redactor.text(value)))
        if journal.dry_run and not journal.interrupted:
            return
        try:
            self._write(config, item, journal)
        except Exception as exc:  # a full disk or a folder we may not write: the verdicts still stand
            message = f"the report of {journal.experiment.name} is incomplete: {type(exc).__name__}: {exc}"
            item.user_properties.append(("report error", message))
            item.warn(pytest.PytestWarning(printable(self.redactor.text(message))))

    def _write(self, config: pytest.Config, item: pytest.Item, journal: Journal) -> None:
        folder = experiment_dir(self.results, journal.run_id) if self.results else None
        files: dict[str, Path] = {}
        if folder is not None:
            private_dir(folder)
            self.redactor.tree(folder / "load")  # Locust's own logs and stats: written outside our control
            private_tree(folder / "load")
            files["journal"] = self._write_json(folder / "journal.json", journal.to_json())
        allure = _allure_active(config)
        if folder is not None or allure:
            scratch = None if folder is not None else Path(tempfile.mkdtemp(prefix="resilience-plot-"))
            try:
                try:
                    from resilience_tests.reporting.plot import timeline_png

                    files["plot"] = timeline_png(journal, (folder or scratch or Path()) / "timeline.png")
                    files["plot"].chmod(0o600)
                except Exception as exc:  # a plot that cannot be drawn must not hide the verdicts
                    item.user_properties.append(("plot error", f"{type(exc).__name__}: {exc}"))
                if allure:
                    from resilience_tests.reporting.allure import attach_journal

                    attach_journal(journal, self.redactor, files, folder)
            finally:
                if scratch is not None:
                    shutil.rmtree(scratch, ignore_errors=True)

    def _learn_secrets(self, journal: Journal) -> None:
        """Values of this run known to be secret: a load URL's password, the client's credentials."""
        exp = journal.experiment
        self.redactor.add_url(exp.load.url if exp.load else None)
        self.redactor.add_url(exp.target.url)
        self.redactor.add_url(journal.facts.server)
        kubeconfig = self.cluster.kubeconfig if self.cluster is not None else None
        if kubeconfig and kubeconfig not in self._kubeconfigs:
            self._kubeconfigs.add(kubeconfig)
            self.redactor.add_kubeconfig(kubeconfig)

    def _write_json(self, path: Path, data: Any) -> Path:
        return write_private(path, json.dumps(self.redactor.data(data), indent=1, default=str))

    # ------------------------------------------------------------- session end
    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        try:
            if self.results is not None and self.journals:
                from resilience_tests.reporting import summary

                self.results.mkdir(parents=True, exist_ok=True, mode=0o700)
                run_id = self.cluster.run_id if self.cluster is not None else ""
                self._write_json(self.results / SUMMARY_FILE,
                                 summary.build([j for _, j in self.journals], interrupted=bool(session.shouldstop),
                                               run_id=run_id))
            if _allure_active(self.config) and self.journals:
                from resilience_tests.reporting.allure import write_environment

                alluredir = Path(self.config.option.allure_report_dir)
                write_environment(alluredir, [j for _, j in self.journals], self.redactor)
                private_allure(alluredir)
        except Exception as exc:  # shown with the verdicts: they stand whatever became of the files
            self.problems.append(f"the run's summary could not be written: {type(exc).__name__}: {exc}")

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        """Each experiment's SLA verdicts, one line each, passed or not; with --dry-run, each plan. Every text is
        redacted and its control characters escaped (an experiment's or the cluster's text must not drive the
        terminal)."""
        show = self._shown
        planned = [(n, j) for n, j in self.journals if j.dry_run and not j.interrupted]
        for nodeid, journal in planned:
            terminalreporter.write_sep("-", show(f"plan: {nodeid}"))
            terminalreporter.write_line(show("\n".join(journal.plan)))
        judged = sorted(((n, j) for n, j in self.journals if j.steady or j.verdicts or j.revert_errors),
                        key=lambda pair: pair[0])
        if judged:
            terminalreporter.write_sep("=", "SLA verdicts")
            for nodeid, journal in judged:
                terminalreporter.write_line(show(f"{nodeid}: {journal.outcome}"), bold=True)
                for error in journal.revert_errors:
                    terminalreporter.write_line(f"  revert FAILED: {show(error)}", red=True)
                for prefix, verdicts in (("steady state: ", journal.steady), ("", journal.verdicts)):
                    for verdict in verdicts:
                        line = show(verdict.message.splitlines()[0])
                        terminalreporter.write_line(f"  {prefix}{line}", red=not verdict.passed,
                                                    green=verdict.passed)
        for problem in self.problems:
            terminalreporter.write_line(f"resilience-tests: {show(problem)}", yellow=True)
        if self.results is not None and self.journals and not self.problems:
            terminalreporter.write_line(show(f"resilience-tests: results in {self.results}"))

    def _shown(self, text: str) -> str:
        """``text`` as the terminal may show it: secrets masked, control characters escaped."""
        return printable(self.redactor.text(text))


def _junit_properties(journal: Journal) -> list[tuple[str, str]]:
    """What JUnit XML carries of a journal: the plan of a dry run, else outcome and verdicts."""
    if journal.dry_run and not journal.interrupted:
        return [("plan", "\n".join(journal.plan))]
    props = [("run id", journal.run_id), ("outcome", journal.outcome)]
    props += [(f"steady-state {v.key}", v.message) for v in journal.steady]
    props += [(f"verdict {v.key}", v.message) for v in journal.verdicts]
    props += [("revert error", e) for e in journal.revert_errors]
    return props


def _allure_active(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "allure_report_dir", None)) and \
        config.pluginmanager.get_plugin("allure_listener") is not None
