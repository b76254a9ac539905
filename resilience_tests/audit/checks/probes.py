"""Probe rules (RT1xx): readiness, liveness, and the probe settings that hurt under load or at start."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from resilience_tests.audit.checks.fields import as_dict, as_int, name_of
from resilience_tests.audit.checks.workload import Workload

_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def _handler(probe: dict[str, Any]) -> dict[str, Any]:
    """What a probe checks (its handler), without its timings."""
    return {key: probe[key] for key in _HANDLERS if key in probe}


def readiness_probe(w: Workload) -> Iterator[str]:
    """RT101 readiness-probe (see :data:`resilience_tests.audit.rules.RULES`)."""
    for c in w.containers:
        if not c.get("readinessProbe"):
            yield (f"container {name_of(c)} has no readinessProbe: add one so traffic stops before the pod does "
                   "and a new pod gets traffic only once it can answer")


def liveness_probe(w: Workload) -> Iterator[str]:
    """RT102 liveness-probe (see :data:`resilience_tests.audit.rules.RULES`)."""
    for c in w.containers:
        if not c.get("livenessProbe"):
            yield (f"container {name_of(c)} has no livenessProbe: a hung process keeps its pod forever; add one "
                   "on a cheap endpoint that fails only when a restart helps")


def liveness_equals_readiness(w: Workload) -> Iterator[str]:
    """RT103 liveness-equals-readiness (see :data:`resilience_tests.audit.rules.RULES`)."""
    for c in w.containers:
        liveness, readiness = as_dict(c.get("livenessProbe")), as_dict(c.get("readinessProbe"))
        threshold = as_int(liveness.get("failureThreshold"), 3)
        if _handler(liveness) and _handler(liveness) == _handler(readiness) and threshold <= 1:
            yield (f"container {name_of(c)} livenessProbe is its readinessProbe with failureThreshold {threshold}: "
                   "one slow answer under load restarts the pod; give liveness a cheaper check or "
                   "failureThreshold >= 3")


def startup_probe(w: Workload) -> Iterator[str]:
    """RT104 startup-probe (see :data:`resilience_tests.audit.rules.RULES`)."""
    for c in w.containers:
        if c.get("startupProbe"):
            continue
        for kind in ("readinessProbe", "livenessProbe"):
            delay = as_int(as_dict(c.get(kind)).get("initialDelaySeconds"), 0)
            if delay >= 30:
                yield (f"container {name_of(c)} {kind} waits initialDelaySeconds {delay} and there is no "
                       "startupProbe: every pod is useless for that long even when it starts fast; add a "
                       "startupProbe and drop the delay")
                break
