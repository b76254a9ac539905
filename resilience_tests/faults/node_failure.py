"""node-failure: nodes really fail, the way the cluster's platform fails them (zone-outage uses the same
:class:`NodeOutage` for a whole zone).

The platform (``local``, ``kind``, ``generic``: :mod:`resilience_tests.platform`) comes in the fault's context,
detected once per run; ``provider:`` names another one to use instead. The fault writes the platform's ledger
entry on each node before failing it, so a revert, or ``resilience cleanup`` after a killed run, knows what to
bring back.
"""

from __future__ import annotations

from typing import ClassVar

from resilience_tests.cluster import changes
from resilience_tests.cluster.selection import NodeSelector, PodInfo, node_pods, select_nodes
from resilience_tests.errors import UsageError
from resilience_tests.faults.base import FaultContext, FaultError, FaultParams, fault_id, revert_each, undo_or_report
from resilience_tests.platform import Outage, PlatformError, PlatformName, detect


class NodeFailureParams(FaultParams):
    """Keys of a node-failure fault."""

    nodes: NodeSelector = NodeSelector(count=1)
    provider: PlatformName = "auto"


class NodeOutage:
    """Fails nodes the platform's way and brings them back: the work of node-failure and zone-outage alike.

    Args:
        name: the fault's name (in the plan, the ledger and the budget).
        selector: which nodes fail.
        provider: the platform whose outage to use (``auto``: the context's, detected for the run).
        ctx: the fault's context.
    """

    def __init__(self, name: str, selector: NodeSelector, provider: PlatformName, ctx: FaultContext) -> None:
        self.name = name
        self.selector = selector
        self.provider_name = provider
        self.ctx = ctx
        self.failed: list[str] = []
        self._provider: Outage | None = None
        self._chosen: list[str] | None = None
        self.fault_id = fault_id(name)

    def _nodes(self) -> list[str]:
        """The nodes to fail: chosen once (for the plan) and the same at inject."""
        if self._chosen is None:
            target = {p.node for p in self.ctx.kube.pods(self.ctx.namespace, self.ctx.target_selector or None)}
            chosen = select_nodes(self.ctx.kube.nodes(), self.selector, seed=self.ctx.seed,
                                  allow_control_plane=self.ctx.allow_control_plane, max_nodes=self.ctx.max_nodes,
                                  target_nodes=target)
            self._chosen = [n.name for n in chosen]
        return self._chosen

    def _pods(self, nodes: list[str]) -> list[PodInfo]:
        """Pods the failure disrupts (every namespace), counted against the experiment's budget."""
        pods = node_pods(self.ctx.kube.pods_on_nodes(nodes), allow_kube_system=self.ctx.allow_kube_system,
                         what=f"{self.name} of {', '.join(nodes)}")
        self.ctx.budget.take(f"{self.name} of {', '.join(nodes)}", nodes=nodes,
                             pods=[p.key for p in pods if not p.terminating])
        return pods

    def provider(self) -> Outage:
        """The outage in use (resolved once): the context's platform's, or that of the platform ``provider:``
        names."""
        if self._provider is None:
            platform = self.ctx.platform
            try:
                if platform is None or self.provider_name not in ("auto", platform.name):
                    platform = detect(self.ctx.kube, self.provider_name)
                self._provider = platform.outage()
            except (PlatformError, UsageError) as exc:
                raise FaultError(exc.message, hint=exc.hint) from None
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
        try:
            provider.check(nodes)  # before anything is recorded or failed
            self.failed = nodes
            for node in nodes:
                changes.change(self.ctx.kube, node, {provider.field: provider.value(self.ctx.run_id)},
                               run=self.ctx.run_id, fault=self.fault_id)
            self.ctx.acts()
            provider.fail(nodes)
        except PlatformError as exc:
            raise FaultError(exc.message, hint=exc.hint) from None
        self.ctx.record(self.name, {"nodes": ",".join(nodes), "provider": provider.name})

    def revert(self) -> None:
        if not self.failed:
            return
        try:  # all together first (one wait for all of them)...
            self._restore(list(self.failed))
            self.failed = []
            return
        except Exception as exc:  # ...then one by one, so one node that will not come back keeps no other down
            self.ctx.record(f"{self.name}-restore-retry", {"error": str(exc)[:300]})

        def restore(node: str) -> None:
            self._restore([node])
            self.failed.remove(node)

        revert_each(f"restore ({self.provider().name})", list(self.failed), restore)

    def _restore(self, nodes: list[str]) -> None:
        """Restore the nodes whose failure this fault owns (a node another run failed later stays failed until
        that run restores it), then clear the fault's ledger entries. In that order: a restore that fails leaves
        the entries for a retry or for ``resilience cleanup``."""
        provider = self.provider()
        mine = [n for n in nodes if (top := changes.owns(self.ctx.kube, n, provider.field, run=self.ctx.run_id,
                                                         fault=self.fault_id)) is not None and not top.before]
        if mine:
            provider.restore(mine)
        for node in nodes:
            undo_or_report(self.ctx, node, self.fault_id)


class NodeFailure:
    """Fails the chosen nodes for the fault's duration (or until revert)."""

    name: ClassVar[str] = "node-failure"
    Params: ClassVar[type[FaultParams]] = NodeFailureParams

    def __init__(self, params: FaultParams, ctx: FaultContext) -> None:
        assert isinstance(params, NodeFailureParams)
        self.params = params
        self.outage = NodeOutage(self.name, params.nodes, params.provider, ctx)

    def describe(self) -> list[str]:
        return self.outage.describe()

    def inject(self) -> None:
        self.outage.inject()

    def revert(self) -> None:
        self.outage.revert()
