"""Programs and images the local cluster runs: built here, never pulled.

The demo application (``demoapp/``, Go) is compiled with the machine's Go
toolchain into the cache, static, so it can run in a minimal image or straight
on the host.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from resilience_tests.errors import TestbedError
from resilience_tests.testbed.build import cache_root

REPO = Path(__file__).resolve().parents[2]


def _source_digest(src: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(src.rglob("*")):
        if path.is_file() and path.suffix in (".go", ".mod", ".sum"):
            digest.update(path.relative_to(src).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build_go_program(src: Path, name: str) -> Path:
    """Compile the Go module in ``src`` into a static binary in the cache (reused while the source is unchanged)."""
    if not (src / "go.mod").is_file():
        raise TestbedError(f"no Go module in {src}")
    out = cache_root() / "programs" / f"{name}-{_source_digest(src)}"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    proc = subprocess.run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out) + ".tmp", "."],
                          cwd=src, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise TestbedError(f"building {name} failed: {proc.stderr.strip()[-800:]}",
                           hint="install Go >= 1.26 (go on PATH)")
    os.replace(str(out) + ".tmp", out)
    return out


def demoapp_binary() -> Path:
    """The demo application's static binary."""
    return build_go_program(REPO / "demoapp", "demoapp")
