"""Which namespaces a run may target with admin power, and what a valid object name is (one definition each).

A restore, a ``disaster`` step and the faults of an experiment are refused on the cluster's own namespaces
unless the experiment (``guardrails.allow_kube_system``) or the command (``--allow-system-namespace``) allows
it; the namespace where runs keep their leases and safety records is refused always.
"""

from __future__ import annotations

import re

from resilience_tests.errors import UsageError

RUNS_NAMESPACE = "resilience-tests"  # leases and pending-restore records of every run
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "default", "velero"})
NEVER = frozenset({RUNS_NAMESPACE})

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def is_namespace_name(name: str) -> bool:
    """The API's rule for a namespace: a DNS-1123 label of at most 63 characters."""
    return len(name) <= 63 and _DNS1123_LABEL.fullmatch(name) is not None


def is_object_name(name: str) -> bool:
    """The API's widest rule for an object name: a DNS-1123 subdomain of at most 253 characters.

    Some kinds accept more (RBAC names may hold ``:``), but none accepts ``/``, ``..``, ``?``, ``%`` or a
    control character, which is what matters when a name goes into a request URL.
    """
    return 0 < len(name) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(name) is not None


def check_target(namespace: str, *, what: str, allow_system: bool = False, flag: str = "") -> str:
    """``namespace`` if a run may act on it with admin power; else a :class:`UsageError` saying why.

    Args:
        namespace: the namespace to act on.
        what: what would act on it ("restore into", "a disaster step on").
        allow_system: the experiment or command allows the cluster's own namespaces.
        flag: how the user allows them, for the hint (``--allow-system-namespace``,
            ``guardrails.allow_kube_system: true``).
    """
    if not namespace or not is_namespace_name(namespace):
        raise UsageError(f"{what} {namespace!r}: not a namespace name",
                         hint="give a lower-case DNS label of at most 63 characters, e.g. demo-restored")
    if namespace in NEVER:
        raise UsageError(f"{what} {namespace}: refused, it holds the leases and safety records of every run",
                         hint="choose another namespace")
    if namespace in SYSTEM_NAMESPACES and not allow_system:
        raise UsageError(f"{what} {namespace}: refused, it is one of the cluster's own namespaces "
                         f"({', '.join(sorted(SYSTEM_NAMESPACES))})",
                         hint=f"choose another namespace, or allow it with {flag or 'the allowance flag'}")
    return namespace
