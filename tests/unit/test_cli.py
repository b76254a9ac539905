"""Bad input to `resilience cluster`: one line saying what to do, nothing left running."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from resilience_tests.cli import main


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RESILIENCE_CACHE", str(tmp_path))
    return tmp_path


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


@pytest.mark.parametrize(("argv", "expected"), [
    (["cluster", "up", "--zones", "0"], "--zones must be between 1 and 26"),
    (["cluster", "up", "--nodes-per-zone", "-1"], "--nodes-per-zone must be at least 1"),
    (["cluster", "up", "--zonez", "3"], "unrecognized arguments: --zonez"),
    (["cluster", "up", "--name", "Bad_Name"], "invalid cluster name"),
    (["cluster", "fail", "--zone", "zone-a", "--node", "sim-a1"], "not allowed with argument"),
    (["cluster", "frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_usage_errors_exit_2_with_one_line(argv: list[str], expected: str, empty_cache: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert expected in _one_error_line(capsys)


def test_missing_binaries_say_to_build_and_start_nothing(empty_cache: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cluster", "up"]) == 1
    line = _one_error_line(capsys)
    assert "cluster binaries missing" in line and "resilience cluster build" in line
    assert not (empty_cache / "clusters" / "resilience").exists()


def test_taken_port_is_refused_before_anything_starts(empty_cache: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert main(["cluster", "up", "--port", str(port)]) == 2
    line = _one_error_line(capsys)
    assert f"port {port} is already in use" in line
    assert not (empty_cache / "clusters" / "resilience").exists()


def test_status_and_kubeconfig_of_an_absent_cluster(empty_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cluster", "status"]) == 1
    assert "cluster resilience: absent" in capsys.readouterr().out
    assert main(["cluster", "kubeconfig"]) == 2
    assert "not running" in _one_error_line(capsys)
    assert main(["cluster", "down"]) == 0


def test_pytest_args_are_taken_as_written() -> None:
    from resilience_tests.cli import _joined, make_parser
    from resilience_tests.commands.run import pytest_args

    for argv in (["run", "experiments", "--pytest-args", "-v -x"], ["run", "experiments", "--pytest-args=-v -x"]):
        args = make_parser().parse_args(_joined(argv))
        assert pytest_args(args)[-2:] == ["-v", "-x"], argv
    assert _joined(["run", "--pytest-args"]) == ["run", "--pytest-args"]  # argparse then says what is missing


def _results_with_one_test(root: Path) -> Path:
    results = root / "reports" / "20261128-000000-abcd"
    (results / "allure-results").mkdir(parents=True)
    (results / "allure-results" / "x-result.json").write_text('{"name": "x", "status": "passed"}')
    return results


@pytest.mark.parametrize(("setup", "expected"), [
    ("missing", "results folder {root}/nope does not exist; give a folder `resilience run` wrote"),
    ("no-reports", "no results under reports/; run experiments first: `resilience run`"),
    ("empty", "holds no Allure results"),
    ("old-version", "was written by summary version 0 (journal version None); this resilience-tests"),
    ("no-tool", "the Allure tool is not installed"),
    ("no-node", "node is not installed, and the HTML report needs Node.js"),
])
def test_report_bad_input_is_one_line_saying_what_to_do(setup: str, expected: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RESILIENCE_CACHE", str(tmp_path / "cache"))  # no tool installed there
    argv = ["report"]
    if setup == "missing":
        argv.append(str(tmp_path / "nope"))
    elif setup == "empty":
        (tmp_path / "reports" / "run").mkdir(parents=True)
        argv.append("reports/run")
    elif setup != "no-reports":
        results = _results_with_one_test(tmp_path)
        if setup == "old-version":
            (results / "summary.json").write_text('{"version": 0}')
        if setup == "no-node":
            monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert expected.format(root=tmp_path) in line
    if setup == "no-tool":
        assert "python3 -m resilience_tests.reporting.html --install" in line
    assert not (tmp_path / "reports" / "20261128-000000-abcd" / "html").exists()


def test_installing_the_report_tool_without_npm_names_the_install_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from resilience_tests.reporting import html

    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node (scripts/setup)")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "node").symlink_to(node)  # node without npm
    monkeypatch.setenv("RESILIENCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(html.ReportError, match="npm is not installed") as refused:
        html.install()
    assert "apt-get install nodejs npm" in str(refused.value)


def test_a_node_too_old_for_the_report_tool_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bin").mkdir()
    old = tmp_path / "bin" / "node"
    old.write_text("#!/bin/sh\necho v18.19.0\n")
    old.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.chdir(tmp_path)
    _results_with_one_test(tmp_path)
    assert main(["report"]) == 2
    assert "Node.js v18.19.0 is too old for the Allure tool; install Node.js 20 or newer" in _one_error_line(capsys)
    assert not (tmp_path / "cache" / "allure").exists() or not any((tmp_path / "cache" / "allure").iterdir())


def test_what_the_cli_prints_has_its_control_characters_written_out(capsys: pytest.CaptureFixture[str]) -> None:
    from resilience_tests.cli import say

    say("image \x1b]0;owned\x07nginx", "\x1b[2J")
    say("error: \x9b31m", file=sys.stderr)
    out = capsys.readouterr()
    assert "\x1b" not in out.out and "\\x1b]0;owned" in out.out and "\x9b" not in out.err
