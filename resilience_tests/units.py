"""Parsing of durations and percentages as experiments write them ("90s", "2m", "50%")."""

from __future__ import annotations

import math
import re

from resilience_tests.errors import UsageError

MAX_DURATION = 7 * 24 * 3600.0
"""The longest duration any key accepts (a week): an experiment longer than that is a typo."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Seconds from "500ms", "90s", "2m", "1h30m" or a plain number of seconds.

    Raises:
        UsageError: the value is not a non-negative duration.
    """
    if isinstance(value, bool):
        raise UsageError(f"{value!r} is not a duration", hint='write it like "30s", "2m" or "500ms"')
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        if len(text) > 40:
            raise UsageError(f"{value[:40]!r}... is not a duration", hint='write it like "30s", "2m" or "500ms"')
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise UsageError(f"{value!r} is not a duration", hint='write it like "30s", "2m" or "500ms"')
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise UsageError(f"{value!r} is not a duration", hint='write it like "30s", "2m" or "500ms"')
    if not math.isfinite(seconds):
        raise UsageError(f"{value!r} is not a finite duration", hint='write it like "30s", "2m" or "500ms"')
    if seconds < 0:
        raise UsageError(f"{value!r} is negative", hint="durations are >= 0")
    if seconds > MAX_DURATION:
        raise UsageError(f"{value!r} is longer than a week", hint="durations are at most 168h")
    return seconds


def parse_percent(value: object) -> float:
    """A fraction in [0, 1] from "50%" (or a number between 0 and 100 meaning percent)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1])
        except ValueError:
            number = -1
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        number = -1
    if not 0 <= number <= 100:  # NaN fails this too
        raise UsageError(f"{value!r} is not a percentage", hint='write it like "50%"')
    return number / 100


def format_duration(seconds: float) -> str:
    """Short human form: 0.5 -> "500ms", 90 -> "1m30s"."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs}s" if minutes and secs else f"{minutes}m" if minutes else f"{secs}s"
