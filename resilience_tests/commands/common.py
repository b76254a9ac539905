"""What the commands share: the parser that turns bad usage into a UsageError, argument types, ``say``, and
the cluster sessions of a reading and of a changing command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from resilience_tests.errors import UsageError
from resilience_tests.namespaces import is_namespace_name
from resilience_tests.testbed.cluster import DEFAULT_NAME, LocalCluster
from resilience_tests.text import printable

if TYPE_CHECKING:
    from resilience_tests.session import RunSession


def say(*parts: object, file: TextIO | None = None) -> None:
    """``print`` for everything this command shows: names, messages and errors from the cluster, an archive or
    an experiment may hold control characters, which are written out instead of reaching the terminal."""
    print(*(printable(str(part)) for part in parts), file=file or sys.stdout)



class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")


def non_empty(flag: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError(f"{flag} needs a name, not an empty string")
        return value
    return check


def namespace_name(value: str) -> str:
    if not is_namespace_name(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a namespace name (a lower-case DNS label of at most 63 "
                                         "characters, e.g. demo)")
    return value



def reading_session(args: argparse.Namespace) -> RunSession:
    """A session for a command that only reads the cluster: any context may be read, no --allow-context needed."""
    from resilience_tests.session import RunSession, kubeconfig_from_env

    return RunSession(seed=0, kubeconfig=args.resilience_kubeconfig or kubeconfig_from_env(),
                      context=args.resilience_context,
                      local_cluster_name=args.resilience_local_cluster or DEFAULT_NAME)


def changing_session(args: argparse.Namespace) -> RunSession:
    """A session for a command that changes an existing cluster: its context must be allowed, and the local
    cluster is used only if it already runs (never started)."""
    from resilience_tests.session import RunSession, check_allow_patterns, kubeconfig_from_env

    check_allow_patterns(args.resilience_allow_context or [], bool(args.resilience_allow_any_context))
    run = RunSession(seed=0, allow_contexts=args.resilience_allow_context or [],
                     kubeconfig=args.resilience_kubeconfig or kubeconfig_from_env(), context=args.resilience_context,
                     local_cluster_name=args.resilience_local_cluster or DEFAULT_NAME)
    if run.kubeconfig is None:
        local = LocalCluster(run.local_cluster_name)
        if local.state() != "running":
            raise UsageError(f"local cluster {local.name!r} is not running", hint="pass --kubeconfig")
        run.kubeconfig, run.context = str(local.kubeconfig), local.context
    return run

