"""Locust listener: per-second samples streamed to the file named by ``RT_SAMPLES``.

Loaded into the Locust process with ``-f`` next to the locustfile (never imported by
pytest). Without ``RT_SAMPLES`` it does nothing. In a distributed run each worker
sends its buckets to the master inside Locust's own worker reports
(``report_to_master`` / ``worker_report``); the master merges and writes them. A
second is written once it can no longer change (2 s later locally, 8 s later on a
master, which hears from workers every 3 s); everything left is written when Locust
quits, followed by ``{"done": <time>, "exit_code": <code>}``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, TextIO

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from resilience_tests.load.samples import Sample

OUT = os.environ.get("RT_SAMPLES", "")
_buckets: dict[int, Sample] = {}


class _State:
    lag = 2.0
    handle: TextIO | None = None


_state = _State()


def reason_of(exception: BaseException | None, response: Any = None) -> str:
    """A short, countable failure reason: ``HTTP 503``, ``connection refused``, ``timeout``, ..."""
    status = getattr(response, "status_code", None)
    if status and int(status) >= 400:
        return f"HTTP {status}"
    text = f"{type(exception).__name__}: {exception}".lower() if exception else ""
    for needle, reason in (("refused", "connection refused"), ("reset", "connection reset"),
                           ("timed out", "timeout"), ("timeout", "timeout"), ("remotedisconnected", "disconnected"),
                           ("connectionclosed", "disconnected"), ("unreachable", "unreachable"),
                           ("broken pipe", "broken pipe")):
        if needle in text:
            return reason
    return type(exception).__name__ if exception else "failed"


@events.request.add_listener
def _on_request(request_type: str, name: str, response_time: float, exception: BaseException | None = None,
                response: Any = None, start_time: float | None = None, **_: Any) -> None:
    if not OUT:
        return
    started = start_time if start_time is not None else time.time() - (response_time or 0) / 1000
    second = int(started)
    sample = _buckets.get(second)
    if sample is None:
        sample = _buckets[second] = Sample(second)
    pod = ""
    if response is not None and exception is not None:
        headers = getattr(response, "headers", None)
        pod = (headers.get("X-Pod") or "") if headers is not None else ""
    sample.add(response_time or 0.0, failed=exception is not None, t=round(started, 3),
               name=f"{request_type} {name}", reason=reason_of(exception, response) if exception else "", pod=pod)


@events.report_to_master.add_listener
def _to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
    if OUT:
        data["rt_samples"] = [s.to_json() for s in _buckets.values()]
        _buckets.clear()


@events.worker_report.add_listener
def _from_worker(client_id: str, data: dict[str, Any], **_: Any) -> None:
    for raw in data.get("rt_samples", []):
        sample = Sample.from_json(raw)
        mine = _buckets.get(sample.t)
        if mine is None:
            _buckets[sample.t] = sample
        else:
            mine.merge(sample)


def _write(upto: float) -> None:
    if _state.handle is None:
        _state.handle = open(OUT, "a", buffering=1)  # noqa: SIM115 - closed at quit
    handle = _state.handle
    for second in sorted(t for t in _buckets if t < upto):
        handle.write(json.dumps(_buckets.pop(second).to_json()) + "\n")


def _flusher() -> None:
    while True:
        gevent.sleep(1.0)
        _write(time.time() - _state.lag)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    if not OUT or isinstance(environment.runner, WorkerRunner):
        return
    if isinstance(environment.runner, MasterRunner):
        _state.lag = 8.0
    gevent.spawn(_flusher)


@events.quitting.add_listener
def _on_quit(environment: Environment, **_: Any) -> None:
    if not OUT or isinstance(environment.runner, WorkerRunner):
        return
    _write(float("inf"))
    handle = _state.handle or open(OUT, "a")  # noqa: SIM115
    handle.write(json.dumps({"done": time.time(), "exit_code": environment.process_exit_code}) + "\n")
    handle.close()
    _state.handle = None
