"""Building blocks of the typed, frozen models that YAML is parsed into.

Models forbid unknown keys; :func:`explain` turns a pydantic ValidationError
into lines that name the key path, what was wrong and the allowed keys or values.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from resilience_tests.errors import UsageError
from resilience_tests.units import parse_duration, parse_percent


def _duration(value: object) -> float:
    try:
        return parse_duration(value)
    except UsageError as exc:
        raise ValueError(str(exc)) from None


def _percent(value: object) -> float:
    try:
        return parse_percent(value)
    except UsageError as exc:
        raise ValueError(str(exc)) from None


Duration = Annotated[float, BeforeValidator(_duration)]
"""Seconds, written in YAML as "30s", "2m", "500ms" or a number of seconds."""

Percent = Annotated[float, BeforeValidator(_percent)]
"""A fraction in [0, 1], written in YAML as "50%"."""


class Model(BaseModel):
    """Base of every schema model: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str] | None:
    """Allowed keys of the model found at ``loc`` under ``model`` (None if not a model)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            break
        current = _innermost_model(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(f.alias or name for name, f in current.model_fields.items())
    return None


def _innermost_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _innermost_model(arg)
        if found is not None:
            return found
    return None


def key_path(loc: tuple[int | str, ...]) -> str:
    """``("faults", 0, "nodes")`` -> ``faults[0].nodes``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _short(value: object, limit: int = 80) -> str:
    """The repr of a bad value, cut so that a huge input is never echoed whole."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def explain(exc: ValidationError, model: type[BaseModel], prefix: tuple[int | str, ...] = ()) -> list[str]:
    """One line per problem: key path, what is wrong, and what is allowed."""
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = key_path(prefix + loc)
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(model, loc[:-1]) or []
            lines.append(f"{path}: unknown key; allowed keys: {', '.join(allowed)}")
        elif err["type"] == "missing":
            lines.append(f"{path}: required key is missing")
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")[:300]
            lines.append(f"{path}: {msg} (got {_short(err.get('input'))})")
    return lines
