"""What the local cluster changes on this host, read from the kernel: settings, links, routes, firewall rules."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Not settings: counters, one-shot triggers and per-interface folders of links that come and go.
VOLATILE = re.compile(
    r"^(kernel/(random|ns_last_pid|tainted|pty/nr|sched_domain)|fs/|dev/"
    r"|vm/(drop_caches|stat_refresh|compact_memory)"
    r"|net/ipv[46]/(conf|neigh)/(?!all/|default/)|net/netfilter/nf_conntrack_count)")


@dataclass(frozen=True)
class HostState:
    """Writable kernel settings, network links, routes and iptables rules of this host."""

    sysctls: dict[str, str]
    links: frozenset[str]
    routes: frozenset[str]
    rules: frozenset[str]

    def diff(self, after: HostState) -> list[str]:
        """What differs in ``after`` (settings present in only one of them are modules loaded meanwhile)."""
        out = [f"sysctl {k}: {v} -> {after.sysctls[k]}" for k, v in sorted(self.sysctls.items())
               if k in after.sysctls and after.sysctls[k] != v]
        for name, old, new in (("link", self.links, after.links), ("route", self.routes, after.routes),
                               ("rule", self.rules, after.rules)):
            out += [f"{name} gone: {x}" for x in sorted(old - new)] + [f"{name} new: {x}" for x in sorted(new - old)]
        return out


def host_state() -> HostState:
    """Read the host's state now."""
    root = Path("/proc/sys")
    sysctls = {}
    for path in root.rglob("*"):
        key = str(path.relative_to(root))
        if VOLATILE.match(key) or not path.is_file() or not path.stat().st_mode & 0o200:
            continue
        try:
            sysctls[key] = path.read_text().strip()
        except OSError:
            continue
    links = {line.split(":")[1].strip().split("@")[0] for line in _out("ip", "-o", "link", "show").splitlines()}
    routes = set(_out("ip", "route", "show", "table", "all").splitlines())
    rules = {f"{tool} {line}" for tool in ("iptables-save", "ip6tables-save") for line in _out(tool).splitlines()
             if line.startswith("-A") or (line.startswith(":") and not line.startswith(":KUBE-SVC"))}
    rules = {re.sub(r" \[\d+:\d+\]$", "", r) for r in rules}
    return HostState(sysctls, frozenset(links), frozenset(routes), frozenset(rules))


def _out(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout
