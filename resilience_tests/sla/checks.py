"""SLA checks: pure functions from :class:`Evidence` to :class:`Verdict`.

Each check is a frozen model (so experiments declare it in YAML and tests build
it in Python) with ``evaluate(evidence) -> Verdict``. A verdict carries whether
it passed, the measured value, the threshold, the window and the evidence that
explains it (which requests failed when, which pod was terminating, which zone
held how many replicas).

The checks live by family: load checks in ``load_checks.py``, cluster checks in
``cluster_checks.py``, recovery and backup checks in ``recovery_checks.py``,
autoscaling checks in ``autoscale_checks.py``, the verdict and the base models
in ``base.py``. This module holds the ``Check`` union
(the discriminator of ``checks:`` in YAML), :func:`parse_check` and
:func:`evaluate`, and re-exports every check.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Annotated

from pydantic import Field, TypeAdapter

from resilience_tests.sla.autoscale_checks import (
    AUTOSCALE_CHECKS,
    CapacityFollowsLoad,
    MaxReplicasRespected,
    NoFlapping,
    ScaleDown,
    ScaleUpTime,
)
from resilience_tests.sla.base import MAX_EVIDENCE, BaseCheck, LoadCheck, Verdict
from resilience_tests.sla.cluster_checks import (
    EXIT_SLACK_S,
    AuditClean,
    GracefulShutdown,
    SurvivesZoneLoss,
    ZoneSpread,
    terminations,
)
from resilience_tests.sla.evidence import Evidence
from resilience_tests.sla.load_checks import Availability, ErrorRate, Latency, NoFailedRequests, Throughput
from resilience_tests.sla.recovery_checks import (
    REVISION_LABELS,
    DataIntact,
    RecoveryTime,
    RestoredObjects,
    Rpo,
    Rto,
)

__all__ = ["AUTOSCALE_CHECKS", "EXIT_SLACK_S", "LOAD_CHECKS", "MAX_EVIDENCE", "REVISION_LABELS", "AuditClean",
           "Availability", "BaseCheck", "CapacityFollowsLoad", "Check", "DataIntact", "ErrorRate", "GracefulShutdown",
           "Latency", "LoadCheck", "MaxReplicasRespected", "NoFailedRequests", "NoFlapping", "RecoveryTime",
           "RestoredObjects", "Rpo", "Rto", "ScaleDown", "ScaleUpTime", "SurvivesZoneLoss", "Throughput", "Verdict",
           "ZoneSpread", "evaluate", "parse_check", "terminations"]


Check = Annotated[NoFailedRequests | ErrorRate | Latency | Availability | Throughput | ZoneSpread
                  | SurvivesZoneLoss | GracefulShutdown | RecoveryTime | AuditClean | Rto | RestoredObjects
                  | DataIntact | Rpo | CapacityFollowsLoad | ScaleUpTime | ScaleDown | NoFlapping
                  | MaxReplicasRespected, Field(discriminator="type")]
_ADAPTER: TypeAdapter[Check] = TypeAdapter(Check)
LOAD_CHECKS = (NoFailedRequests, ErrorRate, Latency, Availability, Throughput, GracefulShutdown, CapacityFollowsLoad,
               ScaleDown)
"""Checks that read load samples."""


def parse_check(data: object) -> Check:
    """A check from its mapping (``{"type": "latency", "percentile": 99, "max": "300ms"}``)."""
    return _ADAPTER.validate_python(data)


def evaluate(checks: list[Check] | tuple[Check, ...], evidence: Evidence) -> list[Verdict]:
    """Evaluate every check; a check that cannot be evaluated fails with the reason."""
    from resilience_tests.errors import ResilienceError

    verdicts = []
    seen: Counter[str] = Counter()
    for check in checks:
        try:
            verdict = check.evaluate(evidence)
        except ResilienceError as exc:
            verdict = Verdict(check.label, False, "not evaluated", "-", check.window, (str(exc),))
        key = f"{verdict.check} [{check.window}]"
        seen[key] += 1
        verdicts.append(dataclasses.replace(verdict, key=key if seen[key] == 1 else f"{key} #{seen[key]}"))
    return verdicts
