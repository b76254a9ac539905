"""The load shape named by RT_SHAPE, for plain Locust runs.

  RT_SHAPE='{"type": "ramp", "users": 50, "ramp": 30, "hold": 60}' \
    locust -f loadprofiles/web.py,loadprofiles/shape.py --headless --host http://127.0.0.1:30080

Types and parameters: constant, ramp, steps, spike, progressive (docs/load.md).
Add resilience_tests/load/locust_listener.py to -f and set RT_SAMPLES=FILE to get per-second samples.
"""

from resilience_tests.load.locust_shape import ExperimentShape

__all__ = ["ExperimentShape"]
