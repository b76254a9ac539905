"""Load shapes: users per second of the run (pure)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from resilience_tests.load.shapes import parse_shape, shape_from_env, shape_to_env


def users(shape_data: dict[str, object], times: list[float]) -> list[int | None]:
    shape = parse_shape(shape_data)
    return [None if (tick := shape.tick(t)) is None else tick[0] for t in times]


def test_constant_holds_then_ends() -> None:
    assert users({"type": "constant", "users": 10, "duration": "30s"}, [0, 29.9, 30]) == [10, 10, None]


def test_ramp_climbs_linearly_then_holds() -> None:
    data = {"type": "ramp", "users": 100, "ramp": "10s", "hold": "5s"}
    assert users(data, [0, 5, 10, 14.9, 15]) == [1, 50, 100, 100, None]


def test_steps_add_users_per_step() -> None:
    data = {"type": "steps", "start_users": 5, "step_users": 10, "step_duration": "10s", "steps": 3}
    assert users(data, [0, 9.9, 10, 25, 29.9, 30]) == [15, 15, 25, 35, 35, None]


def test_spike_jumps_and_falls_back() -> None:
    data = {"type": "spike", "users": 10, "spike_users": 80, "at": "20s", "spike_duration": "5s", "duration": "60s"}
    assert users(data, [0, 19.9, 20, 24.9, 25, 60]) == [10, 10, 80, 80, 10, None]


def test_progressive_adds_users_gradually_to_the_target() -> None:
    # The game-day profile: 60 users, 5 more every 5 s, then held for 30 s.
    shape = parse_shape({"type": "progressive", "users": 60, "step_users": 5, "step_every": "5s", "hold": "30s"})
    assert shape.tick(0) == (5, 5.0) and shape.tick(5)[0] == 10  # type: ignore[index]
    assert shape.tick(55)[0] == 60 and shape.tick(84.9)[0] == 60  # type: ignore[index]
    assert shape.duration == 85 and shape.tick(85) is None


def test_progressive_can_drop_to_fewer_users_after_its_hold() -> None:
    # The autoscaling ramp: 60 users, 10 more every 5 s, held 40 s, then 3 users for 50 s (scale-down is judged).
    shape = parse_shape({"type": "progressive", "users": 60, "step_users": 10, "step_every": "5s", "hold": "40s",
                         "then_users": 3, "then_hold": "50s"})
    assert users({**shape.model_dump(by_alias=True)}, [0, 24.9, 25, 64.9, 65, 114.9, 115]) == [
        10, 50, 60, 60, 3, 3, None]
    assert shape.duration == 115 and shape.peak_users == 60
    assert shape_from_env(shape_to_env(shape)) == shape


@pytest.mark.parametrize("bad, message", [
    ({"type": "progressive", "users": 10, "hold": "5s", "then_users": 10, "then_hold": "5s"},
     r"then_users \(10\) must be fewer than users \(10\)"),
    ({"type": "progressive", "users": 10, "then_users": 2}, "then_users and then_hold go together"),
    ({"type": "progressive", "users": 10, "then_hold": "5s"}, "then_users and then_hold go together"),
    ({"type": "progressive", "users": 10, "then_users": 0, "then_hold": "5s"}, "greater than or equal to 1"),
    ({"type": "ramp", "users": 10}, "ramp"),
    ({"type": "zigzag", "users": 10}, "zigzag"),
    ({"type": "constant", "users": 0, "duration": "1m"}, "greater than or equal to 1"),
    ({"type": "constant", "users": 5, "duration": "ten seconds"}, "duration"),
    ({"type": "spike", "users": 1, "spike_users": 9, "at": "50s", "spike_duration": "20s", "duration": "60s"},
     "must end within duration"),
])
def test_bad_shapes_are_refused(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_shape(bad)


def test_shape_travels_to_the_locust_process_unchanged() -> None:
    shape = parse_shape({"type": "spike", "users": 3, "spike_users": 9, "at": 5, "spike_duration": 2, "duration": 9})
    assert shape_from_env(shape_to_env(shape)) == shape
