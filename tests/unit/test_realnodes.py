"""Real-node planning and configuration documents (pure, no cluster)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from resilience_tests.errors import UsageError
from resilience_tests.testbed.kwokctl import SERVICE_CIDR
from resilience_tests.testbed.nodeconfigs import (
    NODE_IP_CIDR,
    REAL_NODE_TAINT,
    REAL_POD_CIDR,
    cni_config,
    containerd_config,
    kube_proxy_config,
    kubelet_config,
    plan,
)
from resilience_tests.testbed.topology import Topology


def test_real_nodes_are_spread_over_the_zones_in_turn() -> None:
    topo = Topology(zones=3, nodes_per_zone=2, real_nodes=4)
    assert topo.real_node_names() == ["real-a1", "real-b1", "real-c1", "real-a2"]
    nodes = plan(topo.real_node_names(), topo.zone_of)
    assert [n.zone for n in nodes] == ["zone-a", "zone-b", "zone-c", "zone-a"]
    assert "+ 4 real nodes" in topo.describe()


def test_addresses_never_overlap_and_stay_private() -> None:
    nodes = plan(Topology(real_nodes=6).real_node_names(), Topology().zone_of)
    subnets = [ipaddress.ip_network(n.subnet) for n in nodes]
    assert len(set(subnets)) == len(subnets)
    pods, services, node_ips = (ipaddress.ip_network(c) for c in (REAL_POD_CIDR, SERVICE_CIDR, NODE_IP_CIDR))
    assert all(s.subnet_of(pods) for s in subnets)  # type: ignore[arg-type]
    assert all(ipaddress.ip_address(n.ip) in node_ips for n in nodes)
    assert not pods.overlaps(services) and not pods.overlaps(node_ips)
    assert all(net.is_private for net in (pods, services, node_ips))
    assert all(len(n.bridge) <= 15 for n in nodes)  # Linux interface names


@pytest.mark.parametrize("count", [-1, 7])
def test_real_node_count_is_bounded(count: int) -> None:
    with pytest.raises(UsageError, match="--real-nodes"):
        Topology(real_nodes=count)


def test_documents_hold_what_this_machine_needs(tmp_path: Path) -> None:
    (node,) = plan(["real-a1"], Topology().zone_of)
    kubelet = kubelet_config(node, tmp_path, tmp_path / "c.sock", "/rt-x/real-a1", tmp_path / "ca.crt")
    assert kubelet["failCgroupV1"] is False and kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["authentication"]["anonymous"] == {"enabled": False}
    assert kubelet["authentication"]["x509"]["clientCAFile"] == str(tmp_path / "ca.crt")
    assert kubelet["authorization"]["mode"] == "Webhook" and kubelet["readOnlyPort"] == 0
    assert kubelet["address"] == node.ip == kubelet["healthzBindAddress"]
    assert kubelet["registerWithTaints"][0]["key"] == REAL_NODE_TAINT
    toml = containerd_config(tmp_path, tmp_path / "c.sock")
    assert "restrict_oom_score_adj = true" in toml  # this VM refuses oom_score_adj -998
    assert 'sandbox_image = "registry.local/pause:1"' in toml
    cni = cni_config(node, tmp_path)
    assert cni["plugins"][0]["ipam"]["ranges"] == [[{"subnet": node.subnet}]]
    proxy = kube_proxy_config("real-a1", tmp_path / "kc", (1, 2))
    assert proxy["nodePortAddresses"] == ["127.0.0.0/8"] and proxy["mode"] == "iptables"
    assert proxy["conntrack"]["tcpEstablishedTimeout"] == "0s"  # leaves the host's conntrack settings alone


def test_missing_packages_and_kernel_features_are_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import resilience_tests.testbed.realnodes as realnodes

    absent = {"/proc/sys/net/bridge/bridge-nf-call-iptables", "/proc/net/nf_conntrack",
              "/proc/sys/net/netfilter/nf_conntrack_max", "/usr/lib/cni/portmap"}
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda self: str(self) not in absent and real_exists(self))
    monkeypatch.setattr(realnodes.shutil, "which", lambda cmd: None if cmd in ("containerd", "conntrack") else "/x")
    monkeypatch.setattr(realnodes.os, "geteuid", lambda: 1000)
    missing = realnodes.missing_requirements()
    assert missing[0] == ("Debian packages conntrack containerd containernetworking-plugins "
                          "(apt-get install -y conntrack containerd containernetworking-plugins)")
    assert any(m.startswith("root") for m in missing)
    assert any("bridge netfilter" in m and "modprobe br_netfilter" in m for m in missing)
    assert any("conntrack in the kernel" in m for m in missing)
