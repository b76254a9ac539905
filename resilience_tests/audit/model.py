"""What the audit works on and what it finds: pure data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low")
SKIP_PREFIX = "resilience-tests.io/skip-"  # annotation skip-<rule id>: "<reason>" on the workload
DOCS = "docs/audit.md"


@dataclass(frozen=True)
class Location:
    """Where an object was read: a file and the line its document starts on, or a live namespace."""

    source: str  # a file path, "<stdin>", or "cluster:<context>/<namespace>"
    line: int = 0  # 1-based; 0 when not from a file

    def __str__(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


@dataclass(frozen=True)
class Obj:
    """One Kubernetes object as read (a dict, as the API server returns it) and where it came from."""

    data: dict[str, Any]
    location: Location

    @property
    def kind(self) -> str:
        return str(self.data.get("kind") or "")

    @property
    def name(self) -> str:
        return str((self.data.get("metadata") or {}).get("name") or "")

    @property
    def namespace(self) -> str:
        return str((self.data.get("metadata") or {}).get("namespace") or "default")

    @property
    def ref(self) -> str:
        """``Deployment demo/web``."""
        return f"{self.kind} {self.namespace}/{self.name}"

    @property
    def annotations(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in ((self.data.get("metadata") or {}).get("annotations") or {}).items()}


@dataclass(frozen=True)
class Rule:
    """A rule: its id (``RT101``), short name, severity, what it checks, and the experiment that proves it."""

    id: str
    name: str
    severity: Severity
    summary: str
    experiment: str = ""  # the name of an example experiment (under experiments/) that demonstrates the failure

    @property
    def doc(self) -> str:
        return f"{DOCS}#{self.id.lower()}"


@dataclass(frozen=True)
class Finding:
    """One rule broken by one object: what is wrong and how to fix it, in one line."""

    rule: Rule
    obj: str  # ``Deployment demo/web``
    location: Location
    message: str
    skipped: str = ""  # the reason given by a skip annotation (the finding is then reported, not counted)


@dataclass(frozen=True)
class Problem:
    """An input the audit could not read (bad YAML, a document that is not an object): reported, not fatal."""

    location: Location
    message: str


@dataclass
class Inventory:
    """Every object of a source, by kind, for rules that look across objects (Services, PDBs, HPAs...)."""

    objects: list[Obj] = field(default_factory=list)
    zones: tuple[str, ...] = ()  # the cluster's zones when auditing live (empty from files)
    _index: dict[tuple[str, str], list[tuple[int, Obj]]] = field(default_factory=dict, repr=False, compare=False)
    _indexed: int = field(default=-1, repr=False, compare=False)
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def _by_namespace(self) -> dict[tuple[str, str], list[tuple[int, Obj]]]:
        """(namespace, kind) -> (position, object), rebuilt when objects were added: rules look objects up per
        workload, and a scan of every object each time made 1,000 workloads take seconds."""
        if self._indexed != len(self.objects):
            self._index = {}
            self._memo = {}
            for position, obj in enumerate(self.objects):
                self._index.setdefault((obj.namespace, obj.kind), []).append((position, obj))
            self._indexed = len(self.objects)
        return self._index

    def of(self, *kinds: str) -> list[Obj]:
        return [o for o in self.objects if o.kind in kinds]

    def in_namespace(self, namespace: str, *kinds: str) -> list[Obj]:
        """Objects of these kinds in ``namespace``, in the order they were read."""
        index = self._by_namespace()
        key = ("in", namespace, kinds)
        if key not in self._memo:
            found = sorted((pair for kind in kinds for pair in index.get((namespace, kind), ())), key=lambda p: p[0])
            self._memo[key] = [obj for _, obj in found]
        return list(self._memo[key])

    def memo(self, key: Any, make: Any) -> Any:
        """A value derived from the objects (an index a rule builds once), rebuilt when objects were added."""
        self._by_namespace()
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]
