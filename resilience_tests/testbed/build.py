"""Build the local cluster's binaries from the Go module proxy.

Kubernetes, etcd and kwok are compiled with the machine's Go toolchain into a
cache directory outside the repository (``$RESILIENCE_CACHE`` or
``~/.cache/resilience-tests``). The build is idempotent: a binary that exists
and reports the expected version is not built again.

This module only uses the standard library so it can run before the package's
dependencies are installed (``python3 -m resilience_tests.testbed.build``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from resilience_tests.cache import cache_root as cache_root  # where it was first defined; still used from here
from resilience_tests.errors import TestbedError

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"

KUBE_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "kube-proxy",
)
ETCD_COMMANDS = ("etcd",)
KWOK_COMMANDS = ("kwok", "kwokctl")
ALL_COMMANDS = KUBE_COMMANDS + ETCD_COMMANDS + KWOK_COMMANDS


class BuildError(TestbedError):
    """A build step failed; the message says what to do."""


def bin_dir() -> Path:
    """Return the directory holding the binaries of the pinned versions."""
    tag = f"k8s-{KUBERNETES_VERSION}_etcd-{ETCD_VERSION}_kwok-{KWOK_VERSION}"
    return cache_root() / "bin" / tag


def missing_binaries(directory: Path | None = None) -> list[str]:
    """Return the names of the binaries not yet built."""
    directory = directory or bin_dir()
    return [name for name in ALL_COMMANDS if not os.access(directory / name, os.X_OK)]


def _log(msg: str) -> None:
    print(f"[build {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-mod=mod")
    if "-mod=" not in env["GOFLAGS"]:
        env["GOFLAGS"] += " -mod=mod"
    env["CGO_ENABLED"] = env.get("RESILIENCE_CGO", "0")
    return env


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=_go_env(), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        hint = ""
        if "dial tcp" in tail or ("proxy.golang.org" in tail and "timeout" in tail):
            hint = " (the Go module proxy is unreachable; check GOPROXY)"
        raise BuildError(f"{what} failed{hint}: {' '.join(cmd)}\n{tail}")
    return proc.stdout


def check_toolchain() -> str:
    """Return the Go version, or raise if Go is missing or too old."""
    go = shutil.which("go")
    if not go:
        raise BuildError("the Go toolchain is not on PATH; install Go >= 1.26 and retry")
    out = subprocess.run([go, "version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"go(\d+)\.(\d+)", out)
    if not match or (int(match.group(1)), int(match.group(2))) < (1, 26):
        raise BuildError(f"Go >= 1.26 is needed for Kubernetes {KUBERNETES_VERSION}; found: {out.strip()}")
    return out.strip()


def _download_gomod(module: str, version: str, work: Path) -> dict[str, str]:
    out = _run(["go", "mod", "download", "-json", f"{module}@{version}"], work, f"download of {module}")
    info: dict[str, str] = json.loads(out)
    if info.get("Error"):
        raise BuildError(f"cannot download {module}@{version}: {info['Error']}")
    return info


def _kube_wrapper(work: Path) -> None:
    """Write a wrapper module that pins k8s.io/kubernetes and its staging modules."""
    (work / "go.mod").write_text("module resilience-tests/kubebuild\n\ngo 1.26\n")
    info = _download_gomod("k8s.io/kubernetes", KUBERNETES_VERSION, work)
    parsed = json.loads(_run(["go", "mod", "edit", "-json", info["GoMod"]], work, "reading go.mod"))
    staging = sorted(
        req["Path"]
        for req in parsed.get("Require", [])
        if req["Path"].startswith("k8s.io/") and req["Version"] == "v0.0.0"
    )
    if not staging:
        raise BuildError("k8s.io/kubernetes go.mod lists no staging modules; unexpected layout")
    minor = KUBERNETES_VERSION.split(".", 1)[1]  # "36.3"
    lines = ["module resilience-tests/kubebuild", "", "go 1.26", "",
             f"require k8s.io/kubernetes {KUBERNETES_VERSION}", ""]
    lines += [f"replace {mod} => {mod} v0.{minor}" for mod in staging]
    (work / "go.mod").write_text("\n".join(lines) + "\n")
    (work / "tools.go").write_text("package kubebuild\n")


def _version_ldflags() -> str:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    values = {
        "gitVersion": KUBERNETES_VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": now,
    }
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.{key}={val}" for key, val in values.items()]
    return " ".join(flags)


def build_kubernetes(out: Path, work: Path, names: list[str]) -> None:
    """Build the Kubernetes commands ``names`` into ``out``."""
    _kube_wrapper(work)
    pkgs = [f"k8s.io/kubernetes/cmd/{name}" for name in names]
    _log(f"resolving Kubernetes {KUBERNETES_VERSION} dependencies")
    _run(["go", "mod", "tidy"], work, "go mod tidy (kubernetes)")
    _run(["go", "get", *[f"{p}@{KUBERNETES_VERSION}" for p in pkgs[:1]]], work, "go get (kubernetes)")
    _log(f"compiling {', '.join(names)} (several minutes on a cold cache)")
    _run(["go", "build", "-trimpath", "-ldflags", _version_ldflags(), "-o", str(out) + "/", *pkgs],
         work, "go build (kubernetes)")


def build_etcd(out: Path, work: Path) -> None:
    """Build etcd through a wrapper main calling etcdmain."""
    (work / "go.mod").write_text("module resilience-tests/etcdbuild\n\ngo 1.26\n")
    (work / "main.go").write_text(
        'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\n'
        "func main() { etcdmain.Main(os.Args) }\n"
    )
    _log(f"resolving etcd {ETCD_VERSION}")
    _run(["go", "get", f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"], work, "go get (etcd)")
    _run(["go", "mod", "tidy"], work, "go mod tidy (etcd)")
    _log("compiling etcd")
    _run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), "."], work, "go build (etcd)")


def build_kwok(out: Path, work: Path, names: list[str]) -> None:
    """Install kwok and kwokctl with ``go install``."""
    _log(f"compiling {', '.join(names)} {KWOK_VERSION}")
    env_cmd = ["env", f"GOBIN={out}", "GOFLAGS=", "go", "install", "-trimpath", "-ldflags", "-s -w"]
    _run(env_cmd + [f"sigs.k8s.io/kwok/cmd/{n}@{KWOK_VERSION}" for n in names], work, "go install (kwok)")


def build(force: bool = False) -> Path:
    """Build every missing binary; return the directory holding them."""
    out = bin_dir()
    missing = list(ALL_COMMANDS) if force else missing_binaries(out)
    if not missing:
        _log(f"all binaries present in {out}")
        return out
    _log(check_toolchain())
    _log(f"building into {out}: {', '.join(missing)}")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rt-build-") as tmp:
        tmpdir = Path(tmp)
        kube = [n for n in KUBE_COMMANDS if n in missing]
        if kube:
            (tmpdir / "kube").mkdir()
            build_kubernetes(out, tmpdir / "kube", kube)
        if "etcd" in missing:
            (tmpdir / "etcd").mkdir()
            build_etcd(out, tmpdir / "etcd")
        kwok = [n for n in KWOK_COMMANDS if n in missing]
        if kwok:
            (tmpdir / "kwok").mkdir()
            build_kwok(out, tmpdir / "kwok", kwok)
    still = missing_binaries(out)
    if still:
        raise BuildError(f"build finished but {', '.join(still)} missing in {out}")
    _log(f"done in {time.monotonic() - started:.0f} s: {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if present")
    parser.add_argument("--print-dir", action="store_true", help="print the binary directory and exit")
    args = parser.parse_args(argv)
    if args.print_dir:
        print(bin_dir())
        return 0
    try:
        build(force=args.force)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
