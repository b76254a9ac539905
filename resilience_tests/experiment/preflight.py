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

from resilience_tests.cluster.hpa import HpaState, read_hpas
from resilience_tests.cluster.kube import Kube, NotFound, Workload
from resilience_tests.cluster.metrics_api import (
    METRICS_APISERVICE,
    ContainerRequests,
    MetricsApi,
    read_metrics_api,
    read_template_requests,
)
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


def check_autoscalers(kube: Kube, exp: Experiment, ctx: FaultContext,
                      say: Callable[[str], None] = lambda line: None) -> None:
    """Every autoscaling check's HPA exists: the one it names (``hpa:``), else the one whose scaleTargetRef is the
    target workload (exactly one); and an HPA on resource metrics can see them (:func:`check_resource_inputs`).
    A PreflightError naming the check and what is wrong otherwise; what cannot be told is said through ``say``."""
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
    judged: dict[str, str] = {}  # HPA name -> the first check that judges it
    for where, check in wanting:
        name = getattr(check, "hpa", None)
        if name is not None:
            if name not in hpas:
                raise PreflightError(f"{where}: HorizontalPodAutoscaler {name!r} not found ({there})",
                                     hint="fix hpa:, or apply the HPA before the run")
            judged.setdefault(name, where)
            continue
        workload = ctx.workload
        found = sorted(n for n, s in hpas.items() if workload is not None and s.targets(workload.kind, workload.name))
        if len(found) != 1:
            what = f"no HorizontalPodAutoscaler targets {workload}" if not found else \
                f"{len(found)} HorizontalPodAutoscalers target {workload}: {', '.join(found)}"
            raise PreflightError(f"{where}: {what} ({there})",
                                 hint="apply an HPA whose scaleTargetRef is the target, or name one with hpa: NAME")
        judged.setdefault(found[0], where)
    metrics: MetricsApi | None = None
    for name, where in judged.items():
        state = hpas[name]
        if not state.resources:
            continue
        metrics = metrics or read_metrics_api(kube)
        kind, _, target = state.target.partition("/")
        containers = None
        if kind.lower() in ("deployment", "statefulset"):
            try:
                containers = read_template_requests(kube, Workload(kind.lower(), ctx.namespace, target))
            except ResilienceError as exc:
                raise PreflightError(f"{where}: HPA {name} scales {state.target}: {exc}",
                                     hint=exc.hint or "fix the HPA's scaleTargetRef") from None
        for line in check_resource_inputs(where, name, state, metrics, containers):
            say(line)


def check_resource_inputs(where: str, name: str, state: HpaState, metrics: MetricsApi,
                          containers: tuple[ContainerRequests, ...] | None) -> list[str]:
    """Whether the HPA ``name`` (judged by the check at ``where``) can see its resource metrics: the metrics API
    is registered and Available, and every container its metrics read requests the resource of a utilisation
    target (``containers`` None: its target's template was not read). A PreflightError in one line when not;
    returns warning lines (the metrics API could not be read: the run goes on)."""
    if not state.resources:
        return []
    uses = ", ".join(dict.fromkeys(r.resource for r in state.resources))
    warnings = []
    if metrics.state == "unknown":
        warnings.append(f"warning: {where}: cannot tell whether the resource metrics API ({METRICS_APISERVICE}) "
                        f"serves, which HPA {name} needs for {uses}: {metrics.reason}; going on (if it does not, the "
                        "HPA does not scale and its records say FailedGetResourceMetric)")
    elif metrics.state != "available":
        why = "is not registered (no metrics-server?)" if metrics.state == "missing" else \
            f"is registered but not Available ({metrics.reason})"
        raise PreflightError(f"{where}: HPA {name} scales on {uses} from the resource metrics API, but APIService "
                             f"{METRICS_APISERVICE} {why}: the HPA cannot see the load",
                             hint="install metrics-server (or wait until `kubectl get apiservice "
                                  f"{METRICS_APISERVICE}` says Available) before the run")
    regular = [c for c in containers or () if not c.init]
    for metric in (r for r in state.resources if r.utilization and containers is not None):
        chosen = [c for c in regular if c.name == metric.container] if metric.container else regular
        if metric.container and not chosen:
            raise PreflightError(f"{where}: HPA {name} scales on {metric.shown()}, but {state.target} has no "
                                 f"container {metric.container!r} (containers: "
                                 f"{', '.join(c.name for c in regular) or 'none'})",
                                 hint="fix the HPA's containerResource.container")
        lacking = [c.name for c in chosen if metric.resource not in c.requests]
        if lacking:
            raise PreflightError(f"{where}: HPA {name} scales {state.target} on {metric.resource} utilization, but "
                                 f"its container {lacking[0]} requests no {metric.resource}: the HPA cannot compute "
                                 "a utilization (FailedGetResourceMetric) and never scales",
                                 hint=f"set resources.requests.{metric.resource} on container {lacking[0]}, or "
                                      "use an AverageValue target")
    return warnings


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
