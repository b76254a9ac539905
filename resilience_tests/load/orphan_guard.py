"""Run a program that dies with the process that started it, even when that process is SIGKILLed.

    python -m resilience_tests.load.orphan_guard PARENT_PID -- ARGV...

Arms Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), checks the parent is still the one
that started it (it may have died before the signal was armed), then replaces itself with ``ARGV`` (the
signal survives ``exec``). Locust runs through it, in a session of its own, so that a killed test run never
leaves load generators hammering the target. Elsewhere than Linux the program simply runs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def arm(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies; exit now if that already happened."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        sys.exit(0)


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: python -m resilience_tests.load.orphan_guard PARENT_PID -- ARGV...")
    arm(int(argv[0]))
    os.execv(argv[2], argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
