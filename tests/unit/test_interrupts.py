"""Reverts run to the end through interrupts: two are held, the third aborts (pure, signals to this process)."""

from __future__ import annotations

import os
import signal

import pytest

from resilience_tests.interrupts import RevertsAborted, interrupt_on, reverts_shielded


def test_two_interrupts_wait_until_the_reverts_are_done() -> None:
    said: list[str] = []
    done = []
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGHUP)}  # ignored under a background job
    with pytest.raises(KeyboardInterrupt, match="SIGINT \\(held until the reverts were done\\)"), \
            reverts_shielded(said.append):
        os.kill(os.getpid(), signal.SIGINT)
        done.append("revert 1")
        os.kill(os.getpid(), signal.SIGHUP)
        done.append("revert 2")
    assert done == ["revert 1", "revert 2"]
    assert said == ["SIGINT received: reverting first (2 more to abort the reverts)",
                    "SIGHUP received: reverting first (1 more to abort the reverts)"]
    assert {sig: signal.getsignal(sig) for sig in before} == before  # the handlers are put back as they were


def test_the_third_interrupt_aborts_and_says_how_to_finish() -> None:
    done = []
    with pytest.raises(RevertsAborted, match="resilience cleanup"), reverts_shielded():
        for i in range(3):
            os.kill(os.getpid(), signal.SIGTERM)
            done.append(i)
    assert done == [0, 1]


def test_without_interrupts_nothing_is_raised() -> None:
    with reverts_shielded() as received:
        pass
    assert received == []


def test_sigterm_and_sighup_become_keyboard_interrupts() -> None:
    previous = signal.signal(signal.SIGHUP, interrupt_on)
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGHUP"):
            os.kill(os.getpid(), signal.SIGHUP)
    finally:
        signal.signal(signal.SIGHUP, previous)
