"""Locust listener: one sample per second, every second, streamed to the file named by ``RT_SAMPLES``.

Loaded into the Locust process with ``-f`` next to the locustfile (never imported by
pytest). Without ``RT_SAMPLES`` it does nothing.

- A request belongs to the second it was *sent* in, whatever its answer and however late it
  comes. Locust's HTTP clients (``HttpSession``, ``FastHttpSession``) are wrapped so that the
  listener knows which requests are still waiting for an answer, and since when.
- A second is written once it is final: it ended at least ``FINAL_AFTER`` ago and every request
  sent in it has its answer (success, failure or timeout). Seconds are written in order, each
  exactly once, including seconds in which nothing was sent; each says how many users were active,
  how many requests were open, and how many requests sent earlier were still waiting during it.
- A second still waiting ``MAX_HOLD`` after it ended is written with those requests as unanswered;
  an answer that comes later is written as an ``amends`` line that readers merge into its second.
- A request Locust abandons (its user stopped while it waited) is counted as unanswered.
- With workers, each worker applies the same rule and ships its final seconds inside Locust's
  worker reports, with the oldest second it still holds; the master writes a second once every
  worker heard from in the last ``WORKER_SILENT`` seconds has shipped it.

When Locust quits, everything left is written, followed by ``{"done": <time>, "exit_code": <code>}``.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TextIO

import gevent
from gevent import GreenletExit
from locust import events
from locust.clients import HttpSession
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from locust.runners import MasterRunner, Runner, WorkerRunner

from resilience_tests.load.samples import Sample

OUT = os.environ.get("RT_SAMPLES", "")
FINAL_AFTER = 1.0
MAX_HOLD = 60.0
WORKER_SILENT = 10.0
TICK = 0.5
MAX_CARRY = 3600  # seconds a single request can be carried over


class _Stream:
    """The seconds of this process and the rule that makes one final."""

    def __init__(self) -> None:
        self.role = "local"
        self.runner: Runner | None = None
        self.buckets: dict[int, Sample] = {}
        self.late: dict[int, Sample] = {}  # parts of seconds already written
        self.waiting: Counter[int] = Counter()  # second sent -> requests still waiting for an answer
        self.held: Counter[int] = Counter()  # second -> requests written as unanswered at MAX_HOLD
        self.open = 0
        self.next: int | None = None  # the oldest second not written yet
        self.marks: dict[str, tuple[int, float]] = {}  # master: worker -> (its oldest unshipped second, heard)
        self.outbox: list[Sample] = []  # worker: final seconds not yet shipped
        self.stopped = False
        self.handle: TextIO | None = None

    # ------------------------------------------------------------ buckets
    def bucket(self, second: int) -> Sample:
        """The sample of ``second`` (a late part if that second was written already)."""
        if self.next is not None and second < self.next:
            part = self.late.get(second)
            if part is None:
                part = self.late[second] = Sample(second, amends=True)
            return part
        sample = self.buckets.get(second)
        if sample is None:
            sample = self.buckets[second] = Sample(second)
        return sample

    def begin(self) -> int:
        second = int(time.time())
        self.waiting[second] += 1
        self.open += 1
        sample = self.bucket(second)
        sample.open = max(sample.open, self.open)
        return second

    def end(self, second: int, answered: bool) -> None:
        self.waiting[second] -= 1
        if self.waiting[second] <= 0:
            del self.waiting[second]
        self.open -= 1
        if answered:
            return
        if self.held[second] > 0:
            self.held[second] -= 1  # written as unanswered already
        else:
            self.bucket(second).unanswered += 1
        for later in range(second + 1, min(int(time.time()), second + MAX_CARRY) + 1):
            self.bucket(later).carry(answered=False)

    def answer(self, started: float, latency_ms: float, failed: bool, **failure: Any) -> None:
        second = int(started)
        sample = self.bucket(second)
        sample.add(latency_ms, failed=failed, t=round(started, 3), **failure)
        if self.held[second] > 0:  # written as unanswered at MAX_HOLD; this is its answer
            self.held[second] -= 1
            sample.resolved += 1
        answered_at = int(started + latency_ms / 1000)
        for later in range(second + 1, min(answered_at, second + MAX_CARRY) + 1):
            self.bucket(later).carry(failed=failed)

    # ------------------------------------------------------------ finality
    def final(self, second: int, now: float) -> bool:
        if now >= second + 1 + MAX_HOLD:
            return True
        if now < second + 1 + FINAL_AFTER or self.waiting.get(second, 0) > 0:
            return False
        if self.role == "master":
            heard = [nxt for nxt, when in self.marks.values() if now - when < WORKER_SILENT]
            return bool(heard) and second < min(heard)
        return True

    def tick(self, now: float, flush_all: bool = False) -> list[Sample]:
        """Record this second's users and open requests; return the seconds that became final, in order."""
        current = int(now)
        if self.runner is not None and self.role != "worker":
            sample = self.bucket(current)
            sample.users = max(sample.users, self.runner.user_count)
            sample.open = max(sample.open, self.open)
        if self.next is None:
            self.next = min([current, *self.buckets])
        last = max([current - 1, *self.buckets]) if flush_all else current - 1
        out: list[Sample] = []
        while self.next <= last and (flush_all or self.final(self.next, now)):
            sample = self.buckets.pop(self.next) if self.next in self.buckets else Sample(self.next)
            waiting = self.waiting.get(self.next, 0)
            if waiting:
                sample.unanswered += waiting
                self.held[self.next] += waiting
            out.append(sample)
            self.next += 1
        out += [self.late.pop(t) for t in sorted(self.late)]
        return out

    def write(self, samples: list[Sample]) -> None:
        if not samples:
            return
        if self.handle is None:
            self.handle = open(OUT, "a", buffering=1)  # noqa: SIM115 - closed at quit
        self.handle.write("".join(json.dumps(s.to_json()) + "\n" for s in samples))


_stream = _Stream()


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


def request_name(request_type: str, name: str) -> str:
    """``GET /`` from ("GET", "/") and from ("GET", "GET /") alike."""
    return name if name.startswith(f"{request_type} ") else f"{request_type} {name}"


def _tracked(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a client's ``request`` so the listener knows which requests are still waiting."""

    @functools.wraps(original)
    def request(self: Any, *args: Any, **kwargs: Any) -> Any:
        second = _stream.begin()
        answered = True
        try:
            return original(self, *args, **kwargs)
        except GreenletExit:
            answered = False  # the user was stopped while it waited: no answer will ever come
            raise
        finally:
            _stream.end(second, answered)

    request.__rt_tracked__ = True  # type: ignore[attr-defined]
    return request


if OUT:
    for _client in (HttpSession, FastHttpSession):
        if not getattr(_client.request, "__rt_tracked__", False):
            _client.request = _tracked(_client.request)  # type: ignore[method-assign]


@events.request.add_listener
def _on_request(request_type: str, name: str, response_time: float, exception: BaseException | None = None,
                response: Any = None, start_time: float | None = None, **_: Any) -> None:
    if not OUT:
        return
    latency = response_time or 0.0
    started = start_time if start_time is not None else time.time() - latency / 1000
    pod = ""
    if response is not None and exception is not None:
        headers = getattr(response, "headers", None)
        pod = (headers.get("X-Pod") or "") if headers is not None else ""
    _stream.answer(started, latency, exception is not None, name=request_name(request_type, name),
                   reason=reason_of(exception, response) if exception else "", pod=pod)


@events.report_to_master.add_listener
def _to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
    if not OUT:
        return
    _stream.outbox += _stream.tick(time.time(), flush_all=_stream.stopped)
    data["rt_samples"] = [s.to_json() for s in _stream.outbox]
    data["rt_next"] = _stream.next
    _stream.outbox.clear()


@events.worker_report.add_listener
def _from_worker(client_id: str, data: dict[str, Any], **_: Any) -> None:
    if not OUT:
        return
    for raw in data.get("rt_samples", []):
        part = Sample.from_json(raw)
        _stream.bucket(part.t).merge(part)
    if data.get("rt_next") is not None:
        _stream.marks[client_id] = (int(data["rt_next"]), time.time())


def _flusher() -> None:
    while True:
        gevent.sleep(TICK)
        _stream.write(_stream.tick(time.time()))


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    if not OUT:
        return
    _stream.runner = environment.runner
    if isinstance(environment.runner, WorkerRunner):
        _stream.role = "worker"
        return
    if isinstance(environment.runner, MasterRunner):
        _stream.role = "master"
    gevent.spawn(_flusher)


@events.test_stop.add_listener
def _on_stop(environment: Environment, **_: Any) -> None:
    _stream.stopped = True  # a worker ships everything it holds from now on


@events.quitting.add_listener
def _on_quit(environment: Environment, **_: Any) -> None:
    if not OUT or _stream.role == "worker":
        return
    _stream.write(_stream.tick(time.time(), flush_all=True))
    handle = _stream.handle or open(OUT, "a")  # noqa: SIM115
    handle.write(json.dumps({"done": time.time(), "exit_code": environment.process_exit_code}) + "\n")
    handle.close()
    _stream.handle = None
