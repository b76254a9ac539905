"""Allure results of an experiment, through allure-pytest (active with ``--alluredir``).

Each experiment is a test. Its steps carry the real start and stop of each phase of the run (preflight, load
start, steady state, each fault's inject and revert, settle, the SLA checks with one sub-step per verdict);
its labels say what it is (epic ``resilience``, a feature per fault type, the experiment as story, its
severity and tags, and ``outcome``, which the categories read); its parameters say where it ran (context,
seed); its attachments are the evidence: the experiment file, the verdict table, the timeline plot, Locust's
stats, the failed requests, the cluster's events and the journal as JSON.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from pathlib import Path

from allure_commons.model2 import Label, Parameter, Status, StatusDetails, TestStepResult
from allure_commons.reporter import AllureReporter
from allure_commons.types import AttachmentType

from resilience_tests import __version__
from resilience_tests.experiment.journal import Journal, Phase
from resilience_tests.reporting.redact import Redactor
from resilience_tests.reporting.tables import event_lines, failed_request_lines, verdict_table

STATUS = {"passed": Status.PASSED, "failed": Status.FAILED, "broken": Status.BROKEN}

CATEGORIES = [
    {"name": "Revert failed", "outcome": "revert-failed", "statuses": ["broken"],
     "message": "revert failed:", "description": "A change could not be undone: the cluster may still be changed. "
                                                 "Run `resilience cleanup --run <run id>`."},
    {"name": "SLA violated", "outcome": "sla-violated", "statuses": ["failed"], "message": "SLA violated:",
     "description": "The hypothesis failed: a check measured a value beyond its threshold."},
    {"name": "Steady state not met", "outcome": "steady-state-not-met", "statuses": ["broken"],
     "message": "steady state not met:", "description": "The system was unhealthy before any fault."},
    {"name": "Interrupted", "outcome": "interrupted", "statuses": ["broken"], "message": "interrupted:",
     "description": "The run was interrupted; what it injected was reverted."},
    {"name": "Experiment error", "outcome": "error", "statuses": ["broken"], "message": "experiment error:",
     "description": "A fault could not be injected, or the run stopped with an error."},
]


def _ms(t: float) -> int:
    return int(t * 1000)


def _reporter() -> AllureReporter | None:
    from allure_commons import plugin_manager

    for plugin in plugin_manager.get_plugins():
        logger = getattr(plugin, "allure_logger", None)
        if isinstance(logger, AllureReporter):
            return logger
    return None


def attach_journal(journal: Journal, redactor: Redactor, files: dict[str, Path], folder: Path | None) -> None:
    """Add the journal's labels, parameters, steps and attachments to the running experiment's test."""
    reporter = _reporter()
    if reporter is None:
        return
    test = reporter.get_test(None)
    if test is None:
        return
    exp = journal.experiment
    features = dict.fromkeys(f.type for f in exp.faults) or ({"load": None} if exp.load else {})
    labels = [("epic", "resilience"), *(("feature", t) for t in features),
              ("story", exp.name), ("severity", exp.severity), *(("tag", t) for t in exp.tags),
              ("outcome", journal.outcome)]
    test.labels.extend(Label(name=name, value=value) for name, value in labels)
    if exp.description:
        test.description = redactor.text(exp.description)
    for name, value in (("context", journal.facts.context or "(current)"), ("seed", str(journal.facts.seed)),
                        ("run id", journal.run_id)):
        test.parameters.append(Parameter(name=name, value=redactor.text(value)))

    for phase in journal.phases:
        _phase_step(reporter, test.uuid, phase, journal, redactor)

    def attach(body: str | bytes, name: str, kind: AttachmentType) -> None:
        reporter.attach_data(uuid.uuid4(), redactor.text(body) if isinstance(body, str) else body, name=name,
                             attachment_type=kind, parent_uuid=test.uuid)

    if exp.source and Path(exp.source).is_file():
        attach(Path(exp.source).read_text(errors="replace"), "experiment file", AttachmentType.YAML)
    if journal.steady or journal.verdicts:
        attach(verdict_table(journal), "verdicts", AttachmentType.TEXT)
    if "plot" in files and files["plot"].is_file():
        attach(files["plot"].read_bytes(), "timeline", AttachmentType.PNG)
    failed = failed_request_lines(journal)
    if failed:
        attach("\n".join(failed), "failed requests", AttachmentType.TEXT)
    events = event_lines(journal)
    if events:
        attach("\n".join(events), "cluster events", AttachmentType.TEXT)
    for stats in _locust_stats(folder):
        attach(stats.read_text(errors="replace"), f"Locust {stats.stem.removeprefix('stats_')}", AttachmentType.CSV)
    attach(json.dumps(redactor.data(journal.to_json(samples=False)), indent=1, default=str), "journal",
           AttachmentType.JSON)


def _phase_step(reporter: AllureReporter, parent: str, phase: Phase, journal: Journal, redactor: Redactor) -> None:
    step_id = str(uuid.uuid4())
    offset = journal.offset(phase.start)
    step = TestStepResult(name=f"{phase.name} (at {offset:+.1f} s, {phase.end - phase.start:.1f} s)",
                          start=_ms(phase.start), stop=_ms(phase.end), status=STATUS[phase.status])
    if phase.detail:
        step.statusDetails = StatusDetails(message=redactor.text(phase.detail))
    reporter.start_step(parent, step_id, step)
    window = next((w for w in journal.windows if phase.name == f"inject {w.label}"), None)
    if window is not None and window.touched:
        reporter.attach_data(uuid.uuid4(), redactor.text("\n".join(window.touched)), name="touched",
                             attachment_type=AttachmentType.TEXT, parent_uuid=step_id)
    verdicts = journal.steady if phase.name == "steady state" else journal.verdicts \
        if phase.name == "SLA checks" else ()
    for verdict in verdicts:
        sub_id = str(uuid.uuid4())
        state = "passed" if verdict.passed else "FAILED"
        sub = TestStepResult(name=redactor.text(f"{verdict.check} {state}: measured {verdict.measured}, "
                                                f"required {verdict.threshold}, window {verdict.window}"),
                             start=_ms(phase.start), stop=_ms(phase.end),
                             status=Status.PASSED if verdict.passed else Status.FAILED)
        if verdict.evidence:
            sub.statusDetails = StatusDetails(message=redactor.text("\n".join(verdict.evidence)))
        reporter.start_step(step_id, sub_id, sub)
        if verdict.evidence:
            reporter.attach_data(uuid.uuid4(), redactor.text(verdict.message), name="evidence",
                                 attachment_type=AttachmentType.TEXT, parent_uuid=sub_id)
        reporter.stop_step(sub_id)
    reporter.stop_step(step_id)


def _locust_stats(folder: Path | None) -> list[Path]:
    if folder is None:
        return []
    return sorted(p for p in (folder / "load").glob("stats_*.csv") if "history" not in p.name)


def write_environment(alluredir: Path, journals: Iterable[Journal], redactor: Redactor) -> None:
    """``environment.properties`` (context, server, Kubernetes version, nodes, zones, seed, tool version) and
    ``categories.json`` (Allure 2 format; `resilience report` gives Allure 3 the same rules by label)."""
    ran = [j for j in journals if j.facts.server]
    alluredir.mkdir(parents=True, exist_ok=True)
    if ran:
        facts = ran[0].facts
        contexts = sorted({j.facts.context for j in ran})
        props = {"context": ", ".join(contexts), "server": facts.server, "kubernetes.version": facts.version,
                 "nodes": str(facts.nodes), "zones": str(facts.zones), "seed": str(facts.seed),
                 "resilience-tests.version": __version__}
        lines = [f"{key}={redactor.text(value).replace(chr(10), ' ')}" for key, value in props.items()]
        (alluredir / "environment.properties").write_text("\n".join(lines) + "\n")
    (alluredir / "categories.json").write_text(json.dumps(
        [{"name": c["name"], "description": c["description"], "matchedStatuses": c["statuses"],
          "messageRegex": rf"[\s\S]*{c['message']}[\s\S]*"} for c in CATEGORIES], indent=1))


def allure3_categories() -> list[dict[str, object]]:
    """The same categories for Allure 3's configuration: matched by the ``outcome`` label of each test."""
    return [{"name": c["name"], "matchers": [{"labels": {"outcome": f"^{c['outcome']}$"}}]} for c in CATEGORIES]
