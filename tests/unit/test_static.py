"""Lint and type checks are part of the test run."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import console_script

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("command", [[sys.executable, "-m", "ruff", "check", "."], [sys.executable, "-m", "mypy"]],
                         ids=["ruff", "mypy"])
def test_static_checks_pass(command: list[str]) -> None:
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    tool = console_script("lint-imports")  # the interpreter's own (import-linter has no `python -m`)
    if tool is None:
        pytest.skip("import-linter is not installed (scripts/setup installs it into .venv)")
    return subprocess.run([tool, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root)})


def test_the_layer_contracts_hold() -> None:
    proc = _lint_imports(ROOT)
    assert proc.returncode == 0 and "4 kept, 0 broken" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("faults/scale.py", "import resilience_tests.experiment.runner", "layers of docs/architecture.md"),
    ("sla/checks.py", "import pytest", "pytest stays with the entry points"),
    ("load/target.py", "import kubernetes", "the kubernetes client stays in cluster/"),
    ("cluster/selection.py", "import resilience_tests.platform", "cluster imports no testbed, platform or load"),
    ("cluster/kube.py", "import resilience_tests.testbed.cluster", "cluster imports no testbed, platform or load"),
    ("platform/generic.py", "import resilience_tests.faults.base", "layers of docs/architecture.md"),
])
def test_each_layer_contract_breaks_on_the_import_it_forbids(tmp_path: Path, module: str, line: str,
                                                             contract: str) -> None:
    shutil.copytree(ROOT / "resilience_tests", tmp_path / "resilience_tests",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "resilience_tests" / module
    path.write_text(path.read_text() + f"\n{line}  # a layer violation\n")
    proc = _lint_imports(tmp_path)
    assert proc.returncode != 0 and f"{contract} BROKEN" in proc.stdout, proc.stdout[-3000:]


def _raw_uses(source: str) -> list[int]:
    """Lines that reach Kube.raw (the client's API objects, for cluster/ only)."""
    return [n.lineno for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Attribute) and n.attr == "raw"]


def test_only_cluster_modules_reach_the_clients_raw_apis() -> None:
    assert _raw_uses("x = 1\nnodes = kube.raw.core.list_node()\n") == [2], "the check finds a use"
    offenders = [f"{path.relative_to(ROOT)}:{line}" for path in sorted((ROOT / "resilience_tests").rglob("*.py"))
                 if path.parent.name != "cluster" for line in _raw_uses(path.read_text())]
    assert offenders == [], f"use an operation of Kube instead of Kube.raw: {offenders}"


MAX_MODULE_LINES = 450


def test_no_module_is_over_450_lines_without_a_reason_at_its_top() -> None:
    """A module longer than a head holds is split, or says at its top why not (a line starting 'Long because')."""
    long = []
    for path in sorted((ROOT / "resilience_tests").rglob("*.py")):
        lines = path.read_text().splitlines()
        if len(lines) > MAX_MODULE_LINES and not any(line.startswith("Long because") for line in lines[:30]):
            long.append(f"{path.relative_to(ROOT)}: {len(lines)} lines")
    assert not long, long
