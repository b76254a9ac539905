"""Users that GET the target over and over, the load of most experiments.

Plain Locust works too:  locust -f loadprofiles/web.py --host http://127.0.0.1:30080
Environment: RT_PATH (default "/"), RT_WAIT (seconds between a user's requests, default 0.1).
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task


class WebUser(FastHttpUser):
    """One visitor: a GET every RT_WAIT seconds, each on the user's own keep-alive connection."""

    wait_time = constant(float(os.environ.get("RT_WAIT", "0.1")))
    network_timeout = float(os.environ.get("RT_TIMEOUT", "5"))
    connection_timeout = float(os.environ.get("RT_TIMEOUT", "5"))

    @task
    def get(self) -> None:
        self.client.get(os.environ.get("RT_PATH", "/"), name="GET " + os.environ.get("RT_PATH", "/"))
