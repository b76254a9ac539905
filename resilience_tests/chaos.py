"""Faults and experiments from Python: what the ``chaos`` fixture hands to a test function.

    def test_drain_keeps_web_available(chaos):
        with chaos.fault("node-drain", namespace="demo", workload="deployment/web", nodes={"zone": "zone-a"}):
            ...  # observe
        result = chaos.run("experiments/drain.yaml")

Everything injected is reverted when the block ends, and at the latest at teardown.
"""

from __future__ import annotations

import contextlib
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
from resilience_tests.faults.base import Fault, FaultContext, FaultFactory
from resilience_tests.interrupts import reverts_shielded
from resilience_tests.schema import explain


class Chaos:
    """Injects faults into one cluster and reverts them all at the end."""

    def __init__(self, kube: Kube, registry: dict[str, FaultFactory], *, seed: int = 0,
                 namespace: str | None = None) -> None:
        self.kube = kube
        self.registry = registry
        self.seed = seed
        self.namespace = namespace
        self.run_id = new_run_id("chaos")
        self._active: list[Fault] = []
        self._lease: RunLease | None = None

    def inject(self, fault_type: str, *, namespace: str | None = None, selector: str | None = None,
               workload: str | None = None, max_nodes: int = 1, max_pods: int = 10,
               allow_control_plane: bool = False, allow_kube_system: bool = False, **params: Any) -> Fault:
        """Build, inject and remember a fault; it is reverted by :meth:`revert_all` if not before."""
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
        ctx = FaultContext(kube=self.kube, namespace=ns, run_id=self.run_id, max_nodes=max_nodes,
                           max_pods=max_pods, target_labels=labels, workload=target,
                           allow_control_plane=allow_control_plane, allow_kube_system=allow_kube_system,
                           seed=self.seed)
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
        return Runner(self.kube, self.registry, seed=self.seed, namespace=self.namespace).run(experiment,
                                                                                           dry_run=dry_run)

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
