"""Node providers: how nodes really fail and come back, outside the API. One place for the faults
(``node-failure``, ``zone-outage``) and for ``resilience cleanup``.

- ``local``: the project's local cluster (context ``kwok-NAME``): simulated nodes stop heartbeating, real
  nodes freeze (their network first); the node-lifecycle controller reacts to the missed heartbeats.
- ``kind``: a kind cluster (context ``kind-NAME``): ``docker pause`` of the node's container, ``docker
  unpause`` to restore.
- ``generic``: any other cluster: a ``NoExecute`` taint evicts the pods that do not tolerate it (the kubelet
  keeps running). The taint is the ledger entry itself, so failing and restoring do nothing more.

Each provider names the ledger field that records a failure it made (:data:`Provider.field`): the fault
writes it before :meth:`Provider.fail`, and cleanup finds the provider again from that field.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Literal, Protocol

from resilience_tests.errors import ResilienceError, TestbedError

FAILURE_TAINT = "resilience-tests.io/node-failure"
ProviderName = Literal["auto", "local", "kind", "generic"]
RESTORE_DEADLINE = 60.0  # seconds to keep retrying a restore while the API server is away


class ProviderError(ResilienceError):
    """A provider cannot fail or restore nodes (named, with what to do)."""


class Provider(Protocol):
    """Makes nodes fail for real and brings them back."""

    name: str
    field: str  # the ledger field of a failure this provider made

    def value(self, run_id: str) -> object:
        """What the ledger field holds while the nodes are failed."""

    def check(self, nodes: list[str]) -> None:
        """Raise ProviderError if ``nodes`` cannot be failed; before anything is recorded or changed."""

    def fail(self, nodes: list[str]) -> None:
        """Fail ``nodes`` (their ledger entries are written)."""

    def restore(self, nodes: list[str]) -> None:
        """Bring ``nodes`` back."""


class LocalProvider:
    """Stops the heartbeat of nodes of the project's local cluster (and freezes its real nodes)."""

    name = "local"
    field = "host/local-failed"

    def __init__(self, cluster_name: str) -> None:
        from resilience_tests.testbed.cluster import LocalCluster

        self.cluster = LocalCluster(cluster_name)
        if not self.cluster.kubeconfig.exists():  # said when the plan is made, before anything is recorded
            raise ProviderError(f"provider 'local' fails nodes of the local cluster {cluster_name!r} (from the "
                                f"context name kwok-{cluster_name}), and it does not run on this machine",
                                hint="use the local cluster's own context, or provider: generic")

    def value(self, run_id: str) -> object:
        return True

    def check(self, nodes: list[str]) -> None:
        """The cluster runs here (checked when the provider was made)."""

    def fail(self, nodes: list[str]) -> None:
        self.cluster.fail_nodes(nodes)

    def restore(self, nodes: list[str]) -> None:
        import tenacity

        # kubectl fails while the API server is away (restarting, overloaded): try again until it is back.
        retrying = tenacity.Retrying(retry=tenacity.retry_if_exception_type(TestbedError),
                                     stop=tenacity.stop_after_delay(RESTORE_DEADLINE),
                                     wait=tenacity.wait_exponential(multiplier=0.5, max=5), reraise=True)
        retrying(self.cluster.restore_nodes, nodes)


class KindProvider:
    """Pauses the docker container of a kind node."""

    name = "kind"
    field = "host/docker-paused"

    def __init__(self) -> None:
        if not shutil.which("docker"):  # said when the plan is made, before anything is recorded
            raise ProviderError("node-failure on kind needs the docker CLI", hint="install docker or use "
                                                                                  "provider: generic")

    def value(self, run_id: str) -> object:
        return True

    def check(self, nodes: list[str]) -> None:
        """Each node has a running container of its name (kind names a node's container after the node)."""
        proc = subprocess.run(["docker", "inspect", "-f", "{{.Name}} {{.State.Status}}", *nodes],
                              capture_output=True, text=True, timeout=60, check=False)
        found = dict(line.lstrip("/").split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
        missing = [n for n in nodes if n not in found]
        if missing and not found and "No such" not in proc.stderr:  # the engine itself did not answer
            raise ProviderError(f"docker cannot inspect {' '.join(nodes)}: "
                                f"{(proc.stderr.strip().splitlines() or ['no answer'])[-1][:300]}",
                                hint="start Docker, or set DOCKER_HOST to the engine kind runs on")
        if missing:
            raise ProviderError(f"no docker container for node(s) {', '.join(missing)} (a kind node's container "
                                "has the node's name)", hint="check the context is the kind cluster's, or use "
                                                             "provider: generic")
        stopped = [f"{n} ({found[n]})" for n in nodes if found[n] != "running"]
        if stopped:
            raise ProviderError(f"the container of node(s) {', '.join(stopped)} is not running",
                                hint="start it, or pick other nodes")

    def fail(self, nodes: list[str]) -> None:
        self._docker("pause", nodes)

    def restore(self, nodes: list[str]) -> None:
        self._docker("unpause", nodes)

    @staticmethod
    def _docker(verb: str, nodes: list[str]) -> None:
        proc = subprocess.run(["docker", verb, *nodes], capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            raise ProviderError(f"docker {verb} {' '.join(nodes)} failed: {proc.stderr.strip()[:300]}")


class TaintProvider:
    """Taints nodes NoExecute so that their pods are evicted: the ledger entry is the taint."""

    name = "generic"
    field = f"taint/{FAILURE_TAINT}/NoExecute"

    def value(self, run_id: str) -> object:
        return run_id[:63]

    def check(self, nodes: list[str]) -> None:
        """Any node can be tainted."""

    def fail(self, nodes: list[str]) -> None:
        """The ledger entry written before this call is the taint."""

    def restore(self, nodes: list[str]) -> None:
        """Undoing the ledger entry removes the taint."""


def for_context(context: str, wanted: ProviderName = "auto") -> Provider:
    """The provider named, or the one that fits the cluster's context (``kwok-``: local, ``kind-``: kind)."""
    if wanted == "auto":
        wanted = "local" if context.startswith("kwok-") else "kind" if context.startswith("kind-") else "generic"
    if wanted == "local":
        if not context.startswith("kwok-"):
            raise ProviderError(f"provider 'local' needs the local cluster, context is {context!r}",
                                hint="use provider: generic, or point --kubeconfig at the local cluster")
        return LocalProvider(context.removeprefix("kwok-"))
    if wanted == "kind":
        return KindProvider()
    return TaintProvider()


def for_field(field: str, context: str) -> Provider | None:
    """The provider that wrote ledger ``field`` on a cluster of ``context`` (None: no host action to undo)."""
    if field == LocalProvider.field:
        return LocalProvider(context.removeprefix("kwok-")) if context.startswith("kwok-") else None
    if field == KindProvider.field:
        return KindProvider()
    return None
