"""The load shape an experiment names, as a Locust LoadTestShape.

RT_SHAPE holds the shape as JSON, e.g. {"type": "progressive", "users": 60, "step_users": 5, "step_every": 5}:
  RT_SHAPE='{"type": "ramp", "users": 50, "ramp": 30, "hold": 60}' \
    locust -f loadprofiles/web.py,loadprofiles/shape.py --headless --host http://127.0.0.1:30080
Types: constant, ramp, steps, spike, progressive (resilience_tests/load/shapes.py has their parameters).
"""

from __future__ import annotations

import os

from locust import LoadTestShape

from resilience_tests.load.shapes import shape_from_env

SHAPE = shape_from_env(os.environ.get("RT_SHAPE", '{"type": "constant", "users": 10, "duration": 60}'))


class ExperimentShape(LoadTestShape):
    """Follows the shape in RT_SHAPE, then stops the run."""

    def tick(self) -> tuple[int, float] | None:
        return SHAPE.tick(self.get_run_time())
