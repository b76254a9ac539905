"""Undo what a killed run left behind, from the annotations faults leave on what they touch.

Every node or workload a fault changes carries ``resilience-tests.io/run`` (the
run id) and ``resilience-tests.io/revert-<aspect>`` (JSON: the original value of each aspect changed).
:func:`cleanup` finds them, applies the revert record and clears both.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from resilience_tests.cluster.kube import REVERT_PREFIX, RUN_ANNOTATION, Kube, Workload

HEARTBEAT_LABEL = "resilience-tests.io/heartbeat"


@dataclass(frozen=True)
class CleanupAction:
    """One thing cleanup undid (or would undo, in a dry run)."""

    run_id: str
    target: str
    action: str


def _marked(obj: Any, run_id: str | None) -> tuple[str, dict[str, Any]] | None:
    """(run id, {aspect: original value}) of an object a run changed, or None."""
    annotations = obj.metadata.annotations or {}
    found = annotations.get(RUN_ANNOTATION)
    if not found or (run_id and found != run_id):
        return None
    aspects: dict[str, Any] = {}
    for key, value in annotations.items():
        if key.startswith(REVERT_PREFIX):
            try:
                aspects[key.removeprefix(REVERT_PREFIX)] = json.loads(value)
            except ValueError:
                continue
    return found, aspects


def _clear(aspects: dict[str, Any]) -> dict[str, Any]:
    marks: dict[str, Any] = {REVERT_PREFIX + aspect: None for aspect in aspects}
    marks[RUN_ANNOTATION] = None
    return {"metadata": {"annotations": marks}}


def _thaw_local(kube: Kube, node: str) -> None:
    """Thaw a real node of the local cluster the kube context points at (``kwok-NAME``)."""
    from resilience_tests.cluster.client import current_context
    from resilience_tests.testbed.cluster import LocalCluster

    context = kube.ref.context or current_context(kube.ref.kubeconfig)
    LocalCluster(context.removeprefix("kwok-")).restore_nodes([node])


def _node_steps(kube: Kube, name: str, aspects: dict[str, Any], *,
                real: bool = False) -> list[tuple[str, Callable[[], object]]]:
    steps: list[tuple[str, Callable[[], object]]] = []
    if "unschedulable" in aspects:
        steps.append(("uncordon", lambda: kube.core.patch_node(name, {"spec": {"unschedulable": False}})))
    if aspects.get("heartbeat") == "on" and real:
        steps.append(("thaw the frozen real node", lambda: _thaw_local(kube, name)))
    elif aspects.get("heartbeat") == "on":
        steps.append(("resume heartbeat", lambda: kube.core.patch_node(
            name, {"metadata": {"labels": {HEARTBEAT_LABEL: "on"}}})))
    if "taint" in aspects:
        steps.append((f"remove taint {aspects['taint']}", lambda: kube.remove_taint(name, str(aspects["taint"]))))
    if aspects.get("docker") == "unpause" and shutil.which("docker"):
        steps.append(("docker unpause", lambda: subprocess.run(["docker", "unpause", name], check=False,
                                                               capture_output=True, timeout=60)))
    steps.append(("clear annotations", lambda: kube.core.patch_node(name, _clear(aspects))))
    return steps


def _workload_steps(kube: Kube, workload: Workload,
                    aspects: dict[str, Any]) -> list[tuple[str, Callable[[], object]]]:
    body = _clear(aspects)
    what = []
    if isinstance(aspects.get("replicas"), int):
        body["spec"] = {"replicas": aspects["replicas"]}
        what.append(f"scale back to {aspects['replicas']}")
    if isinstance(aspects.get("containers"), list):
        body.setdefault("spec", {})["template"] = {"spec": {"containers": aspects["containers"]}}
        what.append("roll back image/env")
    return [(", ".join(what) or "clear annotations", lambda: kube.patch_workload(workload, body))]


def cleanup(kube: Kube, *, run_id: str | None = None, dry_run: bool = False) -> list[CleanupAction]:
    """Revert everything marked by ``run_id`` (or by any run). Returns what was done."""
    actions: list[CleanupAction] = []
    for node in kube.core.list_node().items:
        marked = _marked(node, run_id)
        if marked:
            real = (node.metadata.labels or {}).get("resilience-tests.io/node-kind") == "real"
            for label, step in _node_steps(kube, node.metadata.name, marked[1], real=real):
                if not dry_run:
                    step()
                actions.append(CleanupAction(marked[0], f"node/{node.metadata.name}", label))
    listers = (("deployment", kube.apps.list_deployment_for_all_namespaces),
               ("statefulset", kube.apps.list_stateful_set_for_all_namespaces),
               ("daemonset", kube.apps.list_daemon_set_for_all_namespaces))
    for kind, lister in listers:
        for obj in lister().items:
            marked = _marked(obj, run_id)
            if marked:
                workload = Workload(kind, obj.metadata.namespace, obj.metadata.name)
                for label, step in _workload_steps(kube, workload, marked[1]):
                    if not dry_run:
                        step()
                    actions.append(CleanupAction(marked[0], str(workload), label))
    return actions
