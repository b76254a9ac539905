"""The graceful-shutdown rule (RT401): a pod leaves the endpoints before it stops, within its grace period."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from resilience_tests.audit.checks.fields import as_dict, as_int, as_list, name_of
from resilience_tests.audit.checks.workload import Workload
from resilience_tests.audit.model import SKIP_PREFIX


def _readiness_window(workload: Workload) -> tuple[int, int]:
    """(periodSeconds, failureThreshold) of the slowest readinessProbe (defaults 10 and 3 when none)."""
    windows = [(as_int(p.get("periodSeconds"), 10), as_int(p.get("failureThreshold"), 3))
               for p in (as_dict(c.get("readinessProbe")) for c in workload.containers) if p]
    return max(windows, key=lambda w: w[0] * w[1], default=(10, 3))


def _pre_stop(container: dict[str, Any]) -> dict[str, Any]:
    return as_dict(as_dict(container.get("lifecycle")).get("preStop"))


_SLEEP = re.compile(r"\bsleep\s+(\d+)")


def _pre_stop_sleep(container: dict[str, Any]) -> int | None:
    """Seconds a preStop hook sleeps: ``exec: [sh, -c, "sleep 5"]`` or the native ``sleep: {seconds: 5}``."""
    hook = _pre_stop(container)
    native = as_dict(hook.get("sleep")).get("seconds")
    if isinstance(native, int) and not isinstance(native, bool):
        return native
    command = " ".join(str(part) for part in as_list(as_dict(hook.get("exec")).get("command")))
    match = _SLEEP.search(command)
    return int(match.group(1)) if match else None


def graceful_shutdown(w: Workload) -> Iterator[str]:
    """RT401 graceful-shutdown (see :data:`resilience_tests.audit.rules.RULES`)."""
    grace = as_int(w.pod.get("terminationGracePeriodSeconds"), 30)
    hooked = [c for c in w.containers if _pre_stop(c)]
    if not hooked:
        period, threshold = _readiness_window(w)
        if grace <= period * threshold:
            yield (f"no container has a preStop hook and terminationGracePeriodSeconds {grace} is not above the "
                   f"readiness window ({period}s x {threshold} = {period * threshold}s): endpoints may still route "
                   "to a terminating pod; add a preStop sleep of a few seconds")
        else:
            yield ("no container has a preStop hook: unless the app keeps serving after SIGTERM until its endpoints "
                   "are gone, requests fail in every rollout and drain; add a preStop sleep of a few seconds, or "
                   f"annotate {SKIP_PREFIX}rt401 with why the app drains on its own")
    for c in hooked:
        sleep = _pre_stop_sleep(c)
        if sleep is not None and sleep >= grace:
            yield (f"container {name_of(c)} preStop sleeps {sleep}s but terminationGracePeriodSeconds is {grace}: "
                   "the pod is killed before it finishes its requests; set the grace period above the sleep "
                   "plus the shutdown time")
