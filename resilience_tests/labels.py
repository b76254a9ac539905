"""Label keys every layer speaks of (one definition each), and the one matcher of labels against selectors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
# Which kind of node of the local cluster: "simulated" (kwok) or "real" (a kubelet).
NODE_KIND_LABEL = "resilience-tests.io/node-kind"
# kwok manages (and heartbeats) only nodes of the local cluster carrying it with "on".
HEARTBEAT_LABEL = "resilience-tests.io/heartbeat"


def object_name(text: str, *, limit: int = 253) -> str:
    """``text`` as a Kubernetes object name: lower case, anything but letters, digits, ``.`` and ``-`` made ``-``,
    at most ``limit`` characters, no trailing ``-`` or ``.``."""
    return re.sub(r"[^a-z0-9.-]", "-", text.lower())[:limit].rstrip("-.")


def has_labels(labels: Mapping[str, str], wanted: Mapping[Any, Any]) -> bool:
    """Whether ``labels`` carry every pair of the equality map ``wanted`` (a LabelSelector's matchLabels, a
    nodeSelector, a Service's selector, ``--selector app=web``). An empty map is met by any labels; a Service,
    whose empty selector selects no pod, says so itself. Keys and values compare as text (a manifest may write
    ``version: 2``)."""
    return all(labels.get(str(key)) == str(value) for key, value in wanted.items())


def selects(selector: Any, labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector as the API writes it (``matchLabels`` and ``matchExpressions`` with ``In``,
    ``NotIn``, ``Exists``, ``DoesNotExist``; every part ANDed) selects ``labels``.

    As the API server reads one (``metav1.LabelSelectorAsSelector``): a null selector (None) selects nothing,
    an empty one (``{}``) everything, and an invalid one nothing (not a mapping, an unknown operator, ``In`` or
    ``NotIn`` without values, ``Exists`` or ``DoesNotExist`` with values, a part of the wrong type).
    """
    if not isinstance(selector, Mapping):
        return False
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        return False
    return has_labels(labels, match_labels) and all(_meets(e, labels) for e in expressions)


def _meets(expression: Any, labels: Mapping[str, str]) -> bool:
    """One requirement of a LabelSelector's ``matchExpressions`` (False when it is invalid)."""
    if not isinstance(expression, Mapping) or not isinstance(expression.get("values") or [], list):
        return False
    key, operator = str(expression.get("key")), str(expression.get("operator"))
    values = {str(v) for v in expression.get("values") or []}
    if operator in ("In", "NotIn"):
        if not values:
            return False
        return (key in labels and labels[key] in values) == (operator == "In")
    if operator in ("Exists", "DoesNotExist"):
        return not values and (key in labels) == (operator == "Exists")
    return False
