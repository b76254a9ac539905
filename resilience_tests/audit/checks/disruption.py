"""Disruption rules (RT5xx, RT601): PodDisruptionBudgets that protect without blocking every drain, and
rollouts that never take every replica down."""

from __future__ import annotations

from collections.abc import Iterator

from resilience_tests.audit.checks.fields import POD_OWNERS, as_dict, labels_of, plural, render, scaled
from resilience_tests.audit.checks.workload import Workload, pdbs, selector_pairs
from resilience_tests.audit.model import Inventory, Obj
from resilience_tests.labels import selects


def pdb(w: Workload) -> Iterator[str]:
    """RT501 pdb (see :data:`resilience_tests.audit.rules.RULES`)."""
    if w.replicas is not None and w.replicas >= 2 and not pdbs(w):
        yield (f"{w.replicas} replicas and no PodDisruptionBudget selects {render(w.labels)}: a node drain or "
               "upgrade may evict them all at once; add a PodDisruptionBudget with maxUnavailable 1")


def pdb_blocks_drain(w: Workload) -> Iterator[str]:
    """RT502 pdb-blocks-drain (see :data:`resilience_tests.audit.rules.RULES`)."""
    if w.replicas is None or w.replicas < 1:
        return
    for pdb in pdbs(w):
        spec = as_dict(pdb.data.get("spec"))
        if "minAvailable" in spec:
            keep = scaled(spec["minAvailable"], w.replicas, round_up=True)
            if keep is not None and keep >= w.replicas:
                yield (f"PodDisruptionBudget {pdb.name} minAvailable {spec['minAvailable']} keeps all "
                       f"{plural(w.replicas, 'replica')}: no pod may be evicted, so every node drain blocks; "
                       "use maxUnavailable 1")
        elif "maxUnavailable" in spec:
            down = scaled(spec["maxUnavailable"], w.replicas, round_up=True)
            if down == 0:
                yield (f"PodDisruptionBudget {pdb.name} maxUnavailable {spec['maxUnavailable']}: no pod may be "
                       "evicted, so every node drain blocks; use maxUnavailable 1")


def pdb_selects_nothing(pdb: Obj, inventory: Inventory) -> Iterator[str]:
    """RT503 pdb-selects-nothing (see :data:`resilience_tests.audit.rules.RULES`)."""
    selector = as_dict(pdb.data.get("spec")).get("selector")
    for labels in _owner_labels(inventory, pdb.namespace, selector_pairs(selector)):
        if selects(selector, labels):
            return
    shown = render(as_dict(as_dict(selector).get("matchLabels"))) if isinstance(selector, dict) else "none"
    yield (f"selector {shown} selects the pods of no workload here: it protects nothing; fix the selector to "
           "match the pod template labels or delete the PodDisruptionBudget")


def _owner_labels(inventory: Inventory, namespace: str, required: list[tuple[str, str]] | None,
                  ) -> list[dict[str, str]]:
    """The pod labels of the namespace's pod owners (bare pods and pod templates) that carry the first
    ``required`` pair (all of them when nothing is required)."""
    def build() -> tuple[list[dict[str, str]], dict[tuple[str, str], list[int]]]:
        every: list[dict[str, str]] = []
        by_pair: dict[tuple[str, str], list[int]] = {}
        for obj in inventory.in_namespace(namespace, *POD_OWNERS):
            metadata = obj.data.get("metadata") if obj.kind == "Pod" else \
                as_dict(as_dict(obj.data.get("spec")).get("template")).get("metadata")
            labels = labels_of(metadata)
            for pair in labels.items():
                by_pair.setdefault(pair, []).append(len(every))
            every.append(labels)
        return every, by_pair

    every, by_pair = inventory.memo(("owner-labels", namespace), build)
    if not required:
        return list(every)
    return [every[i] for i in by_pair.get(required[0], ())]


def rollout_capacity(w: Workload) -> Iterator[str]:
    """RT601 rollout-capacity (see :data:`resilience_tests.audit.rules.RULES`)."""
    if w.obj.kind != "Deployment" or w.replicas is None or w.replicas < 1:
        return
    strategy = as_dict(as_dict(w.obj.data.get("spec")).get("strategy"))
    if strategy.get("type") == "Recreate":
        if w.services:
            yield (f"strategy Recreate stops all {plural(w.replicas, 'replica')} before starting new ones while "
                   f"Service {w.services[0].name} routes to them: every rollout is an outage; use RollingUpdate")
        return
    raw = as_dict(strategy.get("rollingUpdate")).get("maxUnavailable")
    raw = "25%" if raw is None else raw
    down = scaled(raw, w.replicas, round_up=False)
    if down is not None and down >= w.replicas:
        yield (f"rollingUpdate.maxUnavailable {raw} of {plural(w.replicas, 'replica')} is {down}: a rollout may "
               "stop every pod at once; lower it (e.g. maxUnavailable 0 with maxSurge 1)")
