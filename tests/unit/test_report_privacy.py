"""What reaches the terminal and the report files: control characters escaped, files 0600 and folders 0700,
the kubeconfig's credentials masked: pure logic, no cluster."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from resilience_tests.reporting.plugin import ReportingPlugin
from resilience_tests.reporting.results import (
    ALLURE_RESULTS,
    EXPERIMENTS,
    private_allure,
    private_tree,
    secure_results,
    write_private,
)
from resilience_tests.sla.checks import Verdict
from resilience_tests.text import printable
from tests.unit.test_journal import journal


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("raw", "shown"), [
    ("image nginx\x1b]0;pwned\x07:1.27", "image nginx\\x1b]0;pwned\\x07:1.27"),  # OSC: retitles the window
    ("\x1b[2J\x1b[Hcleared", "\\x1b[2J\\x1b[Hcleared"),  # CSI: clears the screen
    ("ok\rFAILED", "ok\\x0dFAILED"),  # a carriage return overwrites what was shown
    ("bell\x07 back\x08 del\x7f nul\x00", "bell\\x07 back\\x08 del\\x7f nul\\x00"),
    ("c1 \x9b31m csi, \x9d osc", "c1 \\x9b31m csi, \\x9d osc"),
    ("name \u202eexe.txt", "name \\u202eexe.txt"),  # a bidi override shows text reversed
    ("two\nlines\tand a tab, ünïcödé, 日本", "two\nlines\tand a tab, ünïcödé, 日本"),  # kept as they are
])
def test_printable_escapes_control_characters_and_keeps_text(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_write_private_writes_0600_whole_files(tmp_path: Path) -> None:
    path = write_private(tmp_path / "journal.json", "{}")
    assert path.read_text() == "{}" and mode(path) == 0o600
    write_private(path, "[1]")
    assert path.read_text() == "[1]" and mode(path) == 0o600 and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_new_results_folder_is_made_private(tmp_path: Path) -> None:
    results = tmp_path / "reports" / "run-1"
    secure_results(results)
    assert mode(results) == 0o700 and mode(results / EXPERIMENTS) == 0o700


def test_a_results_folder_holding_only_run_outputs_is_made_private(tmp_path: Path) -> None:
    results = tmp_path / "run"
    (results / ALLURE_RESULTS).mkdir(parents=True, mode=0o755)  # allure-pytest made it a moment before
    results.chmod(0o755)
    secure_results(results)
    assert mode(results) == 0o700 and mode(results / ALLURE_RESULTS) == 0o700


def test_a_folder_of_your_own_keeps_its_mode_and_gets_a_private_experiments_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    tmp_path.chmod(0o755)
    secure_results(tmp_path)
    assert mode(tmp_path) == 0o755 and mode(tmp_path / EXPERIMENTS) == 0o700


def test_private_tree_makes_what_other_tools_wrote_private(tmp_path: Path) -> None:
    load = tmp_path / "load"
    (load / "stats").mkdir(parents=True)
    (load / "stats" / "locust.log").write_text("x")
    (tmp_path / "elsewhere").write_text("not under load")
    (load / "link").symlink_to(tmp_path / "elsewhere")
    private_tree(load)
    assert mode(load) == 0o700 and mode(load / "stats") == 0o700 and mode(load / "stats" / "locust.log") == 0o600
    assert mode(tmp_path / "elsewhere") != 0o600  # a link is not followed


def test_private_allure_touches_only_allures_files(tmp_path: Path) -> None:
    alluredir = tmp_path / "allure"
    alluredir.mkdir(mode=0o755)
    (alluredir / "abc-result.json").write_text("{}")
    private_allure(alluredir)
    assert mode(alluredir / "abc-result.json") == 0o600 and mode(alluredir) == 0o700
    mixed = tmp_path / "src"  # `--alluredir .` in a source folder: its own files stay as they are
    mixed.mkdir(mode=0o755)
    (mixed / "run.sh").write_text("#!/bin/sh\n")
    (mixed / "run.sh").chmod(0o755)
    (mixed / "x-result.json").write_text("{}")
    private_allure(mixed)
    assert mode(mixed) == 0o755 and mode(mixed / "run.sh") == 0o755 and mode(mixed / "x-result.json") == 0o600


class Terminal:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_sep(self, sep: str, title: str) -> None:
        self.lines.append(title)

    def write_line(self, line: str, **markup: Any) -> None:
        self.lines.append(line)


def plugin(tmp_path: Path, kubeconfig: str | None = None, results: str = "") -> ReportingPlugin:
    config: Any = SimpleNamespace(getoption=lambda name, default=None: None, getini=lambda name: results,
                                  option=SimpleNamespace(collectonly=False))
    return ReportingPlugin(config, cluster=SimpleNamespace(kubeconfig=kubeconfig, run_id="20261204-191403-a1b2"))


def test_the_verdict_section_masks_secrets_and_escapes_control_characters(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("users: [{name: a, user: {token: sa-token-0123456789}}]\n")
    reporting = plugin(tmp_path, str(kubeconfig))
    bad = Verdict("zone-spread", False, "1 zone \x1b]8;;http://evil\x07", ">= 2", "snapshot", key="zone-spread")
    item: Any = SimpleNamespace(user_properties=[], nodeid="exp.yaml::kill\x1b[31m")
    reporting.pytest_resilience_journal(reporting.config, item, journal(verdicts=(bad,), revert_errors=(
        "0:rollout: revert failed: sent sa-token-0123456789 to \x1b[2Jweb",)))
    terminal = Terminal()
    reporting.pytest_terminal_summary(terminal, reporting.config)
    shown = "\n".join(terminal.lines)
    assert "\x1b" not in shown and "\\x1b]8;;http://evil\\x07" in shown and "\\x1b[2Jweb" in shown
    assert "sa-token-0123456789" not in shown and "sent *** to" in shown
    assert all("sa-token" not in value for _, value in item.user_properties)


def test_reports_are_written_0600_in_0700_folders(tmp_path: Path) -> None:
    results = tmp_path / "out"
    reporting = plugin(tmp_path, results=str(results))
    assert mode(results) == 0o700  # private before anything is written into it
    item: Any = SimpleNamespace(user_properties=[], warn=lambda w: None, nodeid="exp.yaml::kill")
    reporting._write(reporting.config, item, journal())  # no allure: the journal and the plot
    folder = results / EXPERIMENTS / "kill-1234abcd"
    assert mode(folder) == 0o700 and mode(folder / "journal.json") == 0o600
    assert json.loads((folder / "journal.json").read_text())["run_id"] == "kill-1234abcd"
    if (folder / "timeline.png").exists():
        assert mode(folder / "timeline.png") == 0o600
