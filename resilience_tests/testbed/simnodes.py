"""The local cluster's nodes as the API server shows them, and the simulated nodes' heartbeat.

A simulated node has a heartbeat while it carries ``resilience-tests.io/heartbeat=on``: the kwok controller
renews the leases of such nodes only (:mod:`resilience_tests.testbed.controlplane`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from resilience_tests.errors import TestbedError
from resilience_tests.labels import HEARTBEAT_LABEL, NODE_KIND_LABEL, ZONE_LABEL
from resilience_tests.testbed.topology import Topology, node_list
from resilience_tests.waiting import wait_until

Kubectl = Callable[..., str]
"""kubectl against the cluster: ``kubectl(*args, stdin=None, timeout=60)`` returns its stdout."""


@dataclass(frozen=True)
class NodeState:
    """One node as ``status`` reports it."""

    name: str
    zone: str
    ready: str
    heartbeat: str
    kind: str
    taints: tuple[str, ...] = ()


def nodes(kubectl: Kubectl) -> list[NodeState]:
    """Current nodes with zone, Ready condition, heartbeat label and taints."""
    data = json.loads(kubectl("get", "nodes", "-o", "json"))
    result = []
    for item in data["items"]:
        labels = item["metadata"].get("labels", {})
        ready = next((c["status"] for c in item.get("status", {}).get("conditions", [])
                      if c["type"] == "Ready"), "Unknown")
        taints = tuple(f"{t['key']}:{t['effect']}" for t in item.get("spec", {}).get("taints", []))
        result.append(NodeState(name=item["metadata"]["name"], zone=labels.get(ZONE_LABEL, ""), ready=ready,
                                heartbeat=labels.get(HEARTBEAT_LABEL, ""), kind=labels.get(NODE_KIND_LABEL, ""),
                                taints=taints))
    return result


def register(kubectl: Kubectl, topology: Topology) -> None:
    """Create the topology's simulated nodes (zone-labelled, with a heartbeat)."""
    kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(node_list(topology)), timeout=300)


def wait_ready(kubectl: Kubectl, names: list[str], *, timeout: float = 60, ready: bool = True) -> None:
    """Wait until every node in ``names`` is Ready (or, with ready=False, not Ready)."""
    wanted = "True" if ready else "not True"
    left: list[str] = list(names)

    def probe() -> bool:
        by_name = {n.name: n for n in nodes(kubectl)}
        left[:] = [n for n in names if n not in by_name or ((by_name[n].ready == "True") != ready)]
        return not left

    wait_until(f"nodes becoming Ready={wanted}", probe, timeout=timeout,
               pending=lambda: f"{len(left)} node(s): {', '.join(left[:8])}")


def set_heartbeat(kubectl: Kubectl, names: list[str], value: str) -> None:
    """Turn the heartbeat of simulated nodes ``on`` or ``off``."""
    if names:
        kubectl("label", "nodes", *names, f"{HEARTBEAT_LABEL}={value}", "--overwrite")


def resync_pods(kubectl: Kubectl, names: list[str]) -> None:
    """Nudge every pod on ``names`` (annotation ``resilience-tests.io/resync``).

    kwok does not replay changes made to pods while it did not manage their node: once the nodes are back,
    terminating pods then finish and pods marked not-ready during the outage turn ready again."""
    pods = json.loads(kubectl("get", "pods", "-A", "-o", "json"))["items"]
    stamp = f"resilience-tests.io/resync={time.time():.0f}"
    for pod in pods:
        if pod["spec"].get("nodeName") in names:
            meta = pod["metadata"]
            with contextlib.suppress(TestbedError):  # gone meanwhile
                kubectl("annotate", "pod", "-n", meta["namespace"], meta["name"], stamp, "--overwrite")
