"""Programs and images the local cluster runs: built here, never pulled.

The demo application (``demoapp/``) and the pod sandbox program
(``testbed-images/pause/``) are Go modules compiled with the machine's Go
toolchain into the cache, static. :func:`write_image_archive` packs a binary
into a one-layer image archive (the ``docker save`` layout) that
``ctr images import`` and ``kind load image-archive`` accept.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
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


PAUSE_IMAGE = "registry.local/pause:1"
DEMO_IMAGE = "registry.local/demo:1"


def pause_binary() -> Path:
    """The pod sandbox program's static binary."""
    return build_go_program(REPO / "testbed-images" / "pause", "pause")


def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _entry(name: str, data: bytes | None = None, mode: int = 0o755) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    if data is None:
        info.type = tarfile.DIRTYPE
    else:
        info.size = len(data)
    info.mode = mode
    return info, data


def write_image_archive(binary: Path, tag: str, out: Path, *, entrypoint: list[str] | None = None,
                        port: int | None = None) -> Path:
    """Write a one-layer image holding ``binary`` as ``/<name>`` (plus /tmp) to ``out``. Reproducible."""
    name = binary.name.split("-")[0]
    layer = _tar_bytes([_entry("tmp/", mode=0o1777), _entry(name, binary.read_bytes())])
    layer_id = hashlib.sha256(layer).hexdigest()
    config: dict[str, object] = {
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Entrypoint": entrypoint or [f"/{name}"], "WorkingDir": "/", "User": "0:0",
                   **({"ExposedPorts": {f"{port}/tcp": {}}} if port else {})},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_id}"]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "resilience-tests image writer"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [f"{layer_id}/layer.tar"]}]
    archive = _tar_bytes([
        _entry(f"{layer_id}/"), _entry(f"{layer_id}/layer.tar", layer, 0o644),
        _entry(config_name, config_bytes, 0o644),
        _entry("manifest.json", json.dumps(manifest).encode(), 0o644),
    ])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(archive)
    return out


def image_archives() -> dict[str, Path]:
    """Build (if needed) the pause and demo image archives; map tag -> archive path."""
    pause, demo = pause_binary(), demoapp_binary()
    folder = cache_root() / "images"
    return {
        PAUSE_IMAGE: _cached_archive(pause, PAUSE_IMAGE, folder),
        DEMO_IMAGE: _cached_archive(demo, DEMO_IMAGE, folder, port=8080),
    }


def _cached_archive(binary: Path, tag: str, folder: Path, port: int | None = None) -> Path:
    out = folder / f"{binary.name}.tar"
    if not out.is_file():
        write_image_archive(binary, tag, out, port=port)
    return out
