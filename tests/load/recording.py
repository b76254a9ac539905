"""A locustfile that records Locust's own per-request events, and the truth computed from them.

Tests compare what the SLA checks measured with this independent record: the listener buckets, carries and
finalises seconds; this file only appends what Locust reported, one line per request.
"""

from __future__ import annotations

RECORDING_LOCUSTFILE = '''
import json, os
from locust import FastHttpUser, constant, events, task

class Web(FastHttpUser):
    wait_time = constant(float(os.environ["RT_WAIT"]))
    network_timeout = connection_timeout = float(os.environ["RT_TIMEOUT"])

    @task
    def get(self):
        self.client.get("/", name="GET /")

@events.request.add_listener
def record(request_type, name, response_time, exception=None, start_time=None, **kwargs):
    with open(os.environ["RT_TEST_RECORD"], "a") as out:
        out.write(json.dumps([start_time, response_time, exception is not None]) + "\\n")
'''


def truth_by_second(records: list[list[float]]) -> dict[int, tuple[int, int, int, int]]:
    """From Locust's own per-request events: per second, (requests sent, of them failed, requests sent earlier
    and still waiting, of them failed)."""
    out: dict[int, list[int]] = {}
    for start, latency, failed in records:
        first, answered = int(start), int(start + latency / 1000)
        row = out.setdefault(first, [0, 0, 0, 0])
        row[0] += 1
        row[1] += int(failed)
        for second in range(first + 1, answered + 1):
            later = out.setdefault(second, [0, 0, 0, 0])
            later[2] += 1
            later[3] += int(failed)
    return {k: (v[0], v[1], v[2], v[3]) for k, v in out.items()}


def true_availability(truth: dict[int, tuple[int, int, int, int]]) -> tuple[int, int]:
    """(seconds up, seconds judged) from :func:`truth_by_second`: a second is judged when a request was sent or
    waited on in it, and up when some of those succeeded and fewer than half failed."""
    up = sum(1 for sent, failed, carried, c_failed in truth.values()
             if (sent - failed) + (carried - c_failed) > 0 and (failed + c_failed) * 2 < sent + carried)
    return up, len([v for v in truth.values() if v[0] or v[2]])
