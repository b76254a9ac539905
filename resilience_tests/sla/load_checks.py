"""Checks over the load samples: no-failed-requests, error-rate, latency, availability, throughput."""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import Field

from resilience_tests.load.samples import Failure, Totals
from resilience_tests.schema import Duration, Percent
from resilience_tests.sla.base import MAX_EVIDENCE, LoadCheck, Verdict
from resilience_tests.sla.evidence import Evidence, Measure, Window


def _failure_lines(ev: Evidence, failures: tuple[Failure, ...], t_reasons: Counter[str]) -> list[str]:
    lines = [f"reasons: {dict(t_reasons.most_common(5))}"] if t_reasons else []
    for failure in failures[:MAX_EVIDENCE]:
        pod = f" answered by {failure.pod}" if failure.pod else ""
        lines.append(f"{ev.offset(failure.t)} {failure.name}: {failure.reason}{pod}{_near(ev, failure.t)}")
    if len(failures) > MAX_EVIDENCE:
        lines.append(f"... and {len(failures) - MAX_EVIDENCE} more")
    return lines


def _coverage_lines(ev: Evidence, t: Totals) -> list[str]:
    """What the window's seconds were: how many had nothing sent, were missing, or ended with requests open."""
    lines = [f"{t.seconds} s of load judged: {t.up} up, {t.down} down, {t.idle} idle (no user sent or waited)"]
    if t.silent:
        lines.append(f"{t.silent} s with nothing sent: every active user was waiting on an answer")
    if t.missing:
        lines.append(f"{t.missing} s missing from the sample stream (counted as down)")
    if t.carried_in:
        lines.append(f"{t.carried_in} requests sent before the window were still waiting at its start "
                     f"({t.carried_in_failed} of them failed, {t.carried_in_unanswered} never answered)")
    if t.in_flight_at_end:
        lines.append(f"{t.in_flight_at_end} requests sent before the window's end were still waiting at its end "
                     "(their answers are counted)")
    if t.unanswered:
        lines.append(f"{t.unanswered} requests sent in the window never got an answer (the load stopped first)")
    return lines


def _pp(value: float, limit: float) -> str:
    return f"by {abs(value - limit) * 100:.2f} pp"


def _near(ev: Evidence, t: float) -> str:
    """What the target's pods were doing around ``t`` (terminating pods at that moment)."""
    terminating = sorted({r.pod for r in ev.pod_records if r.state.terminating and r.t <= t} - _gone_before(ev, t))
    return f" (terminating then: {', '.join(terminating[:3])})" if terminating else ""


def _gone_before(ev: Evidence, t: float) -> set[str]:
    return {r.pod for r in ev.pod_records if r.change == "deleted" and r.t <= t}


class NoFailedRequests(LoadCheck):
    """Not a single request failed in the window: neither one sent in it (however late its answer came), nor
    one sent before it that was still waiting in it, nor one that never got an answer."""

    type: Literal["no-failed-requests"] = "no-failed-requests"

    def _judge(self, ev: Evidence, window: Window, t: Totals) -> Verdict:
        bad = t.failures + t.carried_in_failed + t.carried_in_unanswered + t.unanswered
        seen = t.requests + t.carried_in + t.unanswered
        lines = _failure_lines(ev, t.failed, t.reasons) + (_coverage_lines(ev, t) if bad or t.silent or t.down else [])
        return self._verdict(ev, window, bad == 0 and t.down == 0,
                             f"{bad} of {seen} requests failed" + (f", {t.down} s down" if t.down else ""),
                             "0 failed", lines, numbers=Measure(bad, 0, "requests"))


class ErrorRate(LoadCheck):
    """Failed requests / all requests in the window at most ``max`` (requests sent before the window and
    still waiting in it count; so do requests that never got an answer, as failed)."""

    type: Literal["error-rate"] = "error-rate"
    max: Percent

    def _judge(self, ev: Evidence, window: Window, t: Totals) -> Verdict:
        bad = t.failures + t.carried_in_failed + t.carried_in_unanswered + t.unanswered
        seen = t.requests + t.carried_in + t.unanswered
        rate = bad / seen if seen else 1.0
        passed = rate <= self.max and seen > 0
        lines = (_failure_lines(ev, t.failed, t.reasons) + _coverage_lines(ev, t)) if not passed else []
        return self._verdict(ev, window, passed, f"{rate:.2%} ({bad}/{seen})", f"<= {self.max:.2%}", lines,
                             _pp(rate, self.max), Measure(rate, self.max, "ratio"))


class Latency(LoadCheck):
    """The ``percentile`` of request latency in the window at most ``max`` (a request that timed out counts
    with the time it waited)."""

    type: Literal["latency"] = "latency"
    percentile: float = Field(default=99.0, gt=0, le=100)
    max: Duration

    def _judge(self, ev: Evidence, window: Window, t: Totals) -> Verdict:
        value = t.percentile(self.percentile)
        limit_ms = self.max * 1000
        worst = sorted(((s.t, max(s.hist)) for s in ev.samples if s.hist and s.t + 1 > window.start
                        and s.t < window.end), key=lambda x: -x[1])[:3]
        lines = ["slowest seconds: " + ", ".join(f"{ev.offset(w[0], 0)} max {w[1]} ms" for w in worst)]
        passed = value is not None and value <= limit_ms
        if t.silent or t.unanswered:
            lines += _coverage_lines(ev, t)
        return self._verdict(ev, window, passed,
                             f"p{self.percentile:g} = {value:.0f} ms" if value is not None else "no latency",
                             f"<= {limit_ms:.0f} ms", lines if not passed else [],
                             f"by {limit_ms - value:.0f} ms" if value is not None else "",
                             Measure(value, limit_ms, "ms"))


class Availability(LoadCheck):
    """Share of the window's seconds that were up. Every second of load counts: one in which users only
    waited on answers that never came or then failed is down, and so is one missing from the stream;
    seconds in which no user sent or waited on a request are idle and not judged."""

    type: Literal["availability"] = "availability"
    min: Percent

    def _judge(self, ev: Evidence, window: Window, t: Totals) -> Verdict:
        share = t.availability
        passed = share >= self.min and t.up + t.down > 0
        lines = _coverage_lines(ev, t)
        if not passed:
            lines.append("down: " + ", ".join(ev.offset(s, 0) for s in t.down_seconds[:MAX_EVIDENCE * 2])
                         + (" ..." if len(t.down_seconds) > MAX_EVIDENCE * 2 else ""))
        return self._verdict(ev, window, passed, f"{share:.2%} ({t.up}/{t.up + t.down} s up)",
                             f">= {self.min:.2%}", lines, _pp(share, self.min),
                             Measure(share, self.min, "ratio", at_most=False))


class Throughput(LoadCheck):
    """Successful requests per second of the window (every second of load counted, idle or not) at
    least ``min``."""

    type: Literal["throughput"] = "throughput"
    min: float = Field(gt=0)

    def _judge(self, ev: Evidence, window: Window, t: Totals) -> Verdict:
        rate = t.throughput
        lines = [f"{t.ok} successful in {t.seconds} s"] + (_coverage_lines(ev, t)[1:] if rate < self.min else [])
        return self._verdict(ev, window, rate >= self.min, f"{rate:.1f} successful requests/s",
                             f">= {self.min:g}/s", lines, f"by {rate - self.min:.1f}/s",
                             Measure(rate, self.min, "req/s", at_most=False))
