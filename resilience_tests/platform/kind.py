"""``kind``: a kind cluster, whose nodes are Docker containers on this machine (their ``providerID`` is
``kind://docker/CLUSTER/NODE``). A node fails by ``docker pause`` of its container and comes back by ``docker
unpause``."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

from resilience_tests.platform import host
from resilience_tests.platform.base import Capabilities, Outage, PlatformError, Seen, no_network_cut

KIND_PROVIDER_ID = "kind://"


class DockerOutage:
    """Pauses the docker container of a kind node."""

    name = "kind"
    field = "host/docker-paused"

    def __init__(self) -> None:
        if not shutil.which("docker"):  # said when the plan is made, before anything is recorded
            raise PlatformError("node-failure on kind needs the docker CLI", hint="install docker or use "
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
            raise PlatformError(f"docker cannot inspect {' '.join(nodes)}: "
                                f"{(proc.stderr.strip().splitlines() or ['no answer'])[-1][:300]}",
                                hint="start Docker, or set DOCKER_HOST to the engine kind runs on")
        if missing:
            raise PlatformError(f"no docker container for node(s) {', '.join(missing)} (a kind node's container "
                                "has the node's name)", hint="check the context is the kind cluster's, or use "
                                                             "provider: generic")
        stopped = [f"{n} ({found[n]})" for n in nodes if found[n] != "running"]
        if stopped:
            raise PlatformError(f"the container of node(s) {', '.join(stopped)} is not running",
                                hint="start it, or pick other nodes")

    def fail(self, nodes: list[str]) -> None:
        self._docker("pause", nodes)

    def restore(self, nodes: list[str]) -> None:
        self._docker("unpause", nodes)

    @staticmethod
    def _docker(verb: str, nodes: list[str]) -> None:
        proc = subprocess.run(["docker", verb, *nodes], capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            raise PlatformError(f"docker {verb} {' '.join(nodes)} failed: {proc.stderr.strip()[:300]}")


class KindPlatform:
    """A kind cluster: node outage by docker pause, no network cut yet, load from this machine or its nodes."""

    name = "kind"

    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    @classmethod
    def claims(cls, seen: Seen) -> bool:
        """A node's providerID is kind's (or, with no node read, the context is kind's ``kind-NAME``)."""
        if seen.nodes:
            return any(n.provider_id.startswith(KIND_PROVIDER_ID) for n in seen.nodes)
        return seen.context.startswith("kind-")

    def capabilities(self) -> Capabilities:
        return Capabilities(name=self.name, node_outage="docker pause of the node's container",
                            real_nodes=self.seen.real_nodes, simulated_nodes=self.seen.simulated_nodes,
                            netem=host.netem_available(), network_cut="",
                            load_placement=(host.THIS_MACHINE, host.IN_CLUSTER))

    def outage(self) -> Outage:
        return DockerOutage()

    def cut_network(self, nodes: list[str]) -> Callable[[], None]:
        raise no_network_cut(self.name)

    def restore_host(self, node: str, field: str) -> bool:
        if field != DockerOutage.field:
            return False
        DockerOutage().restore([node])
        return True

    def stop_load(self, server: str, dead: Callable[[str], bool]) -> list[tuple[str, str]]:
        return host.stop_load(server, dead)
