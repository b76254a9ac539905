"""One exception tree for the whole package.

Every error carries a message that says what happened and what to do. The CLI
and the pytest plugin print ``str(error)`` as a single line; no traceback is
shown for these.
"""

from __future__ import annotations


class ResilienceError(Exception):
    """Root of every error raised on purpose by resilience-tests.

    Attributes:
        hint: what the user can do about it, appended to the message.
    """

    def __init__(self, message: str, *, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}; {hint}" if hint else message)


class UsageError(ResilienceError):
    """Bad options or arguments given by the user."""


class TestbedError(ResilienceError):
    """The local cluster could not be built, started, stopped or changed."""

    __test__ = False  # not a pytest test class despite the name


class BinariesMissingError(TestbedError):
    """The cluster binaries have not been built."""

    def __init__(self, missing: list[str], directory: str) -> None:
        self.missing = missing
        self.directory = directory
        super().__init__(
            f"cluster binaries missing in {directory}: {', '.join(missing)}",
            hint="run `resilience cluster build` (or bash testbed/build) first",
        )


class WaitTimeoutError(ResilienceError):
    """A named wait ran past its deadline.

    Attributes:
        what: the name of the wait.
        timeout: the deadline in seconds.
        pending: what was still pending when time ran out.
    """

    def __init__(self, what: str, timeout: float, pending: str) -> None:
        self.what = what
        self.timeout = timeout
        self.pending = pending
        super().__init__(f"{what} did not finish in {timeout:.0f} s; still waiting for {pending}")
