"""The README's two commands, scripts/setup, .ci/run and scripts/demo agree with each other."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SETUP, CI, DEMO = ROOT / "scripts" / "setup", ROOT / ".ci" / "run", ROOT / "scripts" / "demo"


def _two_commands() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme[readme.index("## Two commands"):readme.index("\n## ", readme.index("## Two commands") + 3)]


def _test_command() -> str:
    blocks = re.findall(r"```\n(.*?)\n```", _two_commands(), re.S)
    commands: list[str] = [b.strip() for b in blocks if "pytest" in b]
    assert len(commands) == 1, f"the README's 'Two commands' shows one test command: {blocks}"
    return commands[0]


def _commands(script: Path) -> list[str]:
    """The script's lines without comments (a trailing comment after code is dropped too)."""
    lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in script.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_readmes_two_commands_exist_and_parse() -> None:
    section = _two_commands()
    for command, script in (("bash scripts/demo", DEMO), ("bash .ci/run", CI)):
        assert f"`{command}`" in section
        assert script.is_file()
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True, check=False).returncode == 0
    assert subprocess.run(["bash", "-n", str(SETUP)], capture_output=True, check=False).returncode == 0


def test_ci_runs_the_readmes_test_command_in_the_projects_venv() -> None:
    command = _test_command()
    assert command == ".venv/bin/python -m pytest tests"
    commands = _commands(CI)
    setup = "bash scripts/setup --with velero --with keda"  # the backup tests use Velero, the KEDA tests KEDA
    assert setup in commands
    assert any(line.endswith(command) for line in commands), f".ci/run runs `{command}`: {commands}"
    assert commands.index(setup) < next(
        i for i, line in enumerate(commands) if line.endswith(command))


def test_the_main_job_sets_up_keda_without_velero_and_runs_from_the_venv() -> None:
    commands = _commands(DEMO)
    setup = [line for line in commands if line.startswith("bash scripts/setup")]
    assert [line.split("#")[0].strip() for line in setup] == ["bash scripts/setup --with keda"]  # keda-ramp.yaml
    assert not [path.name for path in (ROOT / "experiments").glob("*.yaml") if "velero" in path.read_text()], \
        "an example experiment uses Velero: the main job's set-up must build it (scripts/setup --with velero)"
    assert "resilience=.venv/bin/resilience py=.venv/bin/python" in commands


TOOL_RUN = re.compile(r"(?:^|\$\(|[|;&]\s*|\b(?:if|then|else|do)\s+!?\s*|^(?:\w+=\S*\s+)+)"
                      r"(python3?|pip3?|resilience|pytest|ruff|mypy|locust|lint-imports)(?=\s)")


def _tools_from_path(script: Path) -> list[str]:
    """The lines of ``script`` that run a Python tool by its bare name (found on PATH)."""
    return [line for line in _commands(script) if TOOL_RUN.search(line)]


def test_the_path_tool_finder_finds_bare_names_only(tmp_path: Path) -> None:
    script = tmp_path / "s"
    script.write_text("python3 -m pytest tests\nX=1 pytest tests\nk=$(resilience cluster up)\n"
                      "if ! python3 -c 1; then :; fi\n.venv/bin/python -m pytest tests\n$resilience run x\n"
                      "echo 'pytest collected no tests'\n")
    assert _tools_from_path(script) == ["python3 -m pytest tests", "X=1 pytest tests", "k=$(resilience cluster up)",
                                        "if ! python3 -c 1; then :; fi"]


@pytest.mark.parametrize("script", [SETUP, CI, DEMO], ids=["setup", "ci", "demo"])
def test_no_script_runs_the_system_interpreter_or_its_tools(script: Path) -> None:
    """Only scripts/setup calls python3, to check its version and make the venv; everything else runs from
    .venv/ (an installed copy elsewhere on PATH would run other code)."""
    allowed = ("python3 -m venv", "sys.version", "python3 --version") if script == SETUP else ()
    offenders = [line for line in _tools_from_path(script) if not any(ok in line for ok in allowed)]
    assert offenders == [], f"{script.name} runs a tool from PATH instead of .venv/bin: {offenders}"


def test_the_venv_is_git_ignored_and_made_from_the_machines_python3() -> None:
    assert ".venv/" in (ROOT / ".gitignore").read_text().splitlines()
    commands = _commands(SETUP)
    assert "VENV=.venv" in commands
    assert 'python3 -m venv "$VENV"' in commands
    assert """"$VENV/bin/python" -m pip install -q -e '.[dev]'""" in commands


@pytest.mark.parametrize("args", [["--with", "nothing"], ["--with"], ["--everything"]])
def test_setup_refuses_an_unknown_option_before_doing_anything(args: list[str]) -> None:
    proc = subprocess.run(["bash", str(SETUP), *args], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "[setup" not in proc.stdout


def _checkout_with_a_venv(tmp_path: Path) -> Path:
    """A copy of scripts/setup and pyproject.toml with a .venv whose python is this interpreter."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(SETUP, tmp_path / "scripts" / "setup")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "resilience").write_text("#!/bin/sh\n")
    for tool in ("python", "resilience"):
        (bin_dir / tool).chmod(0o755)
    return tmp_path


def test_setup_leaves_an_up_to_date_venv_alone(tmp_path: Path) -> None:
    """The stamp (checkout path, python3's version, pyproject.toml's hash) matches: nothing is reinstalled."""
    checkout = _checkout_with_a_venv(tmp_path)
    version = subprocess.run(["python3", "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                             text=True, check=True).stdout.strip()
    digest = hashlib.sha256((checkout / "pyproject.toml").read_bytes()).hexdigest()
    (checkout / ".venv" / ".setup-stamp").write_text(f"{checkout} {version} {digest}\n")
    proc = subprocess.run(["bash", "scripts/setup", "--python-only"], cwd=checkout, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Python packages: .venv is up to date" in proc.stdout and "pip install" not in proc.stdout
    assert (checkout / ".venv" / "bin" / "resilience").read_text() == "#!/bin/sh\n"  # untouched
