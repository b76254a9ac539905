"""node-drain: cordon, then evict every pod through the Eviction API, honouring PDBs.

A 429 from the API server (a PodDisruptionBudget allows no disruption) is
retried until the fault's timeout; the timeout error names each pod still
waiting and the PDB that blocks it. Revert uncordons the nodes this fault
cordoned. Control-plane nodes are never drained unless allowed.
"""

from __future__ import annotations

from typing import ClassVar

from resilience_tests.cluster import changes
from resilience_tests.cluster.kube import EvictionBlocked, EvictionFailed
from resilience_tests.cluster.selection import NodeInfo, NodeSelector, PodInfo, node_pods, select_nodes
from resilience_tests.errors import WaitTimeoutError
from resilience_tests.faults.base import FaultContext, FaultError, FaultParams, fault_id, revert_each, undo_or_report
from resilience_tests.schema import Duration
from resilience_tests.waiting import wait_until


class NodeDrainParams(FaultParams):
    """Keys of a node-drain fault."""

    nodes: NodeSelector = NodeSelector(count=1)
    retry_interval: Duration = 2.0
    delete_emptydir_data: bool = True
    force: bool = False  # also drain nodes running pods that no controller owns (deleted for good)


class DrainBlocked(FaultError):
    """The drain did not finish in time; ``blocked`` maps pod -> PDB names."""

    def __init__(self, node: str, timeout: float, blocked: dict[str, list[str]], pending: list[str]) -> None:
        self.node = node
        self.blocked = blocked
        parts = [f"{pod} blocked by PDB {', '.join(pdbs) or '?'}" for pod, pdbs in blocked.items()]
        parts += [f"{pod} still terminating" for pod in pending if pod not in blocked]
        super().__init__(f"drain of {node} did not finish in {timeout:.0f} s; still waiting for "
                         f"{'; '.join(parts) or 'nothing?'}")


class NodeDrain:
    """Cordon and drain the chosen nodes, one after the other.

    The nodes are chosen once, when the plan is made, and the same nodes are drained. Like ``kubectl drain``,
    a node running pods that no controller owns (they would be gone for good) is refused unless the fault
    says ``force: true``; the plan lists every pod it will evict, of every namespace, and the emptyDir
    volumes whose data goes with them. Every evicted pod counts against ``guardrails.max_pods``.
    """

    name: ClassVar[str] = "node-drain"
    Params: ClassVar[type[FaultParams]] = NodeDrainParams

    def __init__(self, params: FaultParams, ctx: FaultContext) -> None:
        assert isinstance(params, NodeDrainParams)
        self.params = params
        self.ctx = ctx
        self.cordoned: list[str] = []
        self.fault_id = fault_id(self.name)
        self._chosen: list[NodeInfo] | None = None

    def _nodes(self) -> list[NodeInfo]:
        if self._chosen is None:
            target = {p.node for p in self.ctx.kube.pods(self.ctx.namespace, self.ctx.target_selector or None)}
            self._chosen = select_nodes(self.ctx.kube.nodes(), self.params.nodes, seed=self.ctx.seed,
                                        allow_control_plane=self.ctx.allow_control_plane,
                                        max_nodes=self.ctx.max_nodes, target_nodes=target)
        return self._chosen

    def _pods_on(self, node: str) -> list[PodInfo]:
        """The pods a drain of ``node`` evicts; refuses unmanaged pods unless forced."""
        pods = node_pods(self.ctx.kube.pods_on_nodes([node]), allow_kube_system=self.ctx.allow_kube_system,
                         what=f"drain of {node}")
        unmanaged = [p.key for p in pods if not p.controller and not p.terminating]
        if unmanaged and not self.params.force:
            raise FaultError(f"{node} runs pods that no controller owns, which a drain deletes for good: "
                             f"{', '.join(unmanaged[:5])}", hint="drain another node, or set force: true")
        if not self.params.delete_emptydir_data:
            local = [p.key for p in pods if p.emptydir]
            if local:
                raise FaultError(f"{node} runs pods with emptyDir data that a drain deletes: {', '.join(local[:5])}",
                                 hint="set delete_emptydir_data: true to drain anyway")
        return pods

    def _take(self, node: str, pods: list[PodInfo]) -> None:
        self.ctx.budget.take(f"drain of {node}", nodes=[node], pods=[p.key for p in pods if not p.terminating])

    def describe(self) -> list[str]:
        steps = []
        for node in self._nodes():
            pods = self._pods_on(node.name)
            self._take(node.name, pods)
            steps.append(f"cordon {node.name} ({node.zone or 'no zone'})")
            steps.append(f"evict from {node.name} ({len(pods)} pods, every namespace): "
                         + (", ".join(p.key for p in pods) or "no pods"))
            unmanaged = [p.key for p in pods if not p.controller]
            if unmanaged:
                steps.append(f"  gone for good (no controller, force: true): {', '.join(unmanaged)}")
            local = [f"{p.key} ({', '.join(p.emptydir)})" for p in pods if p.emptydir]
            if local:
                steps.append(f"  emptyDir data lost: {', '.join(local)}")
        steps.append("on revert: uncordon the drained nodes")
        return steps

    def inject(self) -> None:
        for node in self._nodes():
            pods = self._pods_on(node.name)
            self._take(node.name, pods)
            self.cordoned.append(node.name)  # an already cordoned node records no change, and so has none to undo
            changes.change(self.ctx.kube, node.name, {"unschedulable": True}, run=self.ctx.run_id,
                           fault=self.fault_id)
            self.ctx.record("cordon", {"node": node.name})
            self._drain(node.name)
            self.ctx.record("drained", {"node": node.name})

    def _drain(self, node: str) -> None:
        blocked: dict[str, list[str]] = {}
        pending: list[str] = []

        def evict_what_remains() -> bool:
            pods = self._pods_on(node)
            pending[:] = [p.key for p in pods]
            blocked.clear()
            for pod in (p for p in pods if not p.terminating):
                key = pod.key
                try:
                    self.ctx.kube.evict(pod.name, pod.namespace)
                    self.ctx.record("evicted", {"pod": key, "node": node})
                except EvictionBlocked as exc:
                    blocked[key] = exc.pdbs
                except EvictionFailed as exc:
                    raise FaultError(f"eviction of {key} failed: {exc}") from None
            return not pods

        try:
            wait_until(f"drain of {node}", evict_what_remains, timeout=self.params.timeout,
                       interval=0.25, max_interval=self.params.retry_interval)
        except WaitTimeoutError:
            raise DrainBlocked(node, self.params.timeout, dict(blocked), list(pending)) from None

    def revert(self) -> None:
        def uncordon(node: str) -> None:
            undo_or_report(self.ctx, node, self.fault_id)
            self.cordoned.remove(node)

        revert_each("uncordon", list(self.cordoned), uncordon)
