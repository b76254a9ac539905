"""Interrupts that cannot cut a revert short.

A chaos run must undo what it did even when its operator presses Ctrl-C, its CI job is cancelled (SIGTERM)
or its SSH session closes (SIGHUP). The plugin turns SIGTERM and SIGHUP into KeyboardInterrupt like Ctrl-C;
while reverts run, :func:`reverts_shielded` holds interrupts back: the first two are noted and the reverts
go on, the third aborts them (and says that ``resilience cleanup`` undoes what is left). Once the reverts
are done, a held interrupt stops the run as it would have.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
ABORT_AFTER = 3


class RevertsAborted(KeyboardInterrupt):
    """The operator insisted: reverts were abandoned half-way."""


@contextlib.contextmanager
def reverts_shielded(say: Callable[[str], None] = lambda line: None) -> Iterator[list[int]]:
    """Run the block with SIGINT, SIGTERM and SIGHUP held back (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) >= ABORT_AFTER:
            raise RevertsAborted(f"{name}: reverts aborted; what is still changed is listed by "
                                 "`resilience cleanup --dry-run` and undone by `resilience cleanup`")
        say(f"{name} received: reverting first ({ABORT_AFTER - len(received)} more to abort the reverts)")

    previous = {s: signal.signal(s, hold) for s in SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt(f"{signal.Signals(received[0]).name} (held until the reverts were done)")


def interrupt_on(signum: int, frame: FrameType | None) -> None:
    """A signal handler that turns SIGTERM and SIGHUP into KeyboardInterrupt, so reverts run."""
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
