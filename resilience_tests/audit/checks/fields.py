"""Reading plain dicts as the API server returns them or a manifest writes them: anything may be missing or
of the wrong type, so every reader falls back to empty or a default instead of raising."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

HOSTNAME_LABEL = "kubernetes.io/hostname"
CRITICAL_KEY = "resilience-tests.io/critical"  # label or annotation "true": the workload must not be preempted
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CONTROLLERS = ("Deployment", "StatefulSet", "DaemonSet")
SCALED = ("Deployment", "StatefulSet")  # the kinds with spec.replicas (and PDBs, HPAs that matter here)
POD_OWNERS = (*CONTROLLERS, "ReplicaSet", "Job", "Pod")  # what a PodDisruptionBudget may select pods of


def as_dict(value: Any) -> dict[str, Any]:
    """The value if it is a mapping, else an empty one."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """The value if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def dicts(value: Any) -> list[dict[str, Any]]:
    """The mappings of a list (anything else in it, or a value that is no list, left out)."""
    return [item for item in as_list(value) if isinstance(item, dict)]


def as_int(value: Any, default: int) -> int:
    """An integer field, or its default when it is missing or not an integer."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return default


def labels_of(metadata: Any) -> dict[str, str]:
    """The labels of a metadata mapping, as text."""
    return {str(k): str(v) for k, v in as_dict(as_dict(metadata).get("labels")).items()}


def name_of(container: dict[str, Any]) -> str:
    """A container's name (``?`` when it has none)."""
    return str(container.get("name") or "?")


def plural(count: int, word: str) -> str:
    """``1 replica``, ``2 replicas``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def render(labels: Mapping[str, Any]) -> str:
    """``app=web,tier=front``."""
    return ",".join(f"{k}={v}" for k, v in labels.items()) or "{}"


def scaled(value: Any, total: int, *, round_up: bool) -> int | None:
    """An IntOrString (``2`` or ``"50%"``) as a number of pods out of ``total``; None when unreadable.

    Percentages round as Kubernetes does: down for a Deployment's maxUnavailable, up for a PDB.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%") and text[:-1].isdigit():
            exact = int(text[:-1]) * total
            return -(-exact // 100) if round_up else exact // 100
        if text.isdigit():
            return int(text)
    return None


_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")


_SUFFIX = {"": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6,
           "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
           "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
           "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60}


def quantity(value: Any) -> Decimal | None:
    """A resource quantity (``500m``, ``0.5``, ``128Mi``, ``1e3``) as a number; None when unreadable."""
    if isinstance(value, bool):
        return None
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIX[match.group(2) or ""]
    except InvalidOperation:
        return None


def same_quantity(a: Any, b: Any) -> bool:
    """Whether two resource quantities are equal (as text when unreadable)."""
    qa, qb = quantity(a), quantity(b)
    return qa == qb if qa is not None and qb is not None else str(a) == str(b)


def requests_limits(container: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(requests, limits) for cpu and memory; a request left out defaults to its limit, as the API server does."""
    resources = as_dict(container.get("resources"))
    limits = {k: v for k, v in as_dict(resources.get("limits")).items() if k in ("cpu", "memory") and v is not None}
    requests = {k: v for k, v in as_dict(resources.get("requests")).items() if k in ("cpu", "memory") and v is not None}
    return {**limits, **requests}, limits
