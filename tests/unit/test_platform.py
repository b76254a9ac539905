"""The platform seam: detection from a context, a kubeconfig and stand-in node lists; the capabilities report;
third-party platforms; host-side cleanup. Pure: no cluster is reached."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from resilience_tests import platform as platforms
from resilience_tests.cluster.kube import Kube
from resilience_tests.errors import ResilienceError, UsageError
from resilience_tests.faults.base import FaultContext, FaultError, new_guard
from resilience_tests.faults.node_failure import NodeOutage
from resilience_tests.labels import NODE_KIND_LABEL
from resilience_tests.platform import host
from resilience_tests.platform.base import Capabilities, NodeFacts, PlatformError, Seen
from resilience_tests.platform.generic import GenericPlatform, TaintOutage
from resilience_tests.platform.kind import KindPlatform
from resilience_tests.platform.local import LocalPlatform
from resilience_tests.testbed.cluster import LocalCluster

SERVER = "https://127.0.0.1:32001"


def _sim(name: str) -> NodeFacts:
    return NodeFacts(name, labels={NODE_KIND_LABEL: "simulated"}, annotations={"kwok.x-k8s.io/node": "fake"})


def _real(name: str, provider_id: str = "") -> NodeFacts:
    return NodeFacts(name, labels={NODE_KIND_LABEL: "real"}, provider_id=provider_id)


LOCAL_NODES = (*(_sim(f"sim-{z}{i}") for z in "abc" for i in (1, 2)), _real("real-a1"), _real("real-b1"),
               _real("real-c1"))


@pytest.fixture
def local_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalCluster:
    """A local cluster ``t1`` on this machine: only its kubeconfig, in a cache of the test's own."""
    monkeypatch.setenv("RESILIENCE_CACHE", str(tmp_path))
    cluster = LocalCluster("t1")
    cluster.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    cluster.kubeconfig.write_text(yaml.safe_dump({
        "clusters": [{"name": "kwok-t1", "cluster": {"server": SERVER}}],
        "contexts": [{"name": "kwok-t1", "context": {"cluster": "kwok-t1", "user": "kwok-t1"}}],
        "users": [{"name": "kwok-t1", "user": {}}]}))
    return cluster


def _choose(seen: Seen, wanted: str = "auto") -> str:
    return platforms.choose(seen, platforms.load_platforms([]), wanted).name


def test_node_facts_are_read_from_node_objects_and_counted() -> None:
    node = NodeFacts.of({"metadata": {"name": "kind-worker", "labels": {"a": "b"}},
                         "spec": {"providerID": "kind://docker/kind/kind-worker"}})
    assert (node.name, dict(node.labels), node.provider_id, node.simulated) == \
        ("kind-worker", {"a": "b"}, "kind://docker/kind/kind-worker", False)
    assert NodeFacts.of({"metadata": {"name": "x", "annotations": {"kwok.x-k8s.io/node": "fake"}}}).simulated
    assert NodeFacts.of({}).name == ""
    seen = Seen("kwok-t1", "k", SERVER, LOCAL_NODES)
    assert (seen.real_nodes, seen.simulated_nodes) == (3, 6)


def test_the_local_cluster_is_detected_from_its_context_and_its_kubeconfig_here(local_here: LocalCluster) -> None:
    assert _choose(Seen("kwok-t1", str(local_here.kubeconfig), SERVER, LOCAL_NODES)) == "local"
    assert _choose(Seen("kwok-t1", "copy", SERVER + "/", ())) == "local"  # a copy of its kubeconfig, same server
    # The same context name for another API server (a kubeconfig from elsewhere): not this machine's cluster.
    assert _choose(Seen("kwok-t1", "other", "https://10.0.0.9:6443", LOCAL_NODES)) == "generic"
    assert _choose(Seen("kwok-t2", "other", SERVER, LOCAL_NODES)) == "generic"  # no local cluster t2 here
    assert _choose(Seen("kwok-Bad_Name", "other", SERVER, ())) == "generic"  # not a local cluster's name


def test_a_kind_cluster_is_detected_from_its_nodes_provider_ids() -> None:
    kind_nodes = (_real("kind-control-plane", "kind://docker/kind/kind-control-plane"),
                  _real("kind-worker", "kind://docker/kind/kind-worker"))
    assert _choose(Seen("my-lab", "k", SERVER, kind_nodes)) == "kind"  # whatever the context is called
    assert _choose(Seen("kind-lab", "k", SERVER, ())) == "kind"  # no node read: kind's context name
    assert _choose(Seen("kind-lab", "k", SERVER, (_real("n1", "aws:///eu-west-1a/i-1"),))) == "generic"
    assert _choose(Seen("gke_acme_us-central1_main", "k", SERVER, (_real("n1", "gce://acme/x/n1"),))) == \
        "generic"


def test_a_platform_can_be_named_instead_of_detected(local_here: LocalCluster) -> None:
    seen = Seen("kwok-t1", "k", SERVER, LOCAL_NODES)
    assert _choose(seen, "generic") == "generic"
    assert _choose(Seen("prod", "k", SERVER, ()), "kind") == "kind"
    with pytest.raises(PlatformError, match=r"platform 'local' fails nodes of the project's local cluster, and "
                                            r"context 'prod' names none running on this machine; use the local"):
        _choose(Seen("prod", "k", SERVER, ()), "local")
    with pytest.raises(UsageError, match="unknown platform 'gke'; known: auto, generic, kind, local"):
        _choose(seen, "gke")


class AcmePlatform(GenericPlatform):
    """A third party's platform: claims clusters whose context starts with acme-."""

    name = "acme"

    @classmethod
    def claims(cls, seen: Seen) -> bool:
        return seen.context.startswith("acme-")


@dataclass
class EntryPoint:
    """Stands in for an importlib entry point."""

    name: str
    cls: Any
    value: str = field(default="")

    def load(self) -> Any:
        return self.cls


def _eps(*pairs: tuple[str, Any]) -> list[metadata.EntryPoint]:
    return cast(list[metadata.EntryPoint], [EntryPoint(n, c) for n, c in pairs])


def test_a_third_party_platform_comes_through_the_entry_point_group(local_here: LocalCluster) -> None:
    registry = platforms.load_platforms(_eps(("acme", AcmePlatform)))
    assert sorted(registry) == ["acme", "generic", "kind", "local"]
    assert platforms.choose(Seen("acme-prod", "k", SERVER, ()), registry).name == "acme"
    assert platforms.choose(Seen("kwok-t1", "k", SERVER, ()), registry).name == "local"  # built-ins first
    assert platforms.choose(Seen("other", "k", SERVER, ()), registry).name == "generic"
    assert platforms.choose(Seen("other", "k", SERVER, ()), registry, "acme").name == "acme"
    assert platforms.load_platforms(_eps(("kind", KindPlatform)))["kind"] is KindPlatform  # the same class twice
    assert platforms.ENTRY_POINT_GROUP == "resilience_tests.platforms"


def test_a_platform_name_registered_twice_is_an_error_naming_both() -> None:
    with pytest.raises(UsageError, match=r"platform 'kind' is registered twice: resilience_tests.platform.kind."
                                         r"KindPlatform and tests.unit.test_platform.AcmePlatform; uninstall one"):
        platforms.load_platforms(_eps(("kind", AcmePlatform)))
    with pytest.raises(UsageError, match="platform 'acme' is registered twice"):
        platforms.load_platforms(_eps(("acme", AcmePlatform), ("acme", GenericPlatform)))


def test_the_capabilities_report(local_here: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "netem_available", lambda: True)
    local = LocalPlatform(Seen("kwok-t1", "k", SERVER, LOCAL_NODES)).capabilities()
    assert local == Capabilities(name="local", node_outage="heartbeat loss (simulated nodes), freeze (real nodes)",
                                 real_nodes=3, simulated_nodes=6, netem=True, network_cut="",
                                 load_placement=("this machine", "in the cluster"))
    assert local.lines() == ["platform: local", "node outage: heartbeat loss (simulated nodes), freeze (real nodes)",
                             "real nodes: 3", "simulated nodes: 6", "netem: yes", "network cut: not supported",
                             "load generators: this machine, in the cluster"]
    only_simulated = GenericPlatform(Seen("x", "k", SERVER, LOCAL_NODES[:6])).capabilities()
    assert only_simulated.lines()[1:] == ["node outage: NoExecute taint (the kubelet keeps running)",
                                          "real nodes: 0", "simulated nodes: 6", "netem: no",
                                          "network cut: not supported", "load generators: this machine"]
    assert KindPlatform(Seen("kind-x", "k", SERVER, ())).capabilities().node_outage == \
        "docker pause of the node's container"
    with pytest.raises(AttributeError):
        local.netem = False  # type: ignore[misc]  # frozen


def test_a_network_cut_is_refused_in_one_line_where_the_platform_has_none(local_here: LocalCluster) -> None:
    for platform in (GenericPlatform(Seen("x", "k", SERVER)), KindPlatform(Seen("kind-x", "k", SERVER)),
                     LocalPlatform(Seen("kwok-t1", "k", SERVER))):
        with pytest.raises(PlatformError) as caught:
            platform.cut_network(["n1"])
        assert str(caught.value).splitlines() == [f"network cut is not supported on platform {platform.name!r}; "
                                                  "run `resilience platform` to see what this cluster supports"]


def test_netem_is_probed_without_changing_anything(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def run(code: int) -> Callable[[list[str]], int]:
        def probe(argv: list[str]) -> int:
            calls.append(argv)
            return code
        return probe

    assert host.netem_available(sys_module=tmp_path, run=run(1))  # loaded: not even modprobe is asked
    assert calls == []
    assert host.netem_available(sys_module=tmp_path / "absent", run=run(0))
    assert not host.netem_available(sys_module=tmp_path / "absent", run=run(1))
    assert calls == [["modprobe", "-n", "-q", "sch_netem"]] * 2  # -n: a dry run, nothing loaded


class FakeProc:
    def __init__(self, pid: int, cmdline: list[str], env: dict[str, str]) -> None:
        self.pid, self.info, self.env, self.killed = pid, {"pid": pid, "cmdline": cmdline}, env, False

    def environ(self) -> dict[str, str]:
        return self.env

    def kill(self) -> None:
        self.killed = True


def test_load_generators_of_dead_runs_of_this_cluster_only_are_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    procs = [FakeProc(1, ["python", "-m", "locust"], {host.RUN_ID_ENV: "dead", host.CLUSTER_ENV: SERVER}),
             FakeProc(2, ["python", "-m", "locust"], {host.RUN_ID_ENV: "alive", host.CLUSTER_ENV: SERVER}),
             FakeProc(3, ["python", "-m", "locust"], {host.RUN_ID_ENV: "dead", host.CLUSTER_ENV: "https://other"}),
             FakeProc(4, ["sleep", "60"], {host.RUN_ID_ENV: "dead", host.CLUSTER_ENV: SERVER}),
             FakeProc(5, ["python", "-m", "locust"], {})]
    monkeypatch.setattr(psutil, "process_iter", lambda attrs: iter(procs))
    stopped = GenericPlatform(Seen("x", "k", SERVER)).stop_load(SERVER, lambda run: run == "dead")
    assert stopped == [("dead", "stopped load generator pid 1 left running")]
    assert [p.killed for p in procs] == [True, False, False, False, False]
    assert (host.RUN_ID_ENV, host.CLUSTER_ENV) == ("RT_RUN_ID", "RT_CLUSTER")


def test_the_load_layer_sets_the_variables_the_platform_reads() -> None:
    source = (Path(__file__).parents[2] / "resilience_tests" / "load" / "locust.py").read_text()
    assert "RUN_ID_ENV: self.run_id, CLUSTER_ENV: self.cluster" in source and '"RT_RUN_ID"' not in source


class StandInKube:
    """What detection reads of a cluster."""

    def __init__(self, context: str, nodes: list[dict[str, Any]]) -> None:
        self.ref = type("Ref", (), {"context": context, "kubeconfig": "kc"})()
        self.server = SERVER
        self._nodes = nodes

    def node_objects(self) -> list[dict[str, Any]]:
        return self._nodes


def test_detect_reads_the_cluster_once_through_its_client() -> None:
    kube = StandInKube("lab", [{"metadata": {"name": "kind-worker"}, "spec": {"providerID": "kind://docker/k/w"}}])
    found = platforms.detect(cast(Kube, kube))
    assert isinstance(found, KindPlatform) and found.seen.nodes[0].name == "kind-worker"
    assert isinstance(platforms.detect(cast(Kube, kube), "generic"), GenericPlatform)


def test_host_side_restore_goes_to_the_platform_that_owns_the_field() -> None:
    done: list[tuple[str, str, str]] = []

    def recording(name: str, owned: str) -> type[GenericPlatform]:
        class Recording(GenericPlatform):
            def restore_host(self, node: str, field: str) -> bool:
                if field != owned:
                    return False
                done.append((name, node, field))
                return True
        Recording.name = name
        return Recording

    registry = {"generic": recording("generic", "none"), "kind": recording("kind", "host/docker-paused"),
                "local": LocalPlatform}  # not this cluster's: skipped
    kube = cast(Kube, StandInKube("lab", []))
    restore = platforms.host_restore(registry["generic"](Seen("lab", "k", SERVER)), kube, registry=registry)
    restore("n1", "host/docker-paused")  # a fault run with provider: kind on a cluster detected generic
    restore("n1", "host/unknown")  # nobody's: left to the ledger
    assert done == [("kind", "n1", "host/docker-paused")]


def test_cleanup_without_the_platforms_restore_fails_that_entry_in_one_line() -> None:
    from resilience_tests.cluster.cleanup import _no_host_restore

    with pytest.raises(ResilienceError) as caught:
        _no_host_restore("real-a1", "host/local-failed")
    assert str(caught.value).splitlines() == ["host/local-failed on node/real-a1 is restored on this machine by the "
                                              "cluster's platform, and none was given; run `resilience cleanup`, "
                                              "which passes it"]


def _outage(platform: object, provider: str) -> NodeOutage:
    ctx = FaultContext(kube=cast(Kube, StandInKube("lab", [])), namespace="demo", run_id="r",
                       guard=new_guard(max_nodes=1, max_pods=10), platform=cast(Any, platform))
    from resilience_tests.cluster.selection import NodeSelector

    return NodeOutage("node-failure", NodeSelector(count=1), cast(Any, provider), ctx)


def test_node_failure_takes_the_platform_from_its_context_unless_provider_names_another(
        local_here: LocalCluster) -> None:
    local = LocalPlatform(Seen("kwok-t1", "k", SERVER, LOCAL_NODES))
    assert _outage(local, "auto").provider().field == "host/local-failed"
    assert _outage(local, "local").provider().field == "host/local-failed"
    assert isinstance(_outage(local, "generic").provider(), TaintOutage)  # the override
    with pytest.raises(FaultError, match="platform 'local' fails nodes of the project's local cluster, and "
                                         "context 'lab' names none"):
        _outage(GenericPlatform(Seen("lab", "k", SERVER)), "local").provider()
    assert isinstance(_outage(None, "auto").provider(), TaintOutage)  # none handed down: detected on use


def test_resilience_platform_prints_the_report_and_refuses_in_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from resilience_tests import cli
    from resilience_tests.session import RunSession

    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("RESILIENCE_CACHE", str(tmp_path))  # no local cluster here
    assert cli.main(["platform"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: no cluster to read from: the local cluster 'resilience' is not running; pass --kubeconfig, or "
        "start it with `resilience cluster up`"]
    monkeypatch.setattr(RunSession, "reader", lambda self: StandInKube("lab", [{"metadata": {"name": "n1"}}]))
    monkeypatch.setattr(host, "netem_available", lambda: False)
    assert cli.main(["platform", "--kubeconfig", "kc", "--context", "lab"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "platform: generic", "node outage: NoExecute taint (the kubelet keeps running)", "real nodes: 1",
        "simulated nodes: 0", "netem: no", "network cut: not supported",
        "load generators: this machine, in the cluster"]
