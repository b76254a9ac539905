"""Platforms: what a cluster kind can do beyond the Kubernetes API, detected once per run.

The built-in platforms are ``local`` (:mod:`.local`), ``kind`` (:mod:`.kind`) and ``generic`` (:mod:`.generic`);
a third party adds one through the ``resilience_tests.platforms`` entry-point group (a class with ``name``,
``claims(seen)`` and a constructor taking the :class:`Seen` cluster). :func:`detect` reads the cluster once
(context, kubeconfig, API server URL, nodes) and asks ``local``, ``kind``, then the third parties' in name
order whether the cluster is theirs; ``generic`` takes any other. The runner, the ``chaos`` helper and
``resilience cleanup`` hand the result down; faults find it in their context.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING

from resilience_tests.errors import UsageError
from resilience_tests.platform.base import (
    Capabilities,
    NodeFacts,
    Outage,
    Platform,
    PlatformError,
    PlatformFactory,
    PlatformName,
    Seen,
)
from resilience_tests.platform.generic import GenericPlatform
from resilience_tests.platform.kind import KindPlatform
from resilience_tests.platform.local import LocalPlatform

if TYPE_CHECKING:
    from resilience_tests.cluster.kube import Kube

__all__ = ["Capabilities", "NodeFacts", "Outage", "Platform", "PlatformError", "PlatformFactory", "PlatformName",
           "Seen", "choose", "detect", "host_restore", "load_platforms", "seen_of"]

ENTRY_POINT_GROUP = "resilience_tests.platforms"
BUILTIN: Mapping[str, PlatformFactory] = {"local": LocalPlatform, "kind": KindPlatform, "generic": GenericPlatform}
FALLBACK = "generic"


def load_platforms(entry_points: list[metadata.EntryPoint] | None = None) -> dict[str, PlatformFactory]:
    """Platform name -> platform class: the built-ins, then the entry-point group's.

    Raises:
        UsageError: two classes claim the same name (both are named).
    """
    found = entry_points if entry_points is not None else list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    registry: dict[str, PlatformFactory] = dict(BUILTIN)
    for ep in found:
        cls = ep.load()
        if ep.name in registry and registry[ep.name] is not cls:
            raise UsageError(f"platform {ep.name!r} is registered twice: {_qualname(registry[ep.name])} and "
                             f"{_qualname(cls)}", hint="uninstall one of the packages or rename its platform")
        registry[ep.name] = cls
    return registry


def choose(seen: Seen, registry: Mapping[str, PlatformFactory], wanted: str = "auto") -> Platform:
    """The platform ``wanted`` (if not ``auto``), else the first whose ``claims(seen)`` holds: ``local``,
    ``kind``, the third parties' in name order, then ``generic``.

    Raises:
        UsageError: ``wanted`` names no platform.
        PlatformError: the platform cannot work with this cluster (e.g. ``local`` on another one).
    """
    if wanted != "auto":
        if wanted not in registry:
            raise UsageError(f"unknown platform {wanted!r}", hint=f"known: auto, {', '.join(sorted(registry))}")
        return registry[wanted](seen)
    others = sorted(n for n in registry if n not in BUILTIN)
    for name in ("local", "kind", *others):
        if name in registry and registry[name].claims(seen):
            return registry[name](seen)
    return registry.get(FALLBACK, GenericPlatform)(seen)


def seen_of(kube: Kube) -> Seen:
    """What the cluster shows, read once: context, kubeconfig, API server URL, nodes."""
    from resilience_tests.cluster.client import current_context

    context = kube.ref.context or current_context(kube.ref.kubeconfig)
    return Seen(context=context, kubeconfig=kube.ref.kubeconfig, server=kube.server,
                nodes=tuple(NodeFacts.of(n) for n in kube.node_objects()))


def detect(kube: Kube, wanted: str = "auto", *, registry: Mapping[str, PlatformFactory] | None = None) -> Platform:
    """The platform of the cluster ``kube`` reaches (see :func:`choose`); once per run."""
    return choose(seen_of(kube), registry if registry is not None else load_platforms(), wanted)


def host_restore(detected: Platform, kube: Kube, *, registry: Mapping[str, PlatformFactory] | None = None
                 ) -> Callable[[str, str], None]:
    """What ``resilience cleanup`` calls to restore a node's host-side ledger ``field`` after a killed run: the
    detected platform's, else that of the platform whose field it is (a fault run with ``provider:``). A field
    no platform here owns is left to the ledger."""

    def restore(node: str, field: str) -> None:
        if detected.restore_host(node, field):
            return
        names = registry if registry is not None else load_platforms()
        seen = seen_of(kube)
        for name in names:
            if name == detected.name:
                continue
            try:
                if names[name](seen).restore_host(node, field):
                    return
            except PlatformError:
                continue  # not this cluster's (the local cluster is not here)

    return restore


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
