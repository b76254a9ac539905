"""The cgroup v1 trees of the real nodes: made, joined, frozen, thawed, emptied and removed.

Each real node has ``/sys/fs/cgroup/<hierarchy>/rt-<cluster>/<node>`` in every hierarchy this machine has:
the kubelet's ``cgroupRoot`` (pods land in ``.../kubepods``) and, in ``.../system``, the kubelet, containerd
and the shims. Freezing a node is one write to its freezer cgroup; tearing it down kills exactly the processes
found in its tree, all started by us.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from pathlib import Path

from resilience_tests.errors import WaitTimeoutError
from resilience_tests.waiting import wait_until

HIERARCHIES = ("cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "blkio", "devices", "systemd", "hugetlb")
ROOT = Path("/sys/fs/cgroup")


def hierarchies() -> list[str]:
    """The cgroup v1 hierarchies this machine has, of those the nodes use."""
    return [h for h in HIERARCHIES if (ROOT / h / "cgroup.procs").exists()]


def make(paths: list[Path]) -> None:
    """Create each cgroup of ``paths`` (parents first); a new cpuset inherits its parent's cpus and mems."""
    for path in paths:
        path.mkdir(exist_ok=True)
        if path.relative_to(ROOT).parts[0] == "cpuset":
            for name in ("cpuset.cpus", "cpuset.mems"):
                (path / name).write_text((path.parent / name).read_text())


def join_script(cgroups: list[Path]) -> str:
    """A shell script that moves itself into ``cgroups``, then execs its arguments (children follow)."""
    targets = " ".join(str(c / "cgroup.procs") for c in cgroups)
    return f'for f in {targets}; do echo $$ > "$f"; done; exec "$@"'


def freeze(freezers: list[Path]) -> None:
    """Freeze every process under each freezer cgroup: all at once, then wait until each is frozen."""
    for freezer in freezers:
        (freezer / "freezer.state").write_text("FROZEN")
    for freezer in freezers:
        wait_until(f"{freezer.name} frozen", functools.partial(_reads, freezer / "freezer.state", "FROZEN"),
                   timeout=10, interval=0.05)


def thaw(freezers: list[Path]) -> None:
    """Undo :func:`freeze` (no-op for cgroups that are not frozen or are gone)."""
    for freezer in freezers:
        with contextlib.suppress(OSError):
            (freezer / "freezer.state").write_text("THAWED")


def frozen(freezer: Path) -> bool:
    """Whether the freezer cgroup is frozen (or freezing) now."""
    try:
        return (freezer / "freezer.state").read_text().strip() != "THAWED"
    except OSError:
        return False


def pids(root: Path) -> list[int]:
    """Every process in the tree under ``root``."""
    found: list[int] = []
    if not root.is_dir():
        return found
    for procs_file in root.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            found.extend(int(p) for p in procs_file.read_text().split())
    return found


def kill_tree(root: Path, *, timeout: float = 2) -> None:
    """SIGKILL every process in the tree under ``root`` until none is left (or ``timeout`` seconds went by)."""
    def gone() -> bool:
        left = pids(root)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return not left

    with contextlib.suppress(WaitTimeoutError):
        wait_until(f"processes under {root} gone", gone, timeout=timeout, interval=0.1)


def remove_tree(root: Path) -> None:
    """Remove the (empty) cgroups under ``root``, deepest first, and ``root``."""
    if not root.is_dir():
        return
    for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            path.rmdir()
    with contextlib.suppress(OSError):
        root.rmdir()


def _reads(path: Path, value: str) -> bool:
    return path.read_text().strip() == value
