"""Image archives are written by our own code; their layout is what ctr and kind import."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from resilience_tests.testbed.images import write_image_archive


def test_archive_layout_and_digests(tmp_path: Path) -> None:
    binary = tmp_path / "demoapp-abc"
    binary.write_bytes(b"\x7fELF fake program")
    out = write_image_archive(binary, "registry.local/demo:1", tmp_path / "demo.tar", port=8080)
    with tarfile.open(out) as archive:
        manifest = json.loads(archive.extractfile("manifest.json").read())  # type: ignore[union-attr]
        (entry,) = manifest
        assert entry["RepoTags"] == ["registry.local/demo:1"]
        config_raw = archive.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
        layer = archive.extractfile(entry["Layers"][0]).read()  # type: ignore[union-attr]
    config = json.loads(config_raw)
    assert entry["Config"] == hashlib.sha256(config_raw).hexdigest() + ".json"
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert config["config"]["Entrypoint"] == ["/demoapp"]
    assert "8080/tcp" in config["config"]["ExposedPorts"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as rootfs:
        program = rootfs.getmember("demoapp")
        assert program.mode == 0o755 and program.uid == 0
        assert rootfs.extractfile(program).read() == b"\x7fELF fake program"  # type: ignore[union-attr]
        assert rootfs.getmember("tmp").isdir()


def test_archives_are_reproducible(tmp_path: Path) -> None:
    binary = tmp_path / "pause-1"
    binary.write_bytes(b"program")
    first = write_image_archive(binary, "registry.local/pause:1", tmp_path / "a.tar").read_bytes()
    second = write_image_archive(binary, "registry.local/pause:1", tmp_path / "b.tar").read_bytes()
    assert first == second
