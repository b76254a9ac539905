"""The ``resilience`` command line.

Thin: it parses options, calls the package and turns errors into one line on
stderr and an exit code (0 ok, 1 failed, 2 bad usage). The commands, each with
its parser, are in ``commands/`` (one module per family); this module assembles
the parser, dispatches and turns what escapes into one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from resilience_tests.commands import audit, backup, cleanup, cluster, platform, run
from resilience_tests.commands.common import Parser, say
from resilience_tests.errors import ResilienceError, UsageError, from_input

__all__ = ["main", "make_parser", "say"]


def make_parser() -> Parser:
    """Build the argument parser of the ``resilience`` command."""
    parser = Parser(prog="resilience", description="Chaos and resilience experiments for Kubernetes.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    cluster.add_parser(sub)
    run.add_run_parser(sub)
    audit.add_parser(sub)
    backup.add_parsers(sub)
    run.add_report_parser(sub)
    cleanup.add_parser(sub)
    platform.add_parser(sub)
    return parser


def _joined(argv: Sequence[str]) -> list[str]:
    """``--pytest-args -v`` as written: the value after ``--pytest-args`` is its value even if it starts with
    a dash (argparse would take it for an option of its own)."""
    out: list[str] = []
    items = list(argv)
    while items:
        item = items.pop(0)
        if item == "--pytest-args" and items:
            item = f"--pytest-args={items.pop(0)}"
        out.append(item)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``resilience`` console script.

    Errors raised on purpose, and what bad input or an unreachable or unwilling cluster raises from the
    libraries below (see :func:`~resilience_tests.errors.from_input`), end as one line on stderr; anything else
    is a bug and keeps its traceback.
    """
    args: argparse.Namespace | None = None
    try:
        args = make_parser().parse_args(_joined(sys.argv[1:] if argv is None else argv))
        return _dispatch(args)
    except UsageError as exc:
        say(f"error: {exc}", file=sys.stderr)
        return 2
    except ResilienceError as exc:
        first, _, rest = str(exc).partition("\n")
        say(f"error: {first}", file=sys.stderr)
        if rest:
            say(rest, file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # RevertsAborted says what it left behind
        say(f"error: {str(exc).splitlines()[0] if str(exc) else 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as exc:
        command = " ".join(p for p in (getattr(args, "command", None), getattr(args, "action", None)) if p)
        line = from_input(exc, f"resilience {command}".strip())
        if line is None:
            raise  # a bug: its traceback is what a report needs
        say(f"error: {line}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "cluster": cluster.cluster_command, "run": run.run_command, "cleanup": cleanup.cleanup_command,
        "platform": platform.platform_command, "report": run.report_command, "audit": audit.audit_command,
        "backup": backup.backup_command, "restore": backup.restore_command}
    if args.command not in commands:
        raise UsageError(f"unknown command {args.command!r}")
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
