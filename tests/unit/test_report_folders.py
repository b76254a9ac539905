"""`resilience report` on our results folder or a plain Allure results folder, and a run's HTML built from the
--alluredir it was given (folder detection only: the Allure tool is not run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from resilience_tests.commands import run as run_commands
from resilience_tests.errors import UsageError
from resilience_tests.reporting import html


def allure_results(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "0b1c-result.json").write_text('{"name": "kill-one", "status": "passed"}')
    return folder


def test_our_results_folder_reads_its_allure_results_and_a_plain_folder_reads_itself(tmp_path: Path) -> None:
    ours = tmp_path / "reports" / "20261204-191403-a1b2"
    allure_results(ours / "allure-results")
    plain = allure_results(tmp_path / "allure")
    assert html.allure_source(ours) == ours / "allure-results"
    assert html.allure_source(plain) == plain
    assert html.find_results(ours / "allure-results") == ours  # the report goes beside it, in html/
    assert html.find_results(plain) == plain


def test_a_folder_without_allure_results_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty" / "allure-results").mkdir(parents=True)
    (tmp_path / "empty" / "notes-result.txt").write_text("not Allure's")
    with pytest.raises(UsageError, match=r"holds no Allure results \(no \*-result.json in it nor in") as err:
        html.allure_source(tmp_path / "empty")
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match="does not exist"):
        html.find_results(tmp_path / "missing")


def test_report_on_a_plain_allure_folder_goes_past_the_folder_check(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the tool installed, what stops the report is the tool, not the folder."""
    monkeypatch.setenv("RESILIENCE_CACHE", str(tmp_path / "cache"))  # no tool there
    plain = allure_results(tmp_path / "allure")
    with pytest.raises(UsageError) as err:
        html.build(plain)
    assert "holds no Allure results" not in str(err.value)
    assert "Allure tool is not installed" in str(err.value) or "Node.js" in str(err.value)


@pytest.mark.parametrize(("extra", "expected"), [
    ([], None), (["--alluredir", "x"], "x"), (["--alluredir=y"], "y"), (["--alluredir", "x", "--alluredir=z"], "z")])
def test_the_alluredir_among_pytest_arguments_is_found(extra: list[str], expected: str | None) -> None:
    found = run_commands.alluredir_of(["experiments", "-q", *extra])
    assert found == (Path(expected) if expected else None)


@pytest.mark.parametrize("own", [False, True])
def test_a_run_builds_its_html_from_wherever_its_allure_results_went(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     own: bool) -> None:
    results = tmp_path / "reports" / "20261204-191403-a1b2"
    given = tmp_path / "my-allure"
    ran: list[list[str]] = []
    built: list[tuple[Path, Path | None]] = []

    def fake_pytest(argv: list[str]) -> int:
        ran.append(argv)
        results.mkdir(parents=True, exist_ok=True)
        allure_results(run_commands.alluredir_of(argv) or Path("unset"))
        return 0

    monkeypatch.setattr(pytest, "main", fake_pytest)
    monkeypatch.setattr(run_commands, "build_html", lambda folder, alluredir=None: built.append((folder, alluredir)) or
                        type("B", (), {"index": folder / "html" / "index.html"})())
    argv = ["experiments", *(["--alluredir", str(given)] if own else [])]
    assert run_commands.run_pytest(argv, results, add_results_dir=True, dry_run=False, no_report=False) == 0
    alluredir = given if own else results / "allure-results"
    assert ran[0].count("--alluredir") == 1 and run_commands.alluredir_of(ran[0]) == alluredir
    assert built == [(results, alluredir)]  # html/ in the run's results folder, built from its Allure results


def test_a_run_whose_allure_folder_is_its_own_tells_how_to_report_on_it(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    given = tmp_path / "my-allure"

    def fake_pytest(argv: list[str]) -> int:
        allure_results(given)
        return 0

    monkeypatch.setattr(pytest, "main", fake_pytest)
    results = tmp_path / "reports" / "r"
    kwargs: dict[str, Any] = {"add_results_dir": True, "dry_run": False, "no_report": True}
    assert run_commands.run_pytest(["--alluredir", str(given)], results, **kwargs) == 0
    assert f"`resilience report {given}`" in capsys.readouterr().out
