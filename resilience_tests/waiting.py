"""Named waits with deadlines.

Every wait in the package goes through :func:`wait_until`: it has a name, a
deadline and a way to say what is still pending, so a timeout reads like
"drain of node-a2 did not finish in 120 s; still waiting for web-5f7".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from resilience_tests.errors import WaitTimeoutError

T = TypeVar("T")


class _NotYet(Exception):
    pass


@dataclass(frozen=True)
class Wait:
    """A wait in progress: what it waits for, since when (monotonic), and its deadline in seconds."""

    what: str
    since: float
    timeout: float


_waits: dict[int, Wait] = {}
_waits_lock = threading.Lock()


def current_waits() -> list[Wait]:
    """Waits in progress in any thread, oldest first (what a progress line shows)."""
    with _waits_lock:
        return sorted(_waits.values(), key=lambda w: w.since)


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    pending: Callable[[], str] | str = "the condition",
    interval: float = 0.25,
    max_interval: float = 2.0,
) -> T:
    """Call ``probe`` until it returns a truthy value, at most ``timeout`` seconds.

    Args:
        what: the name of the wait, used in the timeout error.
        probe: returns a truthy result when done, a falsy one otherwise.
        timeout: deadline in seconds.
        pending: text (or a function producing it) naming what is still pending.
        interval: first pause between probes; grows up to ``max_interval``.
        max_interval: longest pause between probes.

    Returns:
        The first truthy value returned by ``probe``.

    Raises:
        WaitTimeoutError: the deadline passed.
    """

    @tenacity.retry(
        retry=tenacity.retry_if_exception_type(_NotYet),
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_exponential(multiplier=interval, max=max_interval),
        reraise=True,
    )
    def attempt() -> T:
        result = probe()
        if not result:
            raise _NotYet
        return result

    key = threading.get_ident()
    with _waits_lock:
        outer = _waits.get(key)
        _waits[key] = Wait(what, time.monotonic(), timeout)
    try:
        return attempt()
    except _NotYet:
        detail = pending() if callable(pending) else pending
        raise WaitTimeoutError(what, timeout, detail) from None
    finally:
        with _waits_lock:
            if outer is None:
                _waits.pop(key, None)
            else:
                _waits[key] = outer
