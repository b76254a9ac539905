"""What a run prepares before it changes anything: the faults' context and guard, the faults built with their
own events, the load, the plan, and the cluster's facts. Bad input stops here with a :class:`PreflightError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from resilience_tests.cluster.hpa import read_hpas
from resilience_tests.cluster.kube import Kube, NotFound, Workload
from resilience_tests.cluster.selection import NodeInfo, parse_label_selector
from resilience_tests.errors import ResilienceError
from resilience_tests.experiment.journal import ClusterFacts
from resilience_tests.experiment.model import Experiment
from resilience_tests.experiment.schedule import FaultEvents, FaultRef, Mark, Slot
from resilience_tests.faults.base import Fault, FaultContext, FaultFactory, FaultParams, new_guard
from resilience_tests.load.locust import LoadRun
from resilience_tests.load.target import service_url
from resilience_tests.platform import Platform
from resilience_tests.sla.autoscale_checks import needs_hpa


class PreflightError(ResilienceError):
    """The experiment cannot start; nothing was changed in the cluster."""


@dataclass(frozen=True)
class Built:
    """One fault of the experiment, built: its reference, parameters, the fault, its plan and its own events."""

    ref: FaultRef
    params: FaultParams
    fault: Fault
    steps: tuple[str, ...]
    events: FaultEvents

    @property
    def slot(self) -> Slot:
        """Its place on the schedule."""
        return Slot(self.ref, self.params.at, self.params.duration)


def target_namespace(exp: Experiment, default: str | None) -> str:
    """The experiment's namespace, else ``default``; a PreflightError when there is none."""
    namespace = exp.target.namespace or default
    if not namespace:
        raise PreflightError(f"experiment {exp.name} names no namespace",
                             hint="set target.namespace or pass --namespace")
    return namespace


def fault_context(kube: Kube, exp: Experiment, *, run_id: str, seed: int, namespace: str | None,
                  platform: Platform | None = None) -> FaultContext:
    """The context the faults of ``exp`` share: its target (checked to exist) and one guard from its
    ``guardrails``. Each fault gets a copy with its own events (:func:`build_faults`)."""
    target = exp.target
    ns = target_namespace(exp, namespace)
    workload = Workload(target.workload_kind, ns, target.workload_name) \
        if target.workload_kind and target.workload_name else None
    if not kube.namespace_exists(ns):
        raise PreflightError(f"namespace {ns!r} does not exist", hint="create it or fix target.namespace")
    labels = parse_label_selector(target.selector)
    if workload is not None:
        try:
            labels = labels or kube.workload_labels(workload)
        except NotFound:
            raise PreflightError(f"{workload} does not exist", hint="fix target.workload") from None
    rails = exp.guardrails
    guard = new_guard(max_nodes=rails.max_nodes, max_pods=rails.max_pods,
                      allow_kube_system=rails.allow_kube_system, allow_control_plane=rails.allow_control_plane)
    return FaultContext(kube=kube, namespace=ns, run_id=run_id, guard=guard, target_labels=labels,
                        workload=workload, seed=seed, platform=platform)


def check_autoscalers(kube: Kube, exp: Experiment, ctx: FaultContext) -> None:
    """Every autoscaling check's HPA exists: the one it names (``hpa:``), else the one whose scaleTargetRef is the
    target workload (exactly one). A PreflightError naming the check and the HPAs there otherwise."""
    wanting = [(f"{section}[{i}] ({c.label})", c) for section, checks in (("steady_state", exp.steady_state),
                                                                          ("slas", exp.slas))
               for i, c in enumerate(checks) if needs_hpa(c)]
    if not wanting:
        return
    try:
        hpas = read_hpas(kube, ctx.namespace)
    except ResilienceError as exc:
        raise PreflightError(f"{wanting[0][0]}: {exc}") from None
    there = f"HPAs in namespace {ctx.namespace}: {', '.join(sorted(hpas)) or 'none'}"
    for where, check in wanting:
        name = getattr(check, "hpa", None)
        if name is not None:
            if name not in hpas:
                raise PreflightError(f"{where}: HorizontalPodAutoscaler {name!r} not found ({there})",
                                     hint="fix hpa:, or apply the HPA before the run")
            continue
        workload = ctx.workload
        found = sorted(n for n, s in hpas.items() if workload is not None and s.targets(workload.kind, workload.name))
        if len(found) != 1:
            what = f"no HorizontalPodAutoscaler targets {workload}" if not found else \
                f"{len(found)} HorizontalPodAutoscalers target {workload}: {', '.join(found)}"
            raise PreflightError(f"{where}: {what} ({there})",
                                 hint="apply an HPA whose scaleTargetRef is the target, or name one with hpa: NAME")


def build_faults(exp: Experiment, ctx: FaultContext, registry: dict[str, FaultFactory], *,
                 mark: Mark | None = None, say: Callable[[str], None] = lambda line: None) -> list[Built]:
    """Every fault of ``exp``, built on a copy of ``ctx`` whose ``record``/``acts`` are the fault's own
    :class:`FaultEvents` (records go to ``mark``), and described (selection and guardrails checked)."""
    built = []
    for index, params in enumerate(exp.faults):
        ref = FaultRef(index, params.type)
        events = FaultEvents(ref, mark, say=say)
        own = dataclasses.replace(ctx, record=events.record, acts=events.acts)
        try:
            fault = registry[params.type](params, own)
            steps = fault.describe()
        except ResilienceError as exc:
            raise PreflightError(f"faults[{index}] ({params.type}): {exc}") from None
        built.append(Built(ref, params, fault, tuple(steps), events))
    return built


def load_run(kube: Kube, exp: Experiment, ctx: FaultContext, run_id: str, results_dir: Path | None) -> LoadRun | None:
    """The run's load (None without a ``load`` section): its target URL found, its folder chosen."""
    if exp.load is None:
        return None
    url = exp.load.url or exp.target.url or service_url(
        kube.services(ctx.namespace), dict(ctx.target_labels), ctx.namespace, kube.server,
        kube.ingresses(ctx.namespace))
    base = Path(exp.source).parent if exp.source and exp.source != "<memory>" else None
    if results_dir is not None:
        workdir = results_dir / run_id / "load"
    else:
        workdir = Path(tempfile.mkdtemp(prefix=f"resilience-tests-{run_id}-"))
    return LoadRun(exp.load, url, workdir, base, run_id=run_id, cluster=kube.server)


def cluster_facts(kube: Kube, seed: int) -> ClusterFacts:
    """The cluster as it is now; what cannot be read stays empty (a run needs no right to list nodes)."""
    version = ""
    nodes: list[NodeInfo] = []
    with contextlib.suppress(ResilienceError):
        version = kube.server_version()
    with contextlib.suppress(ResilienceError):
        nodes = kube.nodes()
    return ClusterFacts(context=kube.ref.context or "", server=str(kube.server),
                        version=version, nodes=len(nodes), zones=len({n.zone for n in nodes if n.zone}),
                        seed=seed, node_zones=tuple(sorted((n.name, n.zone) for n in nodes if n.zone)))


def plan_lines(built: list[Built]) -> list[str]:
    """The faults' part of the plan: each fault's time and hold, then its steps."""
    lines = []
    for item in built:
        params = item.params
        hold = f", held {params.duration:.0f} s" if params.duration is not None else ""
        lines.append(f"[{item.ref.index}] at {params.at:.0f} s: {params.type}{hold}")
        lines += [f"    - {step}" for step in item.steps]
    return lines


def check_lines(exp: Experiment, load: LoadRun | None) -> list[str]:
    """The load's and the checks' part of the plan."""
    lines = []
    if load is not None:
        spec = load.spec
        workers = f", {spec.workers} workers" if spec.workers else ""
        lines.append(f"load: {spec.shape.type} shape ({spec.shape.peak_users} users at most, "
                     f"{spec.shape.duration:.0f} s) from {load.locustfile.name} against {load.shown_target}{workers}")
    if not exp.faults:
        lines.append("no faults: the load is the only disturbance (windows: whole)")
    before = "before any fault" if exp.faults else "of load before the schedule's zero"
    lines += [f"steady state: {c.label} over {exp.steady_window:g} s {before}" for c in exp.steady_state]
    lines += [f"SLA: {c.label} ({c.window})" for c in exp.slas]
    return lines
