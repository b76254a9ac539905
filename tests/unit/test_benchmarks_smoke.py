"""The benchmarks still run: those that need no cluster and no Locust run in smoke mode, the others at least import
(``--help``), and every name any of them imports from the package or the tests still exists.

The scripts run in parallel child processes, with the worktree first on the path, so this file takes seconds.
"""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
BENCHMARKS = ROOT / "benchmarks"
TIMEOUT = 60

# Benchmarks that need neither a cluster nor a Locust run: run in smoke mode.
SMOKE = {
    "bench_audit.py": ["--smoke"],
    "bench_load.py": ["--smoke"],
    "bench_engine.py": ["plugin", "--smoke"],
}
# Benchmarks that need the local cluster (or Locust): imported only, through --help.
HELP_ONLY = ("bench_backup.py", "bench_cluster.py", "bench_progress.py", "bench_real_nodes.py",
             "bench_repeatability.py", "bench_report.py", "bench_safety_net.py")


def _command(name: str) -> list[str]:
    return [sys.executable, str(BENCHMARKS / name), *SMOKE.get(name, ["--help"])]


@pytest.fixture(scope="module")
def outcomes() -> dict[str, tuple[int, str]]:
    """Every benchmark's exit code and output, all started at once."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    procs = {name: subprocess.Popen(_command(name), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
             for name in (*SMOKE, *HELP_ONLY)}
    results = {}
    for name, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            out = f"still running after {TIMEOUT} s\n{out}"
        results[name] = (proc.returncode, out)
    return results


def test_every_benchmark_is_covered_here() -> None:
    found = {p.name for p in BENCHMARKS.glob("bench_*.py")}
    assert found == set(SMOKE) | set(HELP_ONLY), "classify new benchmarks in SMOKE or HELP_ONLY"


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_benchmark_runs_in_smoke_mode(outcomes: dict[str, tuple[int, str]], name: str) -> None:
    code, out = outcomes[name]
    assert code == 0, out[-3000:]
    assert out.strip(), "a benchmark prints its numbers"


@pytest.mark.parametrize("name", HELP_ONLY)
def test_cluster_benchmark_imports_and_offers_smoke_mode(outcomes: dict[str, tuple[int, str]], name: str) -> None:
    code, out = outcomes[name]
    assert code == 0, out[-3000:]
    assert "--smoke" in out


def _imported_names(source: str) -> list[tuple[str, str]]:
    """(module, name) of every ``from resilience_tests... import`` / ``from tests... import``, nested ones too."""
    return [(node.module, alias.name) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
            and node.module.split(".")[0] in ("resilience_tests", "tests") for alias in node.names]


def test_the_import_check_sees_imports_inside_functions() -> None:
    source = "from resilience_tests.x import A\ndef f():\n    from tests.y import B\nfrom os import path\n"
    assert _imported_names(source) == [("resilience_tests.x", "A"), ("tests.y", "B")]


@pytest.mark.parametrize("name", sorted([*SMOKE, *HELP_ONLY]))
def test_every_name_a_benchmark_imports_exists(name: str) -> None:
    """Imports inside functions too (``--help`` does not reach them): a removed name fails here."""
    missing = []
    for module, attr in _imported_names((BENCHMARKS / name).read_text()):
        loaded = importlib.import_module(module)
        if not hasattr(loaded, attr):
            try:
                importlib.import_module(f"{module}.{attr}")
            except ImportError:
                missing.append(f"{module}.{attr}")
    assert not missing, f"{name} imports names that no longer exist: {missing}"
