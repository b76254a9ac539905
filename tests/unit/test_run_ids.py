"""One run id per run: minted once, named by the results folder, the prefix of each experiment's id, accepted by
``cleanup --run`` whole or per experiment (pure: no cluster)."""

from __future__ import annotations

import argparse
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from resilience_tests import cli
from resilience_tests.backup import pending
from resilience_tests.cluster import cleanup as cleanups
from resilience_tests.cluster.cleanup import CleanupAction
from resilience_tests.commands import cleanup as cleanup_commands
from resilience_tests.commands import run as run_commands
from resilience_tests.errors import UsageError
from resilience_tests.experiment.runner import PreflightError, Runner
from resilience_tests.runids import ExperimentIds, belongs, check_run_id, new_run_id, run_of
from tests.unit.test_journal import EXPERIMENT

RUN = "20261204-191403-a1b2"


def test_a_new_run_id_is_sortable_and_usable_as_a_label_value() -> None:
    run_id = new_run_id()
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", run_id) and check_run_id(run_id) == run_id


@pytest.mark.parametrize("bad", ["", "-x", "x-", "a b", "a/b", "x" * 41, "ünï", "a\nb"])
def test_a_run_id_that_cannot_name_a_folder_label_and_lease_is_refused(bad: str) -> None:
    with pytest.raises(UsageError, match="is not usable"):
        check_run_id(bad)


@pytest.mark.parametrize("good", ["nightly-42", "a", "x" * 40, "ci_1.2"])
def test_a_usable_run_id_is_accepted(good: str) -> None:
    assert ExperimentIds(good).run_id == good


def test_experiment_ids_count_from_1_under_the_run_id_and_never_repeat_across_threads() -> None:
    ids = ExperimentIds(RUN)
    assert (ids.next(), ids.next()) == (f"{RUN}-1", f"{RUN}-2")
    minted: list[str] = []
    threads = [threading.Thread(target=lambda: minted.extend(ids.next() for _ in range(50))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(minted)) == 200 and all(run_of(i) == RUN for i in minted)


def test_cleanup_run_matches_a_run_s_experiments_or_one_experiment_and_nothing_else() -> None:
    assert belongs(f"{RUN}-3", RUN) and belongs(f"{RUN}-3", f"{RUN}-3")
    assert not belongs(f"{RUN}-3", f"{RUN}-1") and not belongs(f"{RUN}-3", "20261204-191403")
    assert not belongs("20261204-191403-a1b3-1", RUN) and not belongs(f"{RUN}-3", "")
    assert run_of("kill-1234abcd") == "kill-1234abcd" and belongs("kill-1234abcd", "kill-1234abcd")  # old ids


def test_a_run_failing_in_preflight_keeps_the_one_id_it_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    def preflight(self: Runner, exp: object, dry_run: bool, run_id: str) -> None:
        raise PreflightError("namespace demo does not exist")

    monkeypatch.setattr(Runner, "_run", preflight)
    ids = ExperimentIds(RUN)
    runner = Runner(object(), {}, ids=ids)  # type: ignore[arg-type]
    with pytest.raises(PreflightError):
        runner.run(EXPERIMENT)
    assert runner.journal is not None and runner.journal.run_id == f"{RUN}-1" and runner.journal.run == RUN
    assert ids.next() == f"{RUN}-2"  # no second id was minted for the failure


def _args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    exp = tmp_path / "e.yaml"
    exp.write_text("name: x\n")
    return cli.make_parser().parse_args(["run", str(exp), "--reports", str(tmp_path / "reports"), *extra])


def test_resilience_run_names_its_results_folder_by_the_run_id_and_hands_it_to_pytest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def session(argv: list[str], results: Path, **kwargs: Any) -> int:
        seen.update(argv=argv, results=results)
        return 0

    monkeypatch.setattr(run_commands, "run_pytest", session)
    assert run_commands.run_command(_args(tmp_path)) == 0
    run_id = seen["results"].name
    assert seen["results"] == tmp_path / "reports" / run_id and check_run_id(run_id)
    assert seen["argv"][seen["argv"].index("--run-id") + 1] == run_id
    assert run_commands.run_command(_args(tmp_path, "--run-id", "nightly-7")) == 0
    assert seen["results"] == tmp_path / "reports" / "nightly-7"


def test_a_run_id_already_used_or_unusable_is_refused_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "reports" / "nightly-7").mkdir(parents=True)
    with pytest.raises(UsageError, match="run id nightly-7 was used already"):
        run_commands.run_command(_args(tmp_path, "--run-id", "nightly-7"))
    with pytest.raises(UsageError, match="is not usable"):
        run_commands.run_command(_args(tmp_path, "--run-id", "a/b"))


def test_cleanup_run_with_a_run_id_cleans_each_of_its_experiments(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    left = [CleanupAction(f"{RUN}-1", "node/a", "undo spec.unschedulable"),
            CleanupAction(f"{RUN}-2", "deployment/demo/web", "set replicas back to 3"),
            CleanupAction("20261204-200000-ffff-1", "node/b", "undo spec.unschedulable")]
    asked: list[tuple[str | None, bool]] = []

    def changes(kube: Any, *, run_id: str | None = None, dry_run: bool = False, **kwargs: Any) -> list[CleanupAction]:
        asked.append((run_id, dry_run))
        return [a for a in left if run_id in (None, a.run_id)]

    monkeypatch.setattr(cleanup_commands, "changing_session", lambda args: type("S", (), {"kube": lambda self: object(),
                                                                             "close": lambda self: None})())
    monkeypatch.setattr(cleanups, "cleanup", changes)
    monkeypatch.setattr(pending, "cleanup", lambda kube, **kwargs: [])
    from resilience_tests import platform

    monkeypatch.setattr(platform, "detect", lambda kube: type("P", (), {"stop_load": lambda self, *a: []})())
    monkeypatch.setattr(platform, "host_restore", lambda detected, kube: lambda node, field: None)
    assert cli.main(["cleanup", "--run", RUN]) == 0
    out = capsys.readouterr().out
    assert f"done: node/a ({RUN}-1)" in out and f"done: deployment/demo/web ({RUN}-2)" in out
    assert "node/b" not in out  # another run's
    assert (f"{RUN}-1", False) in asked and (f"{RUN}-2", False) in asked
    asked.clear()
    assert cli.main(["cleanup", "--run", f"{RUN}-2"]) == 0
    assert "node/a" not in capsys.readouterr().out and {r for r, _ in asked} == {None, f"{RUN}-2"}
