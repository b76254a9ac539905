"""node-drain: cordon, then evict every pod through the Eviction API, honouring PDBs.

A 429 from the API server (a PodDisruptionBudget allows no disruption) is
retried until the fault's timeout; the timeout error names each pod still
waiting and the PDB that blocks it. Revert uncordons the nodes this fault
cordoned. Control-plane nodes are never drained unless allowed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from kubernetes.client.exceptions import ApiException

from resilience_tests.cluster.kube import EvictionBlocked
from resilience_tests.cluster.selection import NodeInfo, NodeSelector, select_nodes
from resilience_tests.errors import WaitTimeoutError
from resilience_tests.faults.base import FaultContext, FaultError, FaultParams
from resilience_tests.schema import Duration
from resilience_tests.waiting import wait_until


class NodeDrainParams(FaultParams):
    """Keys of a node-drain fault."""

    nodes: NodeSelector = NodeSelector(count=1)
    retry_interval: Duration = 2.0
    delete_emptydir_data: bool = True


class DrainBlocked(FaultError):
    """The drain did not finish in time; ``blocked`` maps pod -> PDB names."""

    def __init__(self, node: str, timeout: float, blocked: dict[str, list[str]], pending: list[str]) -> None:
        self.node = node
        self.blocked = blocked
        parts = [f"{pod} blocked by PDB {', '.join(pdbs) or '?'}" for pod, pdbs in blocked.items()]
        parts += [f"{pod} still terminating" for pod in pending if pod not in blocked]
        super().__init__(f"drain of {node} did not finish in {timeout:.0f} s; still waiting for "
                         f"{'; '.join(parts) or 'nothing?'}")


def _evictable(pod: Any) -> bool:
    owners = pod.metadata.owner_references or []
    if any(o.kind == "DaemonSet" for o in owners):
        return False
    annotations = pod.metadata.annotations or {}
    if "kubernetes.io/config.mirror" in annotations:
        return False
    return pod.status.phase not in ("Succeeded", "Failed")


class NodeDrain:
    """Cordon and drain the chosen nodes, one after the other."""

    name: ClassVar[str] = "node-drain"
    Params: ClassVar[type[FaultParams]] = NodeDrainParams

    def __init__(self, params: FaultParams, ctx: FaultContext) -> None:
        assert isinstance(params, NodeDrainParams)
        self.params = params
        self.ctx = ctx
        self.cordoned: list[str] = []

    def _nodes(self) -> list[NodeInfo]:
        target = {p.node for p in self.ctx.kube.pods(self.ctx.namespace, self.ctx.target_selector or None)}
        return select_nodes(self.ctx.kube.nodes(), self.params.nodes, seed=self.ctx.seed,
                            allow_control_plane=self.ctx.allow_control_plane, max_nodes=self.ctx.max_nodes,
                            target_nodes=target)

    def describe(self) -> list[str]:
        steps = []
        for node in self._nodes():
            names = ", ".join(f"{p.metadata.namespace}/{p.metadata.name}"
                              for p in self._pods_on(node.name)) or "no pods"
            steps.append(f"cordon {node.name} ({node.zone or 'no zone'})")
            steps.append(f"evict from {node.name}: {names}")
        steps.append("on revert: uncordon the drained nodes")
        return steps

    def _pods_on(self, node: str) -> list[Any]:
        pods = self.ctx.kube.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
        pods = [p for p in pods if _evictable(p)]
        if not self.ctx.allow_kube_system:
            pods = [p for p in pods if p.metadata.namespace != "kube-system"]
        return pods

    def inject(self) -> None:
        for node in self._nodes():
            if not node.unschedulable:
                self.cordoned.append(node.name)
                self.ctx.kube.set_unschedulable(node.name, True, run_id=self.ctx.run_id)
            self.ctx.record("cordon", {"node": node.name})
            self._drain(node.name)
            self.ctx.record("drained", {"node": node.name})

    def _drain(self, node: str) -> None:
        blocked: dict[str, list[str]] = {}
        pending: list[str] = []

        def evict_what_remains() -> bool:
            pods = self._pods_on(node)
            pending[:] = [f"{p.metadata.namespace}/{p.metadata.name}" for p in pods]
            blocked.clear()
            for pod in (p for p in pods if p.metadata.deletion_timestamp is None):
                key = f"{pod.metadata.namespace}/{pod.metadata.name}"
                try:
                    self.ctx.kube.evict(pod.metadata.name, pod.metadata.namespace)
                    self.ctx.record("evicted", {"pod": key, "node": node})
                except EvictionBlocked as exc:
                    blocked[key] = exc.pdbs
                except ApiException as exc:
                    raise FaultError(f"eviction of {key} failed: HTTP {exc.status} {exc.reason}") from None
            return not pods

        try:
            wait_until(f"drain of {node}", evict_what_remains, timeout=self.params.timeout,
                       interval=0.25, max_interval=self.params.retry_interval)
        except WaitTimeoutError:
            raise DrainBlocked(node, self.params.timeout, dict(blocked), list(pending)) from None

    def revert(self) -> None:
        for node in list(self.cordoned):
            try:
                self.ctx.kube.set_unschedulable(node, False, run_id=None)
            except ApiException as exc:
                if exc.status != 404:
                    raise
            self.cordoned.remove(node)

