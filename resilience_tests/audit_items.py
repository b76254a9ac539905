"""Audit findings as pytest items (the pytest glue, next to plugin.py): one test per audited object and rule.

``pytest --audit deploy/ --audit demo`` adds, for every workload (and PDB, HPA, namespace) of those manifests or
live namespaces, a test per rule: passed when the rule holds, failed with the finding's message when not,
skipped with the annotation's reason when a skip annotation says why. JUnit and Allure show them like any test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resilience_tests.errors import ResilienceError


class AuditFinding(ResilienceError, AssertionError):
    """A rule does not hold for an object: a test failure, like a violated SLA."""


class AuditProblem(ResilienceError):
    """An input the audit could not read."""


def read_targets(targets: list[str], kube: Any = None) -> tuple[Any, list[Any]]:
    """The inventory and problems of ``targets``: paths (or ``-``) are read as files, other names as namespaces
    through ``kube`` (a connected client, needed only then)."""
    from resilience_tests.audit import sources
    from resilience_tests.audit.model import Inventory

    paths = [t for t in targets if sources.is_path(t)]
    namespaces = [t for t in targets if not sources.is_path(t)]
    inventory, problems = sources.read_paths(paths) if paths else (Inventory(), [])
    for namespace in namespaces:
        live, trouble = sources.read_namespace(kube, namespace)
        inventory.objects += live.objects
        inventory.zones = live.zones or inventory.zones
        problems += trouble
    return inventory, problems


class AuditTarget(pytest.Collector):
    """The audit of some manifests or namespaces."""

    def __init__(self, *, targets: list[str], kube: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.targets = targets
        self.kube = kube

    def collect(self) -> Iterator[pytest.Item]:
        from resilience_tests.audit import rules

        inventory, problems = read_targets(self.targets, self.kube)
        findings: dict[tuple[str, str], list[Any]] = {}
        for finding in rules.audit(inventory):
            findings.setdefault((finding.obj, finding.rule.id), []).append(finding)
        for subject in rules.subjects(inventory):
            for rule_id in subject.rules:
                rule = rules.RULES[rule_id]
                yield AuditItem.from_parent(self, name=f"{subject.ref}::{rule.id} {rule.name}", rule=rule,
                                            subject=str(subject.location), findings=findings.get((subject.ref,
                                                                                                  rule_id), []))
        for index, problem in enumerate(problems):
            yield AuditItem.from_parent(self, name=f"problem {index + 1}: {problem.location}", rule=None,
                                        subject=str(problem.location), findings=[], problem=problem.message)


class AuditItem(pytest.Item):
    """One rule on one object."""

    def __init__(self, *, rule: Any, subject: str, findings: list[Any], problem: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rule = rule
        self.subject = subject
        self.findings = findings
        self.problem = problem
        if rule is not None:
            self.add_marker(pytest.mark.audit(rule=rule.id, severity=rule.severity))

    def runtest(self) -> None:
        if self.problem:
            raise AuditProblem(f"{self.subject}: {self.problem}")
        live = [f for f in self.findings if not f.skipped]
        if live:
            proof = f" (proved by experiment {self.rule.experiment})" if self.rule.experiment else ""
            raise AuditFinding("\n".join(f"{f.rule.id} {f.location}: {f.message}" for f in live) + proof)
        if self.findings:
            pytest.skip(f"{self.rule.id} skipped: {self.findings[0].skipped}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, (AuditFinding, AuditProblem)):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return Path(self.subject.split(":")[0]), 0, f"audit {self.name}"
