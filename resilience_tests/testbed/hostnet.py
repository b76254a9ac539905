"""The host's side of the real nodes: sysctls, the host bridge and routes, and the iptables chains.

Everything here changes this machine, so everything has its undo: :func:`setup` records nothing itself (the
caller saves :data:`RECORDED_SYSCTLS` first) and :func:`undo` puts it all back. :func:`cut` and :func:`reconnect`
make the pod subnets of failed nodes stop answering, and answer again.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from resilience_tests.errors import TestbedError
from resilience_tests.testbed.kwokctl import SERVICE_CIDR
from resilience_tests.testbed.nodeconfigs import NODE_IP_CIDR, REAL_POD_CIDR, RealNode
from resilience_tests.testbed.topology import SIM_POD_CIDR

HOST_BRIDGE = "rt0"
GUARD_CHAIN = "RT-GUARD"
# Pods may answer the host (probes, load through NodePorts) but open no connection to it: not to the
# kubelets' ports on the node IPs, nor to anything else listening on this machine.
HOST_GUARD_CHAIN = "RT-HOST-GUARD"
FREEZE_CHAIN = "RT-FREEZE"
# Host settings the real nodes need on.
SYSCTLS = ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables", "net/ipv4/conf/all/route_localnet")
# Every host setting that is changed while real nodes run: ours, the kubelet's kernel tunables
# (it sets them at start unless protectKernelDefaults) and kube-proxy's (route_localnet for
# NodePorts on 127.0.0.1). Recorded before the first change and restored at teardown.
RECORDED_SYSCTLS = (
    *SYSCTLS, "vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
    "net/netfilter/nf_conntrack_max", "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait", "net/netfilter/nf_conntrack_tcp_be_liberal",
    "net/ipv4/conf/default/route_localnet", "net/ipv4/conf/all/forwarding", "net/ipv4/conf/default/forwarding",
)
KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT", "KUBE-PROXY-CANARY")


def run(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise TestbedError(f"`{' '.join(argv[:4])}` failed: {(proc.stderr or proc.stdout).strip()[:400]}")
    return proc


def setup(nodes: list[RealNode]) -> None:
    """Sysctls on, the host bridge with the node IPs, routes for Services and pod ranges, and the chains that
    keep real pods inside (``RT-GUARD``, ``RT-HOST-GUARD``) and let failed nodes drop (``RT-FREEZE``)."""
    for key in SYSCTLS:
        write_sysctl(key, "1")
    if run("ip", "link", "show", HOST_BRIDGE, check=False).returncode != 0:
        run("ip", "link", "add", HOST_BRIDGE, "type", "bridge")
    run("ip", "link", "set", HOST_BRIDGE, "up")
    for node in nodes:
        run("ip", "addr", "replace", f"{node.ip}/32", "dev", HOST_BRIDGE)
    run("ip", "route", "replace", SERVICE_CIDR, "dev", HOST_BRIDGE)
    run("ip", "route", "replace", "unreachable", SIM_POD_CIDR)
    run("ip", "route", "replace", "unreachable", REAL_POD_CIDR)
    # Real pods may talk to each other, to Services (already DNATed here) and to the host; nothing else.
    ensure_chain("filter", GUARD_CHAIN, [
        ["-d", REAL_POD_CIDR, "-j", "RETURN"],
        ["-d", NODE_IP_CIDR, "-j", "RETURN"],
        ["-s", REAL_POD_CIDR, "-j", "REJECT"],
    ], jumps=["FORWARD"])
    ensure_chain("filter", HOST_GUARD_CHAIN, [
        ["-s", REAL_POD_CIDR, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"],
        ["-s", REAL_POD_CIDR, "-j", "REJECT"],
    ], jumps=["INPUT"])
    ensure_chain("filter", FREEZE_CHAIN, [], jumps=["FORWARD", "OUTPUT"])


def undo(nodes: list[RealNode], saved: dict[str, str]) -> None:
    """Remove the chains (ours and those the kubelets add), routes and bridges; put the ``saved`` sysctls back."""
    for chain, jumps in ((GUARD_CHAIN, ["FORWARD"]), (HOST_GUARD_CHAIN, ["INPUT"]),
                         (FREEZE_CHAIN, ["FORWARD", "OUTPUT"])):
        drop_chain("iptables", "filter", chain, jumps)
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            for chain in KUBELET_CHAINS:
                drop_chain(tool, table, chain, ["INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"])
    for route in (["unreachable", SIM_POD_CIDR], ["unreachable", REAL_POD_CIDR], [SERVICE_CIDR]):
        run("ip", "route", "del", *route, check=False)
    run("ip", "link", "del", HOST_BRIDGE, check=False)
    for node in nodes:
        run("ip", "link", "del", node.bridge, check=False)
    for key, value in saved.items():
        with contextlib.suppress(OSError):
            write_sysctl(key, value)


def cut(nodes: list[RealNode]) -> None:
    """Packets to the pod subnets of ``nodes`` are dropped, from now on: the drops go in first, then the jump
    to them is made first in line, ahead of kube-proxy's ACCEPT of established flows (those stop too)."""
    for node in nodes:
        iptables("filter", "-A", FREEZE_CHAIN, "-d", node.subnet, "-j", "DROP",
                 "-m", "comment", "--comment", f"frozen {node.name}")
    for parent in ("FORWARD", "OUTPUT"):
        first_in_line(parent, FREEZE_CHAIN)


def reconnect(nodes: list[RealNode]) -> None:
    """Undo :func:`cut` (no-op for nodes that are not cut)."""
    for node in nodes:
        iptables("filter", "-D", FREEZE_CHAIN, "-d", node.subnet, "-j", "DROP",
                 "-m", "comment", "--comment", f"frozen {node.name}", check=False)


def read_sysctl(key: str) -> str:
    try:
        return Path("/proc/sys", key).read_text().strip()
    except OSError:
        return ""


def write_sysctl(key: str, value: str) -> None:
    if value:
        Path("/proc/sys", key).write_text(value)


def iptables(table: str, *args: str, tool: str = "iptables", check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(tool, "-w", "5", "-t", table, *args, check=check)


def first_in_line(parent: str, chain: str) -> None:
    """Make the jump to ``chain`` the first rule of ``parent`` (filter table), without a moment where it is
    missing: a new jump goes in first, then any later one is deleted by its number."""
    def numbers() -> list[int]:
        listed = iptables("filter", "-S", parent).stdout.splitlines()[1:]  # the first line is the policy
        return [i for i, rule in enumerate(listed, 1) if rule.split() == ["-A", parent, "-j", chain]]

    if numbers()[:1] == [1]:
        return
    iptables("filter", "-I", parent, "1", "-j", chain)
    for number in reversed(numbers()[1:]):
        iptables("filter", "-D", parent, str(number))


def ensure_chain(table: str, chain: str, rules: list[list[str]], *, jumps: list[str]) -> None:
    if iptables(table, "-n", "-L", chain, check=False).returncode != 0:
        iptables(table, "-N", chain)
    iptables(table, "-F", chain)
    for rule in rules:
        iptables(table, "-A", chain, *rule)
    for parent in jumps:
        if iptables(table, "-C", parent, "-j", chain, check=False).returncode != 0:
            iptables(table, "-I", parent, "1", "-j", chain)


def drop_chain(tool: str, table: str, chain: str, parents: list[str]) -> None:
    listing = iptables(table, "-S", tool=tool, check=False).stdout
    if f"-N {chain}" not in listing:
        return
    for line in listing.splitlines():
        words = line.split()
        if len(words) > 2 and words[0] == "-A" and words[1] in parents and f"-j {chain}" in line:
            iptables(table, "-D", *words[1:], tool=tool, check=False)
    iptables(table, "-F", chain, tool=tool, check=False)
    iptables(table, "-X", chain, tool=tool, check=False)




def netns_inode(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return 0

