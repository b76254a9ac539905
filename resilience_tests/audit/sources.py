"""Where the audit reads objects from: manifest files and folders, standard input, or a live namespace.

Multi-document YAML (Helm's rendered output, ``kustomize build``) is read document by document, each object
remembering the line its document starts on. What cannot be read (bad YAML, a document that is not an object,
an empty file, a kind the audit does not know) is a :class:`Problem` with its location; the rest is audited.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from resilience_tests import strictyaml
from resilience_tests.audit.model import Inventory, Location, Obj, Problem

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Pod")
CONTEXT = ("Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy", "ResourceQuota",
           "LimitRange", "Namespace")
# Read and left alone: they hold nothing a resilience rule judges.
IGNORED = ("ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
           "Ingress", "IngressClass", "PersistentVolumeClaim", "PersistentVolume", "StorageClass", "Job", "CronJob",
           "CustomResourceDefinition", "PriorityClass", "ReplicaSet", "Endpoints", "EndpointSlice", "Event",
           "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService", "Lease")
SUFFIXES = (".yaml", ".yml", ".json")
MAX_BYTES = 20 * 1024 * 1024


def _documents(text: str, source: str) -> Iterable[tuple[int, Any] | Problem]:
    try:
        yield from strictyaml.load_all(text)
    except strictyaml.YamlProblem as exc:
        yield Problem(Location(source, exc.line), f"invalid YAML: {exc.problem}; the rest of this file is not read")


def parse(text: str, source: str) -> tuple[list[Obj], list[Problem]]:
    """The objects of one manifest text, and what could not be read."""
    objects: list[Obj] = []
    problems: list[Problem] = []
    seen_document = False
    for item in _documents(text, source):
        if isinstance(item, Problem):
            problems.append(item)
            continue
        line, data = item
        if data is None:
            continue
        seen_document = True
        where = Location(source, line)
        if not isinstance(data, dict) or not data.get("kind"):
            problems.append(Problem(where, "not a Kubernetes object (no kind): skipped"))
            continue
        if not isinstance(data.get("metadata") or {}, dict):
            problems.append(Problem(where, f"{data['kind']}: metadata is not a mapping: skipped"))
            continue
        if str(data["kind"]).endswith("List") and isinstance(data.get("items"), list):
            for entry in data.get("items") or []:
                if isinstance(entry, dict) and entry.get("kind"):
                    _add(Obj(entry, where), objects, problems)
            continue
        _add(Obj(data, where), objects, problems)
    if not seen_document and not problems:
        problems.append(Problem(Location(source), "empty: no object in it"))
    return objects, problems


def _add(obj: Obj, objects: list[Obj], problems: list[Problem]) -> None:
    if obj.kind in WORKLOADS or obj.kind in CONTEXT:
        objects.append(obj)
    elif obj.kind not in IGNORED:
        api = obj.data.get("apiVersion", "?")
        problems.append(Problem(obj.location, f"{obj.kind} ({api}) {obj.name}: a kind the audit does not know "
                                               "(a custom resource?): skipped"))


def is_path(target: str) -> bool:
    """Whether an audit target names manifests (``-``, an existing path, a YAML/JSON name or anything with a
    slash) rather than a live namespace."""
    return target == "-" or Path(target).exists() or target.endswith(SUFFIXES) or "/" in target


def read_paths(paths: Iterable[str]) -> tuple[Inventory, list[Problem]]:
    """Objects of files, folders (their YAML and JSON files, recursively) and ``-`` (standard input)."""
    inventory = Inventory()
    problems: list[Problem] = []
    for raw in paths:
        if raw == "-":
            try:
                stdin = getattr(sys.stdin, "buffer", sys.stdin)  # a test's StringIO has no buffer
                text = strictyaml.read_text(stdin, max_bytes=MAX_BYTES, what="manifest")
            except strictyaml.YamlProblem as exc:
                problems.append(Problem(Location("<stdin>"), f"{exc}: not read"))
                continue
            found, trouble = parse(text, "<stdin>")
            inventory.objects += found
            problems += trouble
            continue
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
            if not files:
                problems.append(Problem(Location(raw), "no .yaml, .yml or .json file in this folder"))
        elif path.is_file():
            files = [path]
        else:
            problems.append(Problem(Location(raw), "no such file or folder"))
            continue
        for file in files:
            try:
                text = strictyaml.read_text(file, max_bytes=MAX_BYTES, what="manifest")
            except OSError as exc:
                problems.append(Problem(Location(str(file)), f"cannot read: {exc.strerror}"))
                continue
            except strictyaml.YamlProblem as exc:
                problems.append(Problem(Location(str(file)), f"{exc}: skipped"))
                continue
            found, trouble = parse(text, str(file))
            inventory.objects += found
            problems += trouble
    return inventory, problems


def read_namespace(kube: Any, namespace: str) -> tuple[Inventory, list[Problem]]:
    """Objects of a live namespace (through :class:`~resilience_tests.cluster.kube.Kube`) and the cluster's zones."""
    where = Location(f"cluster:{kube.ref.context or '(current)'}/{namespace}")
    if not kube.namespace_exists(namespace):
        return Inventory(), [Problem(where, f"namespace {namespace!r} does not exist")]
    objects = [Obj(data, where) for data in kube.audit_objects(namespace)]
    zones = tuple(sorted({n.zone for n in kube.nodes() if n.zone}))
    return Inventory(objects, zones), []
