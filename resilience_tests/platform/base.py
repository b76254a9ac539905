"""The platform contract: what a cluster kind can do beyond the Kubernetes API.

A :class:`Platform` answers, for one cluster, how its nodes really fail and come back (:class:`Outage`), whether
its network can be cut, where load generators can run, how to undo on this machine what a killed run left
outside the API, and a :class:`Capabilities` report of all that. It is detected once per run
(:func:`resilience_tests.platform.detect`) and handed down: faults find it in their context.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from resilience_tests.errors import ResilienceError
from resilience_tests.labels import NODE_KIND_LABEL

PlatformName = Literal["auto", "local", "kind", "generic"]
"""What a fault's ``provider:`` may say: ``auto`` (the detected platform) or a built-in platform to use instead."""

KWOK_ANNOTATION = "kwok.x-k8s.io/node"  # "fake" on a node kwok simulates


class PlatformError(ResilienceError):
    """A platform cannot do what was asked (named, with what to do instead)."""


@dataclass(frozen=True)
class NodeFacts:
    """What detection reads of one node."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    provider_id: str = ""

    @property
    def simulated(self) -> bool:
        """A node no machine stands behind (kwok's)."""
        return self.annotations.get(KWOK_ANNOTATION) == "fake" or self.labels.get(NODE_KIND_LABEL) == "simulated"

    @classmethod
    def of(cls, node: Mapping[str, object]) -> NodeFacts:
        """From a node object as the API server sent it."""
        meta = node.get("metadata")
        spec = node.get("spec")
        meta = meta if isinstance(meta, dict) else {}
        spec = spec if isinstance(spec, dict) else {}
        return cls(name=str(meta.get("name", "")), labels=dict(meta.get("labels") or {}),
                   annotations=dict(meta.get("annotations") or {}), provider_id=str(spec.get("providerID") or ""))


@dataclass(frozen=True)
class Seen:
    """What a cluster shows, read once: its context, kubeconfig, API server URL and nodes."""

    context: str
    kubeconfig: str
    server: str
    nodes: tuple[NodeFacts, ...] = ()

    @property
    def simulated_nodes(self) -> int:
        """Nodes kwok simulates."""
        return sum(1 for n in self.nodes if n.simulated)

    @property
    def real_nodes(self) -> int:
        """Nodes a machine (a kubelet) stands behind."""
        return len(self.nodes) - self.simulated_nodes


@dataclass(frozen=True)
class Capabilities:
    """What a platform can do, as ``resilience platform`` prints it.

    Attributes:
        name: the platform (``local``, ``kind``, ``generic`` or a third party's).
        node_outage: how a node fails (``NoExecute taint``, ``docker pause``...).
        real_nodes: nodes a machine stands behind.
        simulated_nodes: nodes kwok simulates.
        netem: whether this machine's kernel has the ``sch_netem`` qdisc (loaded or loadable).
        network_cut: how the network of a node is cut; '' when the platform cannot.
        load_placement: where load generators can run (``this machine``, ``in the cluster``).
    """

    name: str
    node_outage: str
    real_nodes: int
    simulated_nodes: int
    netem: bool
    network_cut: str
    load_placement: tuple[str, ...]

    def lines(self) -> list[str]:
        """The report, one ``key: value`` a line."""
        return [f"platform: {self.name}", f"node outage: {self.node_outage}", f"real nodes: {self.real_nodes}",
                f"simulated nodes: {self.simulated_nodes}", f"netem: {'yes' if self.netem else 'no'}",
                f"network cut: {self.network_cut or 'not supported'}",
                f"load generators: {', '.join(self.load_placement)}"]


class Outage(Protocol):
    """Makes nodes fail for real and brings them back.

    The fault writes ``field`` (with :meth:`value`) in each node's change ledger before :meth:`fail`, so a revert,
    or ``resilience cleanup`` after a killed run, knows what to bring back.
    """

    name: str  # the platform's
    field: str  # the ledger field of a failure this outage made

    def value(self, run_id: str) -> object:
        """What the ledger field holds while the nodes are failed."""

    def check(self, nodes: list[str]) -> None:
        """Raise PlatformError if ``nodes`` cannot be failed; before anything is recorded or changed."""

    def fail(self, nodes: list[str]) -> None:
        """Fail ``nodes`` (their ledger entries are written)."""

    def restore(self, nodes: list[str]) -> None:
        """Bring ``nodes`` back."""


class Platform(Protocol):
    """What one cluster can do beyond the API."""

    name: str

    def capabilities(self) -> Capabilities:
        """The report of what this platform can do on this cluster."""

    def outage(self) -> Outage:
        """How nodes fail and come back; PlatformError if they cannot here."""

    def cut_network(self, nodes: list[str]) -> Callable[[], None]:
        """Cut the network of ``nodes`` and return what heals it; PlatformError where not supported."""

    def restore_host(self, node: str, field: str) -> bool:
        """Undo on this machine what a killed run left on ``node`` under ledger ``field`` (a frozen node, a
        paused container). False when ``field`` is not this platform's."""

    def stop_load(self, server: str, dead: Callable[[str], bool]) -> list[tuple[str, str]]:
        """Stop load generators of the API server ``server`` whose run ``dead(run_id)`` says is dead. Returns
        (run id, what was done) for each."""


class PlatformFactory(Protocol):
    """A platform class: its name, whether it recognises a cluster, and its constructor."""

    name: str

    def claims(self, seen: Seen) -> bool:
        """Whether the cluster ``seen`` is of this platform (detection asks the built-ins first)."""

    def __call__(self, seen: Seen) -> Platform: ...


def no_network_cut(platform: str) -> PlatformError:
    """The one-line refusal of a platform that cannot cut a node's network."""
    return PlatformError(f"network cut is not supported on platform {platform!r}",
                         hint="run `resilience platform` to see what this cluster supports")
