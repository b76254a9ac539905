"""Label keys every layer speaks of (one definition each)."""

from __future__ import annotations

import re

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
