"""The fault contract and the registry faults are found through.

A fault is a small class, one per module, with ``describe()`` (what it will do,
for ``--dry-run``), ``inject()`` and ``revert()``. Its parameters are a frozen
model (subclass of :class:`FaultParams`) named ``Params`` on the class.
Built-in and third-party faults are registered the same way, through the
``resilience_tests.faults`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from resilience_tests.cluster.selection import Budget, selector_text
from resilience_tests.errors import ResilienceError, UsageError
from resilience_tests.namespaces import check_target
from resilience_tests.schema import Duration, Model

if TYPE_CHECKING:
    from resilience_tests.cluster.kube import Kube, Workload
    from resilience_tests.cluster.timeline import ActionData
    from resilience_tests.platform import Platform

ENTRY_POINT_GROUP = "resilience_tests.faults"


class FaultParams(Model):
    """Keys every fault accepts."""

    type: str
    at: Duration = 0.0
    duration: Duration | None = None
    timeout: Duration = 120.0


KUBE_SYSTEM_FLAG = "guardrails.allow_kube_system: true"


@dataclass(frozen=True)
class Guard:
    """The guardrails every fault of one experiment (or of one test's ``chaos`` helper) works under: the budget
    of nodes and pods they may touch together, and what they may touch at all. Made by :func:`new_guard` only.

    Attributes:
        budget: ``max_nodes``/``max_pods`` over every fault and round; faults take from it before they act.
        allow_kube_system: the cluster's own namespaces (kube-system, default, velero...) may be touched.
        allow_control_plane: control-plane nodes may be picked.
    """

    budget: Budget
    allow_kube_system: bool = False
    allow_control_plane: bool = False

    @property
    def max_nodes(self) -> int:
        """Distinct nodes all the faults may touch."""
        return self.budget.max_nodes

    @property
    def max_pods(self) -> int:
        """Pods all the faults may disrupt or add."""
        return self.budget.max_pods

    def check_namespace(self, namespace: str, *, what: str) -> str:
        """``namespace`` if a step may act on it with admin power (delete it, restore into it); else a one-line
        UsageError: ``resilience-tests`` never, the cluster's own namespaces only with ``allow_kube_system``."""
        return check_target(namespace, what=what, allow_system=self.allow_kube_system, flag=KUBE_SYSTEM_FLAG)


def new_guard(*, max_nodes: int, max_pods: int, allow_kube_system: bool = False,
              allow_control_plane: bool = False) -> Guard:
    """The one way a :class:`Guard` is built: by the runner from an experiment's ``guardrails``, by the ``chaos``
    helper from its arguments, so every fault is bounded however it was started.

    Raises:
        UsageError: a negative limit.
    """
    if max_nodes < 0 or max_pods < 0:
        raise UsageError(f"guardrails max_nodes={max_nodes}, max_pods={max_pods}: a limit cannot be negative",
                         hint="give 0 or more")
    return Guard(Budget(max_nodes, max_pods), allow_kube_system=allow_kube_system,
                 allow_control_plane=allow_control_plane)


@dataclass
class FaultContext:
    """What a fault works with: the cluster, the target namespace, the run and its guardrails (always there), and
    the cluster's platform (:mod:`resilience_tests.platform`)."""

    kube: Kube
    namespace: str
    run_id: str
    guard: Guard  # the experiment's (or the chaos helper's) guardrails over all its faults
    target_labels: Mapping[str, str] = field(default_factory=dict)  # the target's pods (its selector)
    workload: Workload | None = None
    seed: int = 0
    # The fault's own record of an action (details, or a typed value); the runner gives each fault its own, so
    # a record from a fault's background thread is that fault's.
    record: Callable[[str, Mapping[str, object] | ActionData], None] = field(default=lambda kind, data: None)
    shared: dict[str, Any] = field(default_factory=dict)  # what one step hands the next (backup -> restore)
    # Called by a fault right before the act that the workload feels (after choosing what to touch and writing
    # its ledger): the fault's window starts there, so its preparation is not judged as part of the fault.
    acts: Callable[[], None] = field(default=lambda: None)
    platform: Platform | None = None  # what the cluster can do beyond the API, detected once per run (None: on use)

    @property
    def budget(self) -> Budget:
        """What all the faults may still touch; every fault takes from it before it acts."""
        return self.guard.budget

    @property
    def max_nodes(self) -> int:
        """``guardrails.max_nodes``."""
        return self.guard.max_nodes

    @property
    def max_pods(self) -> int:
        """``guardrails.max_pods``."""
        return self.guard.max_pods

    @property
    def allow_kube_system(self) -> bool:
        """``guardrails.allow_kube_system``."""
        return self.guard.allow_kube_system

    @property
    def allow_control_plane(self) -> bool:
        """``guardrails.allow_control_plane``."""
        return self.guard.allow_control_plane

    @property
    def target_selector(self) -> str:
        """The target's label selector in the API server's form (``app=web``; '' for every pod)."""
        return selector_text(self.target_labels)


@runtime_checkable
class Fault(Protocol):
    """A fault: described, injected, reverted. ``revert`` must be safe to call at any time, even twice."""

    name: ClassVar[str]

    def describe(self) -> list[str]:
        """Steps it would take, in order, naming what it would touch (used by --dry-run)."""

    def inject(self) -> None:
        """Apply the fault."""

    def revert(self) -> None:
        """Undo whatever ``inject`` did so far."""


class FaultError(ResilienceError):
    """A fault could not be injected or reverted."""


class FaultFactory(Protocol):
    """A fault class: its parameter model and its constructor."""

    name: ClassVar[str]
    Params: ClassVar[type[FaultParams]]

    def __call__(self, params: FaultParams, ctx: FaultContext) -> Fault: ...


def load_registry(entry_points: list[metadata.EntryPoint] | None = None) -> dict[str, FaultFactory]:
    """Map fault type name -> fault class, from the entry-point group.

    Raises:
        UsageError: two classes claim the same name (both are named).
    """
    found = entry_points if entry_points is not None else list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    registry: dict[str, FaultFactory] = {}
    for ep in found:
        cls = ep.load()
        name = ep.name
        if name in registry and registry[name] is not cls:
            other = registry[name]
            raise UsageError(
                f"fault type {name!r} is registered twice: {_qualname(other)} and {_qualname(cls)}",
                hint="uninstall one of the packages or rename its fault",
            )
        registry[name] = cls
    return registry


def workload_from(text: str | None, ctx: FaultContext) -> Workload | None:
    """The workload a fault names (``deployment/web``), else the experiment target's; a workload in kube-system
    only with ``guardrails.allow_kube_system``."""
    from resilience_tests.cluster.kube import Workload
    from resilience_tests.cluster.selection import SelectionError, parse_workload

    if not text:
        workload = ctx.workload
    else:
        try:
            kind, name = parse_workload(text)
        except SelectionError as exc:
            raise FaultError(exc.message, hint=exc.hint) from None
        workload = Workload(kind, ctx.namespace, name)
    if workload is not None and workload.namespace == "kube-system" and not ctx.allow_kube_system:
        raise FaultError(f"{workload.kind}/{workload.name} is in kube-system",
                         hint="set guardrails.allow_kube_system: true to touch it")
    return workload


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


REVERT_DEADLINE = 60.0
"""How long one object's revert is retried while the API server fails transiently."""


def revert_each(what: str, items: list[str], undo: Callable[[str], object], *,
                deadline: float = REVERT_DEADLINE) -> None:
    """Undo ``what`` on every item, each retried while errors are transient (up to ``deadline`` seconds); one
    item that cannot be restored never stops the others. Raises FaultError naming each item left changed."""
    import tenacity

    from resilience_tests.cluster.kube import is_transient

    failed: list[str] = []
    for item in items:
        retrying = tenacity.Retrying(retry=tenacity.retry_if_exception(is_transient),
                                     stop=tenacity.stop_after_delay(deadline),
                                     wait=tenacity.wait_exponential(multiplier=0.5, max=5), reraise=True)
        try:
            retrying(undo, item)
        except Exception as exc:
            failed.append(f"{item} ({type(exc).__name__}: {str(exc)[:200]})")
    if failed:
        raise FaultError(f"{what} failed for {len(failed)} of {len(items)}: {'; '.join(failed)}",
                         hint="`resilience cleanup` retries it once the cluster answers")


def fault_id(name: str) -> str:
    """A fresh id for one fault instance: its entries in the change ledger (``scale-1a2b3c``)."""
    import uuid

    return f"{name}-{uuid.uuid4().hex[:6]}"


def undo_or_report(ctx: FaultContext, target: str | Workload, fault: str) -> dict[str, object]:
    """Undo one fault's recorded changes on ``target``; raise FaultError if a field was changed by someone else
    meanwhile (it is left as it is). Returns the ``host/`` values to restore (the caller acts on them)."""
    from resilience_tests.cluster import changes

    done = changes.undo(ctx.kube, target, run=ctx.run_id, fault=fault)
    if done.conflicts:
        ctx.record("revert-conflict", {"target": str(target), "conflicts": "; ".join(done.conflicts)})
        raise FaultError(f"{target}: {'; '.join(done.conflicts)}")
    return {k: v for k, v in done.restore.items() if k.startswith("host/")}
