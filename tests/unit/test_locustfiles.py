"""Where a locustfile named by an experiment is found."""

from __future__ import annotations

from pathlib import Path

import pytest

from resilience_tests.errors import UsageError
from resilience_tests.load import locust

ROOT = Path(__file__).parents[2]


def test_the_experiment_folder_comes_before_the_projects_profiles(tmp_path: Path) -> None:
    (tmp_path / "web.py").write_text("# the experiment's own\n")
    assert locust.resolve_locustfile("web.py", tmp_path) == (tmp_path / "web.py").resolve()
    assert locust.resolve_locustfile("web.py", None) == (ROOT / "resilience_tests/load/profiles/web.py").resolve()


def test_the_default_locustfile_ships_with_the_package_outside_a_checkout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locust, "REPO_PROFILES", tmp_path / "no-checkout")
    monkeypatch.chdir(tmp_path)
    assert locust.resolve_locustfile("web.py", tmp_path / "experiments") == locust.PACKAGED_PROFILES / "web.py"
    assert (ROOT / "loadprofiles" / "web.py").resolve() == (locust.PACKAGED_PROFILES / "web.py").resolve()


def test_a_missing_locustfile_names_every_place_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as err:
        locust.resolve_locustfile("nope.py", tmp_path / "exp")
    message = str(err.value)
    assert message.startswith("locustfile 'nope.py' not found (looked at nope.py, ")
    assert str(tmp_path / "exp" / "nope.py") in message and str(locust.PACKAGED_PROFILES / "nope.py") in message
    assert message.endswith("give a path relative to the experiment file, or a file in loadprofiles/")

