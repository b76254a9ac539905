"""The experiment's load shape as a Locust LoadTestShape (loaded with ``-f``, inside the Locust process).

RT_SHAPE holds the shape as JSON (see :mod:`resilience_tests.load.shapes`).
"""

from __future__ import annotations

import os

from locust import LoadTestShape

from resilience_tests.load.shapes import shape_from_env

SHAPE = shape_from_env(os.environ.get("RT_SHAPE", '{"type": "constant", "users": 10, "duration": 60}'))


class ExperimentShape(LoadTestShape):
    """Follows the shape in RT_SHAPE, then ends the run."""

    def tick(self) -> tuple[int, float] | None:
        return SHAPE.tick(self.get_run_time())
