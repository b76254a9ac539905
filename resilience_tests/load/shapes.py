"""Load shapes: how many users run at each second of a load run.

Pure: ``tick(t)`` returns ``(users, spawn_rate)`` or None when the run is over. The
Locust side (``loadprofiles/shape.py``) wraps the chosen shape in a
``LoadTestShape``; experiments name a shape and its parameters in YAML::

    load:
      shape: {type: progressive, users: 60, step_users: 5, step_every: 5s, hold: 2m}
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, model_validator

from resilience_tests.schema import Duration, Model

Tick = tuple[int, float] | None


class _Shape(Model):
    def tick(self, t: float) -> Tick:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def duration(self) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def peak_users(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError


class Constant(_Shape):
    """``users`` users for ``duration``, started at ``spawn_rate`` per second (default: all at once)."""

    type: Literal["constant"] = "constant"
    users: int = Field(ge=1)
    duration_s: Duration = Field(alias="duration")
    spawn_rate: float | None = Field(default=None, gt=0)

    def tick(self, t: float) -> Tick:
        return None if t >= self.duration_s else (self.users, self.spawn_rate or float(self.users))

    @property
    def duration(self) -> float:
        return self.duration_s

    @property
    def peak_users(self) -> int:
        return self.users


class Ramp(_Shape):
    """Linear ramp from ``start_users`` to ``users`` over ``ramp``, then ``hold``."""

    type: Literal["ramp"] = "ramp"
    users: int = Field(ge=1)
    start_users: int = Field(default=0, ge=0)
    ramp: Duration
    hold: Duration = 0.0

    def tick(self, t: float) -> Tick:
        if t >= self.ramp + self.hold:
            return None
        if self.ramp <= 0 or t >= self.ramp:
            return self.users, float(self.users)
        users = self.start_users + (self.users - self.start_users) * t / self.ramp
        rate = abs(self.users - self.start_users) / self.ramp
        return max(1, round(users)), max(rate, 1.0)

    @property
    def duration(self) -> float:
        return self.ramp + self.hold

    @property
    def peak_users(self) -> int:
        return max(self.users, self.start_users)


class Steps(_Shape):
    """``start_users``, then ``step_users`` more every ``step_duration``, ``steps`` times (the last step held)."""

    type: Literal["steps"] = "steps"
    start_users: int = Field(default=0, ge=0)
    step_users: int = Field(ge=1)
    step_duration: Duration
    steps: int = Field(ge=1)

    @model_validator(mode="after")
    def _positive(self) -> Steps:
        if self.step_duration <= 0:
            raise ValueError("step_duration must be more than 0s")
        return self

    def tick(self, t: float) -> Tick:
        if t >= self.duration:
            return None
        step = min(int(t // self.step_duration) + 1, self.steps)
        users = max(1, self.start_users + step * self.step_users)
        return users, float(self.step_users)

    @property
    def duration(self) -> float:
        return self.steps * self.step_duration

    @property
    def peak_users(self) -> int:
        return self.start_users + self.steps * self.step_users


class Spike(_Shape):
    """``users`` users; at ``at`` jump to ``spike_users`` for ``spike_duration``; run ``duration`` in all."""

    type: Literal["spike"] = "spike"
    users: int = Field(ge=1)
    spike_users: int = Field(ge=1)
    at: Duration
    spike_duration: Duration
    duration_s: Duration = Field(alias="duration")

    @model_validator(mode="after")
    def _inside(self) -> Spike:
        if self.at + self.spike_duration > self.duration_s:
            raise ValueError("the spike (at + spike_duration) must end within duration")
        return self

    def tick(self, t: float) -> Tick:
        if t >= self.duration_s:
            return None
        if self.at <= t < self.at + self.spike_duration:
            return self.spike_users, float(max(self.spike_users - self.users, 1))
        return self.users, float(max(self.spike_users, self.users))

    @property
    def duration(self) -> float:
        return self.duration_s

    @property
    def peak_users(self) -> int:
        return max(self.users, self.spike_users)


class Progressive(_Shape):
    """The game-day ramp: ``step_users`` users added every ``step_every`` until ``users``, then ``hold``; then,
    with ``then_users``, a drop to that many users (at least 1) held ``then_hold`` (so scale-down is seen)."""

    type: Literal["progressive"] = "progressive"
    users: int = Field(ge=1)
    step_users: int = Field(default=1, ge=1)
    step_every: Duration = 1.0
    hold: Duration = 0.0
    then_users: int | None = Field(default=None, ge=1)
    then_hold: Duration = 0.0

    @model_validator(mode="after")
    def _positive(self) -> Progressive:
        if self.step_every <= 0:
            raise ValueError("step_every must be more than 0s")
        if self.then_users is not None and self.then_users >= self.users:
            raise ValueError(f"then_users ({self.then_users}) must be fewer than users ({self.users}): it is "
                             "where the load drops to")
        if (self.then_users is None) != (self.then_hold <= 0):
            raise ValueError("then_users and then_hold go together: the drop's users and how long they stay")
        return self

    @property
    def ramp(self) -> float:
        return math.ceil(self.users / self.step_users - 1) * self.step_every

    def tick(self, t: float) -> Tick:
        if t >= self.duration:
            return None
        if self.then_users is not None and t >= self.ramp + self.hold:
            return self.then_users, float(self.users)  # the drop: users stop at once
        users = min(self.users, (int(t // self.step_every) + 1) * self.step_users)
        return users, float(self.step_users)

    @property
    def duration(self) -> float:
        return self.ramp + self.hold + self.then_hold

    @property
    def peak_users(self) -> int:
        return self.users


Shape = Annotated[Constant | Ramp | Steps | Spike | Progressive, Field(discriminator="type")]
_ADAPTER: TypeAdapter[Shape] = TypeAdapter(Shape)


def parse_shape(data: object) -> Shape:
    """A shape from its mapping (``{"type": "ramp", ...}``); raises pydantic's ValidationError."""
    return _ADAPTER.validate_python(data)


def shape_to_env(shape: Shape) -> str:
    """The shape as JSON for the Locust process (``RT_SHAPE``)."""
    return json.dumps(shape.model_dump(by_alias=True))


def shape_from_env(text: str) -> Shape:
    """Inverse of :func:`shape_to_env`."""
    return parse_shape(json.loads(text))
