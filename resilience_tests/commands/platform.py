"""``resilience platform``: detect the cluster's platform and print its capabilities (read only)."""

from __future__ import annotations

import argparse

from resilience_tests.commands.common import Parser, reading_session
from resilience_tests.plugin import OPTIONS


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    platform = sub.add_parser("platform", help="what the cluster can do beyond the API (read only)",
                              description="Detect the cluster's platform (local, kind, generic or a plug-in's) and "
                                          "print its capabilities: how nodes fail, real and simulated nodes, netem, "
                                          "network cut, where load generators can run. Changes nothing.")
    for flag, dest, help_text, kwargs in OPTIONS:
        if flag in ("--kubeconfig", "--context", "--local-cluster-name"):
            platform.add_argument(flag, dest=dest, help=help_text, **kwargs)


def platform_command(args: argparse.Namespace) -> int:
    from resilience_tests.platform import detect

    run = reading_session(args)
    try:
        capabilities = detect(run.reader()).capabilities()
    finally:
        run.close()
    print("\n".join(capabilities.lines()))
    return 0
