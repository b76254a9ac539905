"""Guardrails that faults check before they touch anything (pure: no cluster is reached)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from resilience_tests.cluster.kube import Kube, Workload
from resilience_tests.faults.base import FaultContext, FaultError, new_guard
from resilience_tests.faults.rollout import Rollout, RolloutParams
from resilience_tests.faults.scale import Scale, ScaleParams


def ctx(namespace: str, allow_kube_system: bool = False, kube: object = None, max_pods: int = 10) -> FaultContext:
    return FaultContext(kube=cast(Kube, kube), namespace=namespace, run_id="r",
                        guard=new_guard(max_nodes=1, max_pods=max_pods, allow_kube_system=allow_kube_system),
                        workload=Workload("deployment", namespace, "coredns"))


@pytest.mark.parametrize("fault, params", [
    (Scale, ScaleParams(type="scale", replicas=0)),
    (Rollout, RolloutParams(type="rollout", action="restart")),
])
def test_scale_and_rollout_refuse_kube_system_unless_allowed(fault: Any, params: Any) -> None:
    with pytest.raises(FaultError, match="deployment/coredns is in kube-system; set "
                                         "guardrails.allow_kube_system: true"):
        fault(params, ctx("kube-system"))
    assert fault(params, ctx("kube-system", allow_kube_system=True)).workload.name == "coredns"
    assert fault(params, ctx("demo")).workload.namespace == "demo"


def test_a_revert_tries_every_object_and_retries_transient_errors() -> None:
    from kubernetes.client.exceptions import ApiException

    from resilience_tests.faults.base import revert_each

    calls: list[str] = []
    flaky = iter([ApiException(status=503), ConnectionResetError("reset")])

    def undo(item: str) -> None:
        calls.append(item)
        if item == "node-a":
            error = next(flaky, None)
            if error is not None:
                raise error
        if item == "node-b":
            raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(FaultError, match=r"uncordon failed for 1 of 3: node-b \(ApiException: \(403\)"):
        revert_each("uncordon", ["node-a", "node-b", "node-c"], undo, deadline=10)
    assert calls == ["node-a", "node-a", "node-a", "node-b", "node-c"]  # a retried twice, b not retried, c tried


# --- one guard for every fault, however it is started (runner or chaos helper) ---------------------------------

class Reached(Exception):
    """The fault got past its guardrails to a call that would reach the cluster."""


class StandInCluster:
    """Two nodes (zone-a: n1 with 12 pods of demo; zone-b: n2 with 6) and deployment/web at 3 replicas; any
    other call (a write, the lease, a node provider) raises :class:`Reached`."""

    def __init__(self) -> None:
        from resilience_tests.cluster.selection import NodeInfo, PodInfo

        self._nodes = [NodeInfo("n1", {"topology.kubernetes.io/zone": "zone-a"}),
                       NodeInfo("n2", {"topology.kubernetes.io/zone": "zone-b"})]
        self._pods = [PodInfo(f"web-{i}", "demo", "n1" if i < 12 else "n2", {"app": "web"}, controller="ReplicaSet")
                      for i in range(18)]
        self.calls: list[str] = []

    def nodes(self) -> list[Any]:
        return list(self._nodes)

    def pods(self, namespace: str, selector: str | None = None) -> list[Any]:
        return [p for p in self._pods if p.namespace == namespace]

    def pods_on_nodes(self, nodes: list[str]) -> list[Any]:
        return [p for p in self._pods if p.node in nodes]

    def replicas(self, workload: Workload) -> int:
        return 3

    def namespace_exists(self, namespace: str) -> bool:
        return True

    def workload_labels(self, workload: Workload) -> dict[str, str]:
        return {"app": "web"}

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        raise Reached(name)


@pytest.fixture
def chaos_on_stand_in(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A Chaos helper (the one the ``chaos`` fixture builds) on the stand-in cluster; its lease is a stand-in."""
    import resilience_tests.chaos as chaos_module
    from resilience_tests.faults.base import load_registry

    class Lease:
        def __init__(self, kube: object, run_id: str) -> None:
            pass

        def start(self) -> Lease:
            return self

        def stop(self) -> None:
            pass

    monkeypatch.setattr(chaos_module, "RunLease", Lease)

    def build(**limits: Any) -> Any:
        return chaos_module.Chaos(cast(Kube, StandInCluster()), load_registry(), namespace="demo", **limits)

    return build


def test_the_one_guard_factory_always_gives_a_budget_and_refuses_negative_limits() -> None:
    from resilience_tests.cluster.selection import Budget
    from resilience_tests.errors import UsageError

    guard = new_guard(max_nodes=2, max_pods=5)
    assert isinstance(guard.budget, Budget) and (guard.max_nodes, guard.max_pods) == (2, 5)
    assert not guard.allow_kube_system and not guard.allow_control_plane
    with pytest.raises(UsageError, match="max_pods=-1: a limit cannot be negative"):
        new_guard(max_nodes=1, max_pods=-1)


def test_the_runner_and_the_chaos_helper_both_build_their_context_with_a_guard(chaos_on_stand_in: Any) -> None:
    from resilience_tests.experiment.model import parse_experiment
    from resilience_tests.experiment.preflight import fault_context
    from resilience_tests.faults.base import Guard, load_registry

    registry = load_registry()
    exp = parse_experiment({"name": "x", "target": {"namespace": "demo", "workload": "deployment/web"},
                            "guardrails": {"max_nodes": 2, "max_pods": 7}, "faults": [{"type": "pod-kill"}]},
                           registry)
    context = fault_context(cast(Kube, StandInCluster()), exp, run_id="r", seed=0, namespace=None)
    assert isinstance(context.guard, Guard) and (context.budget.max_nodes, context.budget.max_pods) == (2, 7)
    chaos = chaos_on_stand_in()
    assert isinstance(chaos.guard, Guard) and (chaos.guard.max_nodes, chaos.guard.max_pods) == (1, 10)


@pytest.mark.parametrize("fault, keys", [
    ("node-drain", {"nodes": {"names": ["n1"]}}),
    ("node-failure", {"nodes": {"names": ["n1"]}}),
    ("zone-outage", {"zone": "zone-a"}),
])
def test_the_chaos_helpers_drain_node_failure_and_zone_outage_stop_at_max_pods(chaos_on_stand_in: Any, fault: str,
                                                                                keys: dict[str, Any]) -> None:
    from resilience_tests.cluster.selection import SelectionError

    chaos = chaos_on_stand_in()  # max_pods 10 by default; n1 runs 12 pods
    with pytest.raises(SelectionError, match=r"of n1 would bring the pods this experiment disrupts to 12, more than "
                                             r"guardrails.max_pods=10"):
        chaos.inject(fault, workload="deployment/web", **keys)
    assert chaos.guard.budget.pods == set() and chaos.kube.calls == []  # refused before any write
    with pytest.raises(Reached):  # allowed: it goes on to act
        chaos_on_stand_in(max_pods=12).inject(fault, workload="deployment/web", **keys)
    with pytest.raises(Reached):  # an inject's max_pods sets the helper's limit from then on
        chaos.inject(fault, workload="deployment/web", max_pods=12, **keys)
    assert chaos.guard.max_pods == 12


def test_the_chaos_helper_counts_every_fault_it_injects_against_one_budget(chaos_on_stand_in: Any) -> None:
    from resilience_tests.cluster.selection import SelectionError
    from resilience_tests.errors import UsageError

    chaos = chaos_on_stand_in(max_nodes=2, max_pods=12)
    with pytest.raises(Reached):
        chaos.inject("node-drain", workload="deployment/web", nodes={"names": ["n1"]})
    assert len(chaos.guard.budget.pods) == 12
    with pytest.raises(SelectionError, match="node-failure of n2 would bring the pods this experiment disrupts to 18"):
        chaos.inject("node-failure", workload="deployment/web", nodes={"names": ["n2"]})
    with pytest.raises(UsageError, match=r"max_pods=5 are below what was already touched \(1 nodes, 12 pods\)"):
        chaos.inject("pod-kill", count=1, max_pods=5)


def test_a_scale_up_beyond_the_budget_is_refused_in_the_plan_and_never_sent(chaos_on_stand_in: Any) -> None:
    from pydantic import ValidationError

    from resilience_tests.cluster.selection import SelectionError
    from resilience_tests.errors import UsageError

    stand_in = StandInCluster()  # web runs 3 replicas
    huge = Scale(ScaleParams(type="scale", replicas=1_000_000_000), ctx("demo", kube=stand_in))
    with pytest.raises(SelectionError, match=r"^scale of deployment/coredns in demo from 3 to 1000000000 replicas "
                                             r"would bring the pods this experiment disrupts or starts to 999999997, "
                                             r"more than guardrails.max_pods=10 \(.*\); disrupt fewer pods"):
        huge.describe()
    with pytest.raises(SelectionError, match="more than guardrails.max_pods=10"):
        huge.inject()
    assert not huge.changed and stand_in.calls == []
    assert Scale(ScaleParams(type="scale", replicas=13), ctx("demo", kube=stand_in)).describe() == [
        "scale deployment/coredns in demo from 3 to 13 replicas, back on revert"]  # 10 more: within max_pods=10
    assert Scale(ScaleParams(type="scale", replicas=0), ctx("demo", kube=stand_in, max_pods=0)).describe()
    with pytest.raises(ValidationError, match="less than or equal to 2147483647"):  # beyond int32: a key error
        ScaleParams(type="scale", replicas=10**30)
    chaos = chaos_on_stand_in()
    with pytest.raises(UsageError, match=r"^scale: replicas: Input should be less than or equal to 2147483647"):
        chaos.inject("scale", workload="deployment/web", replicas=10**30)
    with pytest.raises(SelectionError, match="from 3 to 1000000000 replicas would bring"):
        chaos.inject("scale", workload="deployment/web", replicas=1_000_000_000)
    with pytest.raises(Reached):  # 3 -> 5 is within the budget: it goes on to write
        chaos.inject("scale", workload="deployment/web", replicas=5)


# --- disaster and restore steps: their target namespace is guarded like an experiment's ------------------------

@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease", "default", "velero"])
def test_a_disaster_or_restore_step_on_a_system_namespace_is_refused_unless_allowed(namespace: str) -> None:
    from resilience_tests.errors import UsageError
    from resilience_tests.faults.backup_restore import Disaster, DisasterParams, Restore, RestoreParams

    with pytest.raises(UsageError, match=f"^a disaster step on {namespace}: refused, it is one of the cluster's own "
                                         "namespaces .*allow it with guardrails.allow_kube_system: true$"):
        Disaster(DisasterParams(type="disaster", what="objects"), ctx(namespace))
    with pytest.raises(UsageError, match=f"^a restore step into {namespace}: refused"):
        Restore(RestoreParams(type="restore"), ctx(namespace))
    allowed = ctx(namespace, allow_kube_system=True)
    assert Disaster(DisasterParams(type="disaster", what="objects"), allowed).describe()[0] == \
        f"delete the objects of every backed-up kind in {namespace}"
    assert Restore(RestoreParams(type="restore"), allowed).describe()


def test_a_disaster_or_restore_step_on_the_runs_namespace_is_refused_always() -> None:
    from resilience_tests.errors import UsageError
    from resilience_tests.faults.backup_restore import Disaster, DisasterParams, Restore, RestoreParams

    for allow in (False, True):
        with pytest.raises(UsageError, match="^a disaster step on resilience-tests: refused, it holds the leases"):
            Disaster(DisasterParams(type="disaster"), ctx("resilience-tests", allow_kube_system=allow))
        with pytest.raises(UsageError, match="^a restore step into resilience-tests: refused"):
            Restore(RestoreParams(type="restore"), ctx("resilience-tests", allow_kube_system=allow))
    assert Disaster(DisasterParams(type="disaster"), ctx("demo")).describe()[0].startswith("delete namespace demo")


def test_a_disaster_is_refused_again_before_it_acts() -> None:
    from resilience_tests.errors import UsageError
    from resilience_tests.faults.backup_restore import Disaster, DisasterParams

    step = Disaster(DisasterParams(type="disaster"), ctx("demo"))
    step.ctx.namespace = "kube-system"  # whatever changed the context since the plan
    with pytest.raises(UsageError, match="^a disaster step on kube-system: refused"):
        step.inject()
    assert not step.struck


@pytest.mark.parametrize("allow", [False, True])
def test_the_dry_run_of_an_experiment_with_a_disaster_on_kube_system(allow: bool) -> None:
    from resilience_tests.experiment.model import parse_experiment
    from resilience_tests.experiment.runner import PreflightError, Runner
    from resilience_tests.faults.base import load_registry

    registry = load_registry()
    exp = parse_experiment({"name": "x", "target": {"namespace": "kube-system", "workload": "deployment/coredns"},
                            "guardrails": {"allow_kube_system": allow},
                            "faults": [{"type": "backup", "engine": "builtin"},
                                       {"type": "disaster", "at": "1s", "what": "objects"}]}, registry)
    runner = Runner(cast(Kube, StandInCluster()), registry)
    if allow:
        assert any(line.endswith("delete the objects of every backed-up kind in kube-system")
                   for line in runner.plan(exp))
        return
    with pytest.raises(PreflightError, match=r"^faults\[1\] \(disaster\): a disaster step on kube-system: refused"):
        runner.plan(exp)


@pytest.mark.parametrize(("keys", "how"), [
    ({"grace_period": "0s"}, "delete with no grace (a crash)"),
    ({"force": True}, "force-delete (grace 0)"),
    ({"grace_period": "20s"}, "delete (graceful: 20 s grace)"),
    ({}, "delete (graceful: the pod's own grace period)"),
])
def test_the_pod_kill_plan_says_how_the_pod_dies(keys: dict[str, Any], how: str) -> None:
    """A zero grace is a crash, not a graceful delete (audit --prove's pod-kill plan shows this line)."""
    from resilience_tests.cluster.selection import PodInfo
    from resilience_tests.faults.pod_kill import PodKill, PodKillParams

    class Pods:
        def pods(self, namespace: str, selector: str | None = None) -> list[PodInfo]:
            return [PodInfo("web-1", namespace, "n1", {"app": "web"}, controller="ReplicaSet")]

    fault = PodKill(PodKillParams(type="pod-kill", count=1, selector="app=web", **keys), ctx("demo", kube=Pods()))
    assert fault.describe() == [f"{how} 1 pod(s) matching 'app=web' in demo: now web-1"]
