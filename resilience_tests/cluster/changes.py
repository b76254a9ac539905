"""Recorded changes to nodes and workloads: each change is written together with its ledger entry, each undo
restores only what still holds the value a run set (see :mod:`resilience_tests.cluster.ledger`).

Fields: ``replicas``, ``unschedulable``, ``label/KEY``, ``taint/KEY/EFFECT``, ``image/CONTAINER`` and
``env/CONTAINER/NAME`` are read and written through the API. ``host/...`` fields are changes made outside the
API (a frozen real node, a paused kind container): they are only recorded, the caller acts on them, and their
current value is taken to be the one recorded last.

Writes carry the ``resourceVersion`` read, so two runs changing one object at once cannot lose each other's
entries: a conflict (HTTP 409) reads again and retries.
"""

from __future__ import annotations

import json
from typing import Any

import tenacity
from kubernetes.client.exceptions import ApiException

from resilience_tests.cluster import ledger as ledgers
from resilience_tests.cluster.kube import Kube, Workload
from resilience_tests.cluster.ledger import LEDGER_ANNOTATION, RUN_LABEL, Undo, Value

Target = str | Workload  # a node name or a workload
HOST = "host/"


def _read(kube: Kube, target: Target) -> dict[str, Any]:
    if isinstance(target, str):
        response = kube.raw.core.read_node(target, _preload_content=False)
    else:
        readers = {"deployment": kube.raw.apps.read_namespaced_deployment,
                   "statefulset": kube.raw.apps.read_namespaced_stateful_set,
                   "daemonset": kube.raw.apps.read_namespaced_daemon_set}
        response = readers[target.kind](target.name, target.namespace, _preload_content=False)
    try:
        data: dict[str, Any] = json.loads(response.data)
    finally:
        response.release_conn()
    return data


def _write(kube: Kube, target: Target, body: dict[str, Any]) -> None:
    if isinstance(target, str):
        kube.raw.core.patch_node(target, body)
    else:
        kube.patch_workload(target, body)


def _container(obj: dict[str, Any], name: str) -> dict[str, Any]:
    containers = obj["spec"]["template"]["spec"]["containers"]
    return next((c for c in containers if c.get("name") == name), {})


def field_value(obj: dict[str, Any], field: str) -> Value:
    """The current value of ``field`` in an object's JSON (None: absent)."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    kind, _, rest = field.partition("/")
    if field == "replicas":
        return spec.get("replicas")
    if field == "unschedulable":
        return bool(spec.get("unschedulable"))
    if kind == "label":
        return (meta.get("labels") or {}).get(rest)
    if kind == "taint":
        key, _, effect = rest.rpartition("/")
        return next((t.get("value") or "" for t in spec.get("taints") or []
                     if t.get("key") == key and t.get("effect") == effect), None)
    if kind == "image":
        return _container(obj, rest).get("image")
    if kind == "env":
        container, _, name = rest.partition("/")
        return next((e.get("value") for e in _container(obj, container).get("env") or [] if e.get("name") == name),
                    None)
    raise ValueError(f"unknown field {field!r}")


def field_patch(obj: dict[str, Any], values: dict[str, Value]) -> dict[str, Any]:
    """A strategic-merge patch setting ``values`` (None removes a label, taint or env variable)."""
    body: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    containers: dict[str, dict[str, Any]] = {}
    taints = list((obj.get("spec") or {}).get("taints") or [])
    taints_changed = False
    for field, value in values.items():
        kind, _, rest = field.partition("/")
        if field in ("replicas", "unschedulable"):
            spec[field] = value
        elif kind == "label":
            body.setdefault("metadata", {}).setdefault("labels", {})[rest] = value
        elif kind == "taint":
            key, _, effect = rest.rpartition("/")
            taints = [t for t in taints if not (t.get("key") == key and t.get("effect") == effect)]
            if value is not None:
                taints.append({"key": key, "value": value, "effect": effect})
            taints_changed = True
        elif kind == "image":
            containers.setdefault(rest, {"name": rest})["image"] = value
        elif kind == "env":
            container, _, name = rest.partition("/")
            entry = {"name": name, "value": value} if value is not None else {"name": name, "$patch": "delete"}
            containers.setdefault(container, {"name": container}).setdefault("env", []).append(entry)
        elif kind != "host":
            raise ValueError(f"unknown field {field!r}")
    if taints_changed:
        spec["taints"] = taints
    if containers:
        spec["template"] = {"spec": {"containers": list(containers.values())}}
    if spec:
        body["spec"] = spec
    return body


def _current(obj: dict[str, Any], fields: list[str], ledger: tuple[ledgers.Change, ...]) -> dict[str, Value]:
    values = {}
    for field in fields:
        if field.startswith(HOST):
            values[field] = next((c.after for c in reversed(ledger) if c.field == field), None)
        else:
            values[field] = field_value(obj, field)
    return values


def _patch(obj: dict[str, Any], values: dict[str, Value], ledger: tuple[ledgers.Change, ...]) -> dict[str, Any]:
    """The write of ``values`` with the object's new ledger, conditional on the resourceVersion read."""
    body = field_patch(obj, values)
    meta = body.setdefault("metadata", {})
    meta["resourceVersion"] = (obj.get("metadata") or {}).get("resourceVersion")
    meta.setdefault("annotations", {})[LEDGER_ANNOTATION] = ledgers.dump(ledger)
    meta.setdefault("labels", {})[RUN_LABEL] = "true" if ledger else None
    return body


def _retrying() -> tenacity.Retrying:
    return tenacity.Retrying(retry=tenacity.retry_if_exception(lambda e: isinstance(e, ApiException)
                                                               and e.status == 409),
                             stop=tenacity.stop_after_attempt(10), wait=tenacity.wait_random(0.05, 0.5),
                             reraise=True)


def change(kube: Kube, target: Target, wanted: dict[str, Value], *, run: str, fault: str) -> None:
    """Set ``wanted`` on ``target`` and record it in its ledger, in one write."""
    def attempt() -> None:
        obj = _read(kube, target)
        meta = obj.get("metadata") or {}
        ledger = ledgers.parse((meta.get("annotations") or {}).get(LEDGER_ANNOTATION))
        new = ledgers.record(ledger, run, fault, _current(obj, list(wanted), ledger), wanted)
        _write(kube, target, _patch(obj, wanted, new))

    _retrying()(attempt)


def undo(kube: Kube, target: Target, *, run: str, fault: str | None = None) -> Undo:
    """Undo ``run``'s changes (only ``fault``'s, if given) on ``target``; ``host/`` values to restore and the
    fields someone else changed since are in the result. A target that is gone has nothing to undo."""
    result: list[Undo] = []

    def attempt() -> None:
        result.clear()
        obj = _read(kube, target)
        meta = obj.get("metadata") or {}
        ledger = ledgers.parse((meta.get("annotations") or {}).get(LEDGER_ANNOTATION))
        fields = sorted({c.field for c in ledger if c.run == run and (fault is None or c.fault == fault)})
        if not fields:
            result.append(Undo({}, ledger, ()))
            return
        done = ledgers.undo(ledger, _current(obj, fields, ledger), run=run, fault=fault)
        _write(kube, target, _patch(obj, done.restore, done.ledger))
        result.append(done)

    try:
        _retrying()(attempt)
    except ApiException as exc:
        if exc.status == 404:
            return Undo({}, (), ())
        raise
    return result[0]


def recorded(kube: Kube, target: Target) -> tuple[ledgers.Change, ...]:
    """The ledger of ``target`` (empty if none)."""
    meta = _read(kube, target).get("metadata") or {}
    return ledgers.parse((meta.get("annotations") or {}).get(LEDGER_ANNOTATION))


def owns(kube: Kube, target: Target, field: str, *, run: str, fault: str) -> ledgers.Change | None:
    """The ledger entry of ``run``'s ``fault`` for ``field`` if it is the latest one (its undo restores the value),
    else None (another run's change came later, or this fault changed nothing)."""
    try:
        entries = [c for c in recorded(kube, target) if c.field == field]
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    top = entries[-1] if entries else None
    return top if top is not None and top.run == run and top.fault == fault else None
