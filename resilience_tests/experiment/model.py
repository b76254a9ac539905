"""The experiment schema: YAML is parsed once, here, into frozen models.

An experiment names a target, faults with start times and guardrails.
Unknown keys, bad values and unknown fault types are errors that name the
file, the key path and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from resilience_tests import strictyaml
from resilience_tests.cluster.selection import SelectionError, parse_workload
from resilience_tests.errors import ResilienceError
from resilience_tests.faults.base import FaultFactory, FaultParams
from resilience_tests.load.locust import LoadSpec
from resilience_tests.schema import Duration, Model, explain
from resilience_tests.sla.autoscale_checks import AUTOSCALE_CHECKS, ScaleUpTime, needs_hpa
from resilience_tests.sla.checks import LOAD_CHECKS, Check, GracefulShutdown, RecoveryTime, SurvivesZoneLoss
from resilience_tests.sla.evidence import window_problem

MAX_FAULTS = 200
NOTHING_TO_DO = ("neither faults nor load: an experiment needs something that disturbs the target; add a "
                 "`faults:` list or a `load:` section (a load ramp alone is an experiment)")


class ExperimentError(ResilienceError):
    """An experiment file is malformed. ``problems`` has one line per issue."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.file = file
        self.problems = problems
        if len(problems) > 1:
            super().__init__(f"{file}: {len(problems)} problems: " + "; ".join(problems))
        else:
            super().__init__(f"{file}: {problems[0] if problems else 'invalid'}")


class Target(Model):
    """What the experiment is about: a namespace and a workload or label selector.

    Without ``namespace`` the run's ``--namespace`` applies.
    """

    namespace: str | None = None
    workload: str | None = None
    selector: str | None = None
    url: str | None = None

    @field_validator("workload")
    @classmethod
    def _kind_slash_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            kind, name = parse_workload(value)
        except SelectionError as exc:
            raise ValueError(exc.message) from None
        return f"{kind}/{name}"

    @property
    def workload_kind(self) -> str | None:
        """``deployment`` from ``deployment/web``."""
        return self.workload.split("/", 1)[0] if self.workload else None

    @property
    def workload_name(self) -> str | None:
        """``web`` from ``deployment/web``."""
        return self.workload.split("/", 1)[1] if self.workload else None


class Guardrails(Model):
    """Limits on what an experiment may touch."""

    max_nodes: int = Field(default=1, ge=0)
    max_pods: int = Field(default=10, ge=0)
    allow_kube_system: bool = False
    allow_control_plane: bool = False


class Experiment(Model):
    """A whole experiment."""

    name: str
    description: str = ""
    severity: Literal["blocker", "critical", "normal", "minor", "trivial"] = "normal"
    tags: tuple[str, ...] = ()
    target: Target
    guardrails: Guardrails = Guardrails()
    settle: Duration = 5.0
    faults: tuple[FaultParams, ...] = ()
    load: LoadSpec | None = None
    steady_state: tuple[Check, ...] = ()
    steady_window: Duration = 5.0
    slas: tuple[Check, ...] = ()
    source: str = ""

    @model_validator(mode="after")
    def _names_unique(self) -> Experiment:
        if not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError("name may contain letters, digits, '-' and '_' only")
        return self

    @property
    def load_only(self) -> bool:
        """True for an experiment whose only disturbance is its load (a ``load:`` section and no faults)."""
        return not self.faults and self.load is not None

    def check_problems(self) -> list[str]:
        """Every check that could not be evaluated as written: a window naming no fault, a load check without
        load, a steady-state check that needs faults. One line each, with its key path."""
        faults = [(i, f.type) for i, f in enumerate(self.faults)]
        if not faults and self.load is None:
            return [NOTHING_TO_DO]
        problems = []
        for section, checks in (("steady_state", self.steady_state), ("slas", self.slas)):
            for index, check in enumerate(checks):
                where = f"{section}[{index}] ({check.label})"
                if isinstance(check, LOAD_CHECKS) and self.load is None and \
                        not (isinstance(check, GracefulShutdown) and not check.require_load):
                    problems.append(f"{where}: reads load samples, but the experiment has no `load:` section")
                if needs_hpa(check) and self.target.workload is None and getattr(check, "hpa", None) is None:
                    problems.append(f"{where}: judges an HPA; name it with hpa: NAME, or set target.workload "
                                    "(the HPA whose scaleTargetRef is the workload)")
                if section == "steady_state":
                    if isinstance(check, (RecoveryTime, GracefulShutdown)):
                        problems.append(f"{where}: judges faults, so it cannot be a steady-state check; "
                                        "move it to slas")
                    elif isinstance(check, AUTOSCALE_CHECKS):
                        problems.append(f"{where}: judges how the target scaled over the run, so it cannot be a "
                                        "steady-state check; move it to slas")
                    elif check.window != "whole":
                        problems.append(f"{where}.window: steady-state checks judge the steady window only; "
                                        "remove the window")
                    continue
                problem = window_problem(check.window, faults) or self._no_fault_problem(check)
                if problem:
                    problems.append(f"{where}.window: {problem}")
                if isinstance(check, ScaleUpTime):
                    problems += self._start_problems(where, check, faults)
                if isinstance(check, (RecoveryTime, SurvivesZoneLoss)) and self.target.workload is None:
                    problems.append(f"{where}: needs the desired replicas of a workload; set target.workload")
        return problems

    def _no_fault_problem(self, check: Check) -> str | None:
        """Why a check cannot be judged in a load-only experiment: a window about faults (``before``,
        ``faults``, ``after``: there is no fault to be before, during or after) or a check that judges faults."""
        if self.faults:
            return None
        if isinstance(check, RecoveryTime):
            return "recovery-time judges the recovery from a fault, and the experiment has no faults; add one"
        if check.window in ("before", "faults", "after"):
            return (f"window {check.window!r} is relative to the faults, and the experiment has no faults (its "
                    "load is the disturbance); use window: whole")
        return None

    def _start_problems(self, where: str, check: ScaleUpTime, faults: list[tuple[int, str]]) -> list[str]:
        """What is wrong with a scale-up-time's ``from``: load-start without load, or a fault that is not there."""
        if check.from_ == "load-start":
            return [] if self.load is not None else \
                [f"{where}.from: load-start, but the experiment has no `load:` section; use fault:N or add load"]
        problem = window_problem(check.from_, faults) if check.from_.startswith("fault:") else \
            f"{check.from_!r} is neither load-start nor fault:N / fault:TYPE"
        return [f"{where}.from: {problem}"] if problem else []


def parse_experiment(data: Any, registry: dict[str, FaultFactory], source: str = "<memory>") -> Experiment:
    """Validate ``data`` (already loaded YAML) into an Experiment."""
    if not isinstance(data, dict):
        raise ExperimentError(source, [f"top level must be a mapping, got {type(data).__name__}"])
    raw_faults = data.get("faults")
    problems: list[str] = []
    faults: list[FaultParams] = []
    if isinstance(raw_faults, list) and len(raw_faults) > MAX_FAULTS:
        raise ExperimentError(source, [f"faults: {len(raw_faults):,} faults; an experiment has at most {MAX_FAULTS}"])
    if isinstance(raw_faults, list):
        for index, raw in enumerate(raw_faults):
            fault = _parse_fault(raw, index, registry, problems)
            if fault is not None:
                faults.append(fault)
    elif raw_faults is not None:
        problems.append("faults: must be a list of faults")
    rest = {k: v for k, v in data.items() if k != "faults"}
    try:
        experiment = Experiment.model_validate({**rest, "faults": faults or raw_faults or [], "source": source})
    except ValidationError as exc:
        fault_problems = bool(problems)  # the faults' own problems are listed already; skip their echoes
        problems += [p for p in explain(exc, Experiment) if not (p.startswith("faults[") or
                                                                 (fault_problems and p.startswith("faults")))]
        experiment = None
    if experiment is not None:
        problems += experiment.check_problems()
    if problems or experiment is None:
        raise ExperimentError(source, problems or ["invalid experiment"])
    return experiment


def _parse_fault(raw: Any, index: int, registry: dict[str, FaultFactory],
                 problems: list[str]) -> FaultParams | None:
    where = f"faults[{index}]"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping with a 'type' key")
        return None
    kind = raw.get("type")
    if kind not in registry:
        known = ", ".join(sorted(registry))
        what = "missing" if kind is None else f"unknown fault type {kind!r}"
        problems.append(f"{where}.type: {what}; known types: {known}")
        return None
    params_model = registry[kind].Params
    try:
        return params_model.model_validate(raw)
    except ValidationError as exc:
        problems.extend(explain(exc, params_model, ("faults", index)))
        return None


def load_experiment(path: str | Path, registry: dict[str, FaultFactory]) -> Experiment:
    """Read and validate one experiment file: UTF-8 YAML text of at most 1 MB (see
    :mod:`resilience_tests.strictyaml`); anything else is an ExperimentError in one line."""
    path = Path(path)
    try:
        text = strictyaml.read_text(path, max_bytes=strictyaml.MAX_BYTES, what="experiment")
        data = strictyaml.load(text)
    except OSError as exc:
        raise ExperimentError(str(path), [f"cannot read: {exc.strerror or exc}"]) from None
    except strictyaml.YamlProblem as exc:
        raise ExperimentError(str(path), [str(exc)]) from None
    try:
        return parse_experiment(data, registry, str(path))
    except RecursionError:  # pragma: no cover - the loader bounds nesting; a guard for what pydantic does
        raise ExperimentError(str(path), ["nested too deeply to be read; flatten it"]) from None
