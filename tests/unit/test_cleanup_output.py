"""`resilience cleanup` says what it did and what it left alone: counts by outcome, never "done" for nothing."""

from __future__ import annotations

from typing import Any

import pytest

from resilience_tests import cli
from resilience_tests import platform as platforms
from resilience_tests.backup import pending
from resilience_tests.cluster import cleanup as cleanups
from resilience_tests.cluster.cleanup import FAILED, LEFT_ALONE, NOTED, REFUSED, CleanupAction
from resilience_tests.commands import cleanup as cleanup_commands
from resilience_tests.platform.base import Seen
from resilience_tests.platform.generic import GenericPlatform


class Session:
    def kube(self) -> object:
        return object()

    def close(self) -> None:
        pass


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], ledgers: list[CleanupAction],
         records: list[CleanupAction], *argv: str) -> tuple[int, list[str], list[bool]]:
    calls: list[bool] = []

    def changes(kube: Any, *, dry_run: bool = False, **kwargs: Any) -> list[CleanupAction]:
        calls.append(dry_run)
        return ledgers

    def restores(kube: Any, *, dry_run: bool = False, **kwargs: Any) -> list[CleanupAction]:
        return records

    monkeypatch.setattr(cleanup_commands, "changing_session", lambda args: Session())
    monkeypatch.setattr(platforms, "detect", lambda kube: GenericPlatform(Seen("c", "k", "https://x")))
    monkeypatch.setattr(cleanups, "cleanup", changes)
    monkeypatch.setattr(pending, "cleanup", restores)
    code = cli.main(["cleanup", *argv])
    return code, capsys.readouterr().out.splitlines(), calls


def test_nothing_done_is_not_called_done(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    alive = "the run is alive: lease held by me@here/4810/1.00, renewed 3 s ago"
    code, out, calls = _run(monkeypatch, capsys, [CleanupAction("r1", "node/a", alive, LEFT_ALONE)],
                            [CleanupAction("r1", "namespace/demo", alive, LEFT_ALONE)])
    assert code == 0 and calls == [True]  # nothing to do: not run a second time
    assert not [line for line in out if line.startswith(("done:", "plan:"))]
    assert out[-1] == "cleanup: 0 planned; 0 done, 2 left alone, 0 refused, 0 failed"
    assert out[0] == f"left alone: node/a (r1): {alive}"


def test_each_outcome_is_counted_on_its_own(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, calls = _run(monkeypatch, capsys, [
        CleanupAction("r1", "run", "the run is dead: pid 4810 on this host is gone", NOTED),
        CleanupAction("r1", "node/a", "set spec.unschedulable back to False"),
        CleanupAction("r1", "node/b", "spec.unschedulable changed since", LEFT_ALONE)], [
        CleanupAction("r2", "namespace/x", "its MAC does not verify", REFUSED),
        CleanupAction("r3", "namespace/y", "applying core/ConfigMap c failed: HTTP 500", FAILED)])
    assert calls == [True, False]
    assert "plan: node/a (r1): set spec.unschedulable back to False" in out
    assert "noted: run (r1): the run is dead: pid 4810 on this host is gone" in out
    assert "done: node/a (r1): set spec.unschedulable back to False" in out
    assert "refused: namespace/x (r2): its MAC does not verify" in out
    assert out[-1] == "cleanup: 1 planned; 1 done, 1 left alone, 1 refused, 1 failed"
    assert code == 1  # a failure is not a success


def test_a_dry_run_plans_and_does_nothing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, calls = _run(monkeypatch, capsys, [CleanupAction("r1", "node/a", "undo spec.unschedulable")], [],
                            "--dry-run")
    assert code == 0 and calls == [True]
    assert out == ["plan: node/a (r1): undo spec.unschedulable",
                   "cleanup: 1 planned; 0 done, 0 left alone, 0 refused, 0 failed (dry run: nothing done)"]
