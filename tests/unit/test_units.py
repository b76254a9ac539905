from __future__ import annotations

import pytest

from resilience_tests.errors import UsageError
from resilience_tests.units import format_duration, parse_duration, parse_percent


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("90s", 90), ("2m", 120), ("1h30m", 5400), ("1m 30s", 90), (15, 15), (2.5, 2.5), ("0s", 0),
])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "ten seconds", "10", "5d", "-3s", -1, True, None, "3s4", float("inf"),
                                 float("nan"), float("-inf"), "1000000h", 10**9])
def test_bad_durations_say_how_to_write_one(bad: object) -> None:
    with pytest.raises(UsageError, match="duration|negative|longer than a week"):
        parse_duration(bad)


def test_yaml_infinity_and_nan_are_refused_as_durations() -> None:
    import yaml

    for text in (".inf", ".nan", "-.inf"):
        with pytest.raises(UsageError, match="not a finite duration|negative"):
            parse_duration(yaml.safe_load(text))


def test_percentages() -> None:
    assert parse_percent("50%") == 0.5
    assert parse_percent(25) == 0.25
    for bad in ("150%", "x%", "half", -5, True, float("nan"), "nan%", float("inf")):
        with pytest.raises(UsageError, match="percentage"):
            parse_percent(bad)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.25, 45, 60, 90)] == ["250ms", "45s", "1m", "1m30s"]
