"""node-failure: nodes really fail, through a node provider (zone-outage builds on it).

Providers, chosen from the cluster unless the fault names one:

- ``local``: the project's local cluster (context ``kwok-NAME``): the nodes stop
  heartbeating; leases expire and the node-lifecycle controller reacts.
- ``kind``: a kind cluster (context ``kind-NAME``): ``docker pause`` of the
  node's container, ``docker unpause`` on revert.
- ``generic``: any other cluster: a ``NoExecute`` taint evicts the pods that do
  not tolerate it (the kubelet keeps running); removed on revert.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import ClassVar, Literal, Protocol

from resilience_tests.cluster import changes
from resilience_tests.cluster.client import current_context
from resilience_tests.cluster.selection import NodeSelector, PodInfo, node_pods, select_nodes
from resilience_tests.faults.base import (
    REVERT_DEADLINE,
    FaultContext,
    FaultError,
    FaultParams,
    fault_id,
    revert_each,
    undo_or_report,
)

FAILURE_TAINT = "resilience-tests.io/node-failure"
ProviderName = Literal["auto", "local", "kind", "generic"]


class NodeProvider(Protocol):
    """Makes nodes fail for real and brings them back."""

    name: str

    def fail(self, nodes: list[str]) -> None:
        """Fail ``nodes``."""

    def restore(self, nodes: list[str]) -> None:
        """Bring ``nodes`` back."""


def _record(ctx: FaultContext, fault: str, nodes: list[str], wanted: dict[str, object]) -> None:
    for node in nodes:
        changes.change(ctx.kube, node, wanted, run=ctx.run_id, fault=fault)


def _restoring(ctx: FaultContext, fault: str, nodes: list[str], field: str,
               act: Callable[[list[str]], None]) -> None:
    """Restore the nodes whose failure this fault owns (a node another run failed later stays failed until that
    run restores it), then clear the fault's ledger entries. In that order: a restore that fails leaves the
    entries for a retry or for ``resilience cleanup``."""
    mine = [n for n in nodes if (top := changes.owns(ctx.kube, n, field, run=ctx.run_id, fault=fault)) is not None
            and not top.before]
    if mine:
        act(mine)
    for node in nodes:
        undo_or_report(ctx, node, fault)


class LocalProvider:
    """Stops the heartbeat of nodes of the project's local cluster (and freezes its real nodes)."""

    name = "local"
    FIELD = "host/local-failed"

    def __init__(self, ctx: FaultContext, cluster_name: str, fault: str) -> None:
        from resilience_tests.testbed.cluster import LocalCluster

        self.ctx = ctx
        self.fault = fault
        self.cluster = LocalCluster(cluster_name)
        if not self.cluster.kubeconfig.exists():  # before anything is recorded or injected
            raise FaultError(f"provider 'local' fails nodes of the local cluster {cluster_name!r} (from the context "
                             f"name kwok-{cluster_name}), and it does not run on this machine",
                             hint="use the local cluster's own context, or provider: generic")

    def fail(self, nodes: list[str]) -> None:
        _record(self.ctx, self.fault, nodes, {self.FIELD: True})
        self.ctx.acts()
        self.cluster.fail_nodes(nodes)

    def restore(self, nodes: list[str]) -> None:
        import tenacity

        from resilience_tests.errors import TestbedError

        # kubectl fails while the API server is away (restarting, overloaded): try again until it is back.
        retrying = tenacity.Retrying(retry=tenacity.retry_if_exception_type(TestbedError),
                                     stop=tenacity.stop_after_delay(REVERT_DEADLINE),
                                     wait=tenacity.wait_exponential(multiplier=0.5, max=5), reraise=True)
        _restoring(self.ctx, self.fault, nodes, self.FIELD, lambda mine: retrying(self.cluster.restore_nodes, mine))


class KindProvider:
    """Pauses the docker container of a kind node."""

    name = "kind"
    FIELD = "host/docker-paused"

    def __init__(self, ctx: FaultContext, fault: str) -> None:
        self.ctx = ctx
        self.fault = fault
        if not shutil.which("docker"):
            raise FaultError("node-failure on kind needs the docker CLI",
                             hint="install docker or use provider: generic")

    def _docker(self, verb: str, nodes: list[str]) -> None:
        proc = subprocess.run(["docker", verb, *nodes], capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            raise FaultError(f"docker {verb} {' '.join(nodes)} failed: {proc.stderr.strip()[:300]}")

    def fail(self, nodes: list[str]) -> None:
        self._check(nodes)  # before anything is recorded or paused
        _record(self.ctx, self.fault, nodes, {self.FIELD: True})
        self.ctx.acts()
        self._docker("pause", nodes)

    def _check(self, nodes: list[str]) -> None:
        """Each node has a running container of its name (kind names a node's container after the node)."""
        proc = subprocess.run(["docker", "inspect", "-f", "{{.Name}} {{.State.Status}}", *nodes],
                              capture_output=True, text=True, timeout=60, check=False)
        found = dict(line.lstrip("/").split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
        missing = [n for n in nodes if n not in found]
        if missing and not found and "No such" not in proc.stderr:  # the engine itself did not answer
            raise FaultError(f"docker cannot inspect {' '.join(nodes)}: "
                             f"{(proc.stderr.strip().splitlines() or ['no answer'])[-1][:300]}",
                             hint="start Docker, or set DOCKER_HOST to the engine kind runs on")
        if missing:
            raise FaultError(f"no docker container for node(s) {', '.join(missing)} (a kind node's container "
                             "has the node's name)", hint="check the context is the kind cluster's, or use "
                                                          "provider: generic")
        stopped = [f"{n} ({found[n]})" for n in nodes if found[n] != "running"]
        if stopped:
            raise FaultError(f"the container of node(s) {', '.join(stopped)} is not running",
                             hint="start it, or pick other nodes")

    def restore(self, nodes: list[str]) -> None:
        _restoring(self.ctx, self.fault, nodes, self.FIELD, lambda mine: self._docker("unpause", mine))


class TaintProvider:
    """Taints nodes NoExecute so that their pods are evicted."""

    name = "generic"
    FIELD = f"taint/{FAILURE_TAINT}/NoExecute"

    def __init__(self, ctx: FaultContext, fault: str) -> None:
        self.ctx = ctx
        self.fault = fault

    def fail(self, nodes: list[str]) -> None:
        self.ctx.acts()  # the ledger entry is the taint
        _record(self.ctx, self.fault, nodes, {self.FIELD: self.ctx.run_id[:63]})

    def restore(self, nodes: list[str]) -> None:
        for node in nodes:
            undo_or_report(self.ctx, node, self.fault)  # the undo removes the taint itself


def provider_for(ctx: FaultContext, wanted: ProviderName, fault: str) -> NodeProvider:
    """The provider named, or the one that fits the cluster's context."""
    context = ctx.kube.ref.context or current_context(ctx.kube.ref.kubeconfig)
    if wanted == "auto":
        wanted = "local" if context.startswith("kwok-") else "kind" if context.startswith("kind-") else "generic"
    if wanted == "local":
        if not context.startswith("kwok-"):
            raise FaultError(f"provider 'local' needs the local cluster, context is {context!r}",
                             hint="use provider: generic, or point --kubeconfig at the local cluster")
        return LocalProvider(ctx, context.removeprefix("kwok-"), fault)
    if wanted == "kind":
        return KindProvider(ctx, fault)
    return TaintProvider(ctx, fault)


class NodeFailureParams(FaultParams):
    """Keys of a node-failure fault."""

    nodes: NodeSelector = NodeSelector(count=1)
    provider: ProviderName = "auto"


class NodeFailure:
    """Fails the chosen nodes for the fault's duration (or until revert)."""

    name: ClassVar[str] = "node-failure"
    Params: ClassVar[type[FaultParams]] = NodeFailureParams

    def __init__(self, params: FaultParams, ctx: FaultContext) -> None:
        assert isinstance(params, FaultParams) and hasattr(params, "provider")
        self.params: NodeFailureParams = params  # type: ignore[assignment]
        self.ctx = ctx
        self.failed: list[str] = []
        self._provider: NodeProvider | None = None
        self._chosen: list[str] | None = None
        self.fault_id = fault_id(self.name)

    def _selector(self) -> NodeSelector:
        return self.params.nodes

    def _nodes(self) -> list[str]:
        """The nodes to fail: chosen once (for the plan) and the same at inject."""
        if self._chosen is None:
            target = {p.node for p in self.ctx.kube.pods(self.ctx.namespace, self.ctx.target_selector or None)}
            chosen = select_nodes(self.ctx.kube.nodes(), self._selector(), seed=self.ctx.seed,
                                  allow_control_plane=self.ctx.allow_control_plane, max_nodes=self.ctx.max_nodes,
                                  target_nodes=target)
            self._chosen = [n.name for n in chosen]
        return self._chosen

    def _pods(self, nodes: list[str]) -> list[PodInfo]:
        """Pods the failure disrupts (every namespace), counted against the experiment's budget."""
        pods = node_pods(self.ctx.kube.pods_on_nodes(nodes), allow_kube_system=self.ctx.allow_kube_system,
                         what=f"{self.name} of {', '.join(nodes)}")
        if self.ctx.budget is not None:
            self.ctx.budget.take(f"{self.name} of {', '.join(nodes)}", nodes=nodes,
                                 pods=[p.key for p in pods if not p.terminating])
        return pods

    def provider(self) -> NodeProvider:
        """The node provider in use (resolved once)."""
        if self._provider is None:
            self._provider = provider_for(self.ctx, self.params.provider, self.fault_id)
        return self._provider

    def describe(self) -> list[str]:
        nodes = self._nodes()
        pods = self._pods(nodes)
        return [f"fail node(s) {', '.join(nodes)} with provider '{self.provider().name}'",
                f"  disrupts {len(pods)} pods (every namespace): {', '.join(p.key for p in pods) or 'none'}",
                f"on revert: restore {', '.join(nodes)}"]

    def inject(self) -> None:
        nodes = self._nodes()
        self._pods(nodes)
        provider = self.provider()
        self.failed = nodes
        provider.fail(nodes)
        self.ctx.record(self.name, {"nodes": ",".join(nodes), "provider": provider.name})

    def revert(self) -> None:
        if not self.failed:
            return
        try:  # all together first (one wait for all of them)...
            self.provider().restore(list(self.failed))
            self.failed = []
            return
        except Exception as exc:  # ...then one by one, so one node that will not come back keeps no other down
            self.ctx.record(f"{self.name}-restore-retry", {"error": str(exc)[:300]})

        def restore(node: str) -> None:
            self.provider().restore([node])
            self.failed.remove(node)

        revert_each(f"restore ({self.provider().name})", list(self.failed), restore)
