"""``local``: the project's own local cluster (:mod:`resilience_tests.testbed`), running on this machine.

Simulated nodes fail by losing their heartbeat (kwok stops renewing their leases), real nodes by freezing
(their network first); the node-lifecycle controller reacts to the missed heartbeats as it would to a dead
machine. Recognised by its context ``kwok-NAME`` *and* a local cluster ``NAME`` on this machine whose
kubeconfig points at the same API server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from resilience_tests.errors import TestbedError
from resilience_tests.platform import host
from resilience_tests.platform.base import Capabilities, Outage, PlatformError, Seen, no_network_cut

if TYPE_CHECKING:
    from resilience_tests.testbed.cluster import LocalCluster

CONTEXT_PREFIX = "kwok-"
RESTORE_DEADLINE = 60.0  # seconds to keep retrying a restore while the API server is away


def local_cluster(context: str) -> LocalCluster | None:
    """The local cluster a ``kwok-NAME`` context names, if it has a kubeconfig on this machine."""
    from resilience_tests.errors import UsageError
    from resilience_tests.testbed.cluster import LocalCluster

    if not context.startswith(CONTEXT_PREFIX):
        return None
    try:
        cluster = LocalCluster(context.removeprefix(CONTEXT_PREFIX))
    except UsageError:  # not a name the local cluster could have
        return None
    return cluster if cluster.kubeconfig.is_file() else None


def server_of(kubeconfig: Path, context: str) -> str:
    """The API server URL ``context`` of ``kubeconfig`` names ('' if it cannot be read)."""
    import yaml

    try:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = next(c["context"]["cluster"] for c in config["contexts"] if c["name"] == context)
        return str(next(c["cluster"]["server"] for c in config["clusters"] if c["name"] == cluster)).rstrip("/")
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration):
        return ""


class FreezeOutage:
    """Stops the heartbeat of simulated nodes and freezes real nodes of the local cluster."""

    name = "local"
    field = "host/local-failed"

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster

    def value(self, run_id: str) -> object:
        return True

    def check(self, nodes: list[str]) -> None:
        """The cluster runs here (checked when the platform was detected)."""

    def fail(self, nodes: list[str]) -> None:
        self.cluster.fail_nodes(nodes)

    def restore(self, nodes: list[str]) -> None:
        import tenacity

        # kubectl fails while the API server is away (restarting, overloaded): try again until it is back.
        retrying = tenacity.Retrying(retry=tenacity.retry_if_exception_type(TestbedError),
                                     stop=tenacity.stop_after_delay(RESTORE_DEADLINE),
                                     wait=tenacity.wait_exponential(multiplier=0.5, max=5), reraise=True)
        retrying(self.cluster.restore_nodes, nodes)


class LocalPlatform:
    """The local cluster: heartbeat loss and freeze, load from this machine (or its real nodes)."""

    name = "local"

    def __init__(self, seen: Seen) -> None:
        cluster = local_cluster(seen.context)
        if cluster is None:  # said when the plan is made, before anything is recorded
            raise PlatformError(f"platform 'local' fails nodes of the project's local cluster, and context "
                                f"{seen.context!r} names none running on this machine",
                                hint="use the local cluster's own context (kwok-NAME), or provider: generic")
        self.seen = seen
        self.cluster = cluster

    @classmethod
    def claims(cls, seen: Seen) -> bool:
        """The context names a local cluster of this machine serving at the same URL."""
        cluster = local_cluster(seen.context)
        return cluster is not None and server_of(cluster.kubeconfig, seen.context) == seen.server.rstrip("/")

    def capabilities(self) -> Capabilities:
        placement = (host.THIS_MACHINE, host.IN_CLUSTER) if self.seen.real_nodes else (host.THIS_MACHINE,)
        return Capabilities(name=self.name,
                            node_outage="heartbeat loss (simulated nodes), freeze (real nodes)",
                            real_nodes=self.seen.real_nodes, simulated_nodes=self.seen.simulated_nodes,
                            netem=host.netem_available(), network_cut="", load_placement=placement)

    def outage(self) -> Outage:
        return FreezeOutage(self.cluster)

    def cut_network(self, nodes: list[str]) -> Callable[[], None]:
        raise no_network_cut(self.name)

    def restore_host(self, node: str, field: str) -> bool:
        if field != FreezeOutage.field:
            return False
        FreezeOutage(self.cluster).restore([node])
        return True

    def stop_load(self, server: str, dead: Callable[[str], bool]) -> list[tuple[str, str]]:
        return host.stop_load(server, dead)
