"""One exception tree for the whole package.

Every error carries a message that says what happened and what to do. The CLI
and the pytest plugin print ``str(error)`` as a single line; no traceback is
shown for these.
"""

from __future__ import annotations

import json


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


def _printable(text: str, limit: int = 300) -> str:
    """``text`` on one line: whitespace runs become one space, other non-printable characters ``\\xNN``."""
    flat = " ".join(text.split())
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in flat)[:limit]


def _api_message(exc: BaseException) -> str:
    body, reason = getattr(exc, "body", None), getattr(exc, "reason", None)
    try:
        return str(json.loads(body or "{}").get("message") or reason)
    except (ValueError, AttributeError, TypeError):
        return str(reason)


def from_input(exc: BaseException, what: str) -> ResilienceError | None:
    """The one-line error for an exception that bad input or an unreachable or unwilling cluster caused in
    ``what`` (a command), or None when it is a bug (which deserves its traceback).

    Recognised without importing the libraries that raise them: the kubernetes client's ``ApiException`` (an
    HTTP error status), urllib3's connection and timeout errors, PyYAML's errors, ``TimeoutError``, ``OSError``
    about a file, text that is not UTF-8, nesting too deep for Python, integers over Python's digit limit and
    memory exhausted by an input.
    """
    module = type(exc).__module__.split(".")[0]
    name = type(exc).__name__
    message = _printable(str(exc).partition("\n")[0])
    status = getattr(exc, "status", None) if module == "kubernetes" else None
    if isinstance(status, int) and status > 0:  # the client's ApiException: the server answered an error
        return ResilienceError(f"{what}: the cluster answered HTTP {status} ({_printable(_api_message(exc))})",
                               hint="check the account's rights and the objects named, then run it again")
    if isinstance(exc, BrokenPipeError):
        return ResilienceError(f"{what}: its output was closed before the end",
                               hint="nothing to do if it was piped into a command that stops early, like head")
    if module in ("urllib3", "kubernetes", "ssl") or isinstance(exc, (TimeoutError, ConnectionError)):
        return ResilienceError(f"{what}: the API server did not answer ({name}: {message})",
                               hint="check that it runs and that --kubeconfig/--context point to it, then run it "
                                    "again")
    if module == "yaml":
        return ResilienceError(f"{what}: malformed YAML: {message}", hint="fix the file it names")
    if isinstance(exc, UnicodeError):
        return ResilienceError(f"{what}: input is not UTF-8 text ({message})", hint="save it as UTF-8")
    if isinstance(exc, RecursionError):
        return ResilienceError(f"{what}: input nested too deeply to be read", hint="flatten it")
    if isinstance(exc, MemoryError):
        return ResilienceError(f"{what}: input too large to hold in memory", hint="give a smaller input")
    if isinstance(exc, ValueError) and "digits" in str(exc) and "int" in str(exc):
        return ResilienceError(f"{what}: a number with too many digits ({message})", hint="write a smaller number")
    if isinstance(exc, OSError) and (exc.filename is not None or exc.strerror):
        where = f"{_printable(str(exc.filename))}: " if exc.filename is not None else ""
        return ResilienceError(f"{what}: {where}{exc.strerror or message}",
                               hint="check the path and its permissions, then run it again")
    return None
