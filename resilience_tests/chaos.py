"""Faults and experiments from Python: what the ``chaos`` fixture hands to a test function.

    def test_drain_keeps_web_available(chaos):
        with chaos.fault("node-drain", namespace="demo", workload="deployment/web", nodes={"zone": "zone-a"}):
            ...  # observe
        result = chaos.run("experiments/drain.yaml")

Everything injected is reverted when the block ends, and at the latest at teardown. Every fault of one
:class:`Chaos` works under one guard: ``max_nodes`` and ``max_pods`` count every fault it injects (every pod a
drain, a node or zone failure disrupts, every pod a scale-up adds), as ``guardrails`` do for an experiment.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from resilience_tests.cluster.kube import Kube, Workload
from resilience_tests.cluster.leases import RunLease
from resilience_tests.cluster.selection import SelectionError, parse_label_selector, parse_workload
from resilience_tests.errors import UsageError
from resilience_tests.experiment.journal import Journal
from resilience_tests.experiment.model import Experiment, load_experiment, parse_experiment
from resilience_tests.experiment.runner import Runner, new_run_id
from resilience_tests.faults.base import Fault, FaultContext, FaultFactory, Guard, new_guard
from resilience_tests.interrupts import reverts_shielded
from resilience_tests.platform import Platform
from resilience_tests.runids import ExperimentIds
from resilience_tests.schema import explain


class Chaos:
    """Injects faults into one cluster and reverts them all at the end.

    Args:
        kube: the cluster.
        registry: fault type -> fault class.
        seed: seed of every random choice.
        namespace: the namespace of faults that name none.
        max_nodes: distinct nodes all the faults it injects may touch (``guardrails.max_nodes``).
        max_pods: pods all the faults it injects may disrupt or add (``guardrails.max_pods``).
        allow_kube_system: the default of :meth:`inject`'s ``allow_kube_system``.
        allow_control_plane: the default of :meth:`inject`'s ``allow_control_plane``.
        platform: the cluster's platform (detected once for the run), handed to every fault.
        ids: the experiment ids of the run it belongs to (the helper takes one, each :meth:`run` one more).
    """

    def __init__(self, kube: Kube, registry: dict[str, FaultFactory], *, seed: int = 0,
                 namespace: str | None = None, max_nodes: int = 1, max_pods: int = 10,
                 allow_kube_system: bool = False, allow_control_plane: bool = False,
                 platform: Platform | None = None, ids: ExperimentIds | None = None) -> None:
        self.kube = kube
        self.platform = platform
        self.registry = registry
        self.seed = seed
        self.namespace = namespace
        self.ids = ids
        self.run_id = ids.next() if ids else new_run_id("chaos")
        self.guard: Guard = new_guard(max_nodes=max_nodes, max_pods=max_pods, allow_kube_system=allow_kube_system,
                                      allow_control_plane=allow_control_plane)
        self._active: list[Fault] = []
        self._lease: RunLease | None = None

    def _guard(self, max_nodes: int | None, max_pods: int | None, allow_kube_system: bool | None,
               allow_control_plane: bool | None) -> Guard:
        """The guard of one fault: this helper's budget (with new limits if given: they stay for the faults
        after it, and what was counted stays counted) and the allowances given for this fault, else the
        helper's."""
        try:
            self.guard.budget.limit(max_nodes=max_nodes, max_pods=max_pods)
        except SelectionError as exc:
            raise UsageError(exc.message, hint=exc.hint) from None
        return dataclasses.replace(
            self.guard,
            allow_kube_system=self.guard.allow_kube_system if allow_kube_system is None else allow_kube_system,
            allow_control_plane=self.guard.allow_control_plane if allow_control_plane is None
            else allow_control_plane)

    def inject(self, fault_type: str, *, namespace: str | None = None, selector: str | None = None,
               workload: str | None = None, max_nodes: int | None = None, max_pods: int | None = None,
               allow_control_plane: bool | None = None, allow_kube_system: bool | None = None,
               **params: Any) -> Fault:
        """Build, inject and remember a fault; it is reverted by :meth:`revert_all` if not before.

        It takes from the helper's one budget, shared by every fault it injects: ``max_nodes`` and ``max_pods``,
        when given, set that budget's limits from this fault on.
        """
        if fault_type not in self.registry:
            raise UsageError(f"unknown fault type {fault_type!r}", hint=f"known: {', '.join(sorted(self.registry))}")
        factory = self.registry[fault_type]
        try:
            fault_params = factory.Params.model_validate({"type": fault_type, **params})
        except ValidationError as exc:
            raise UsageError(f"{fault_type}: {'; '.join(explain(exc, factory.Params))}") from None
        ns = namespace or self.namespace or "default"
        target: Workload | None = None
        if workload:
            try:
                kind, name = parse_workload(workload)
            except SelectionError as exc:
                raise UsageError(exc.message, hint=exc.hint) from None
            target = Workload(kind, ns, name)
        try:
            labels = parse_label_selector(selector) or (self.kube.workload_labels(target) if target else {})
        except SelectionError as exc:
            raise UsageError(exc.message, hint=exc.hint) from None
        guard = self._guard(max_nodes, max_pods, allow_kube_system, allow_control_plane)
        ctx = FaultContext(kube=self.kube, namespace=ns, run_id=self.run_id, guard=guard, target_labels=labels,
                           workload=target, seed=self.seed, platform=self.platform)
        fault = factory(fault_params, ctx)
        if self._lease is None:  # held while faults are active, so cleanup leaves them to this helper
            self._lease = RunLease(self.kube, self.run_id).start()
        self._active.append(fault)  # registered before injecting: a half-done inject is reverted too
        fault.inject()
        return fault

    @contextlib.contextmanager
    def fault(self, fault_type: str, **kwargs: Any) -> Iterator[Fault]:
        """Inject a fault for the duration of a ``with`` block."""
        fault = self.inject(fault_type, **kwargs)
        try:
            yield fault
        finally:
            self._active.remove(fault)
            fault.revert()

    def run(self, experiment: Experiment | dict[str, Any] | str | Path, *, dry_run: bool = False) -> Journal:
        """Run an experiment given as a model, a mapping or a YAML path."""
        if isinstance(experiment, str | Path):
            experiment = load_experiment(experiment, self.registry)
        elif isinstance(experiment, dict):
            experiment = parse_experiment(experiment, self.registry)
        return Runner(self.kube, self.registry, seed=self.seed, namespace=self.namespace,
                      platform=self.platform, ids=self.ids).run(experiment, dry_run=dry_run)

    def revert_all(self) -> None:
        """Revert every fault still active, newest first."""
        errors = []
        with reverts_shielded():
            while self._active:
                fault = self._active.pop()
                try:
                    fault.revert()
                except Exception as exc:
                    errors.append(f"{fault.name}: {exc}")
            if self._lease is not None:
                self._lease.stop()
                self._lease = None
        if errors:
            raise UsageError(f"revert failed: {'; '.join(errors)}")
