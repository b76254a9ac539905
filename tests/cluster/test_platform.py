"""The platform seam on the local cluster: detected ``local`` with the counts its topology gives, and ``generic``
forced on the same cluster (node outage by taints, no network cut). Reads only: nothing is failed."""

from __future__ import annotations

import pytest

from resilience_tests.cli import main
from resilience_tests.cluster.kube import Kube
from resilience_tests.platform import PlatformError, detect, host
from resilience_tests.platform.generic import TaintOutage
from resilience_tests.platform.local import FreezeOutage
from resilience_tests.testbed.cluster import LocalCluster


def _counts(local_cluster: LocalCluster) -> tuple[int, int]:
    topology = local_cluster.status().topology
    assert topology is not None
    nodes = local_cluster.nodes()
    real = sum(1 for n in nodes if n.kind == "real")
    simulated = sum(1 for n in nodes if n.kind != "real")
    assert (real, simulated) == (topology.real_nodes, topology.zones * topology.nodes_per_zone)
    return real, simulated


def test_the_local_cluster_is_detected_as_local_with_its_topologys_nodes(local_cluster: LocalCluster,
                                                                          cluster: Kube) -> None:
    platform = detect(cluster)
    caps = platform.capabilities()
    real, simulated = _counts(local_cluster)
    assert (caps.name, caps.real_nodes, caps.simulated_nodes) == ("local", real, simulated)
    assert caps.node_outage == "heartbeat loss (simulated nodes), freeze (real nodes)"
    assert caps.netem == host.netem_available()
    assert caps.load_placement == (("this machine", "in the cluster") if real else ("this machine",))
    assert isinstance(platform.outage(), FreezeOutage)
    with pytest.raises(PlatformError, match="network cut is not supported on platform 'local'"):
        platform.cut_network([n.name for n in local_cluster.nodes()][:1])


def test_generic_forced_on_the_local_cluster_fails_nodes_by_taints_and_cuts_no_network(
        local_cluster: LocalCluster, cluster: Kube) -> None:
    platform = detect(cluster, "generic")
    caps = platform.capabilities()
    assert (caps.name, caps.real_nodes, caps.simulated_nodes) == ("generic", *_counts(local_cluster))
    assert caps.node_outage == "NoExecute taint (the kubelet keeps running)"
    assert (caps.netem, caps.network_cut) == (False, "")
    assert "network cut: not supported" in caps.lines()
    assert isinstance(platform.outage(), TaintOutage)
    assert not platform.restore_host("any", "host/local-failed")  # nothing of its own outside the API
    with pytest.raises(PlatformError, match="network cut is not supported on platform 'generic'"):
        platform.cut_network(["any"])


def test_resilience_platform_prints_the_report(local_cluster: LocalCluster, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    assert main(["platform", "--kubeconfig", str(local_cluster.kubeconfig)]) == 0
    lines = capsys.readouterr().out.splitlines()
    real, simulated = _counts(local_cluster)
    assert lines[0] == "platform: local" and f"real nodes: {real}" in lines and f"simulated nodes: {simulated}" \
        in lines, lines
