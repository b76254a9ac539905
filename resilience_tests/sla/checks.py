"""SLA checks: pure functions from :class:`Evidence` to :class:`Verdict`.

Each check is a frozen model (so experiments declare it in YAML and tests build
it in Python) with ``evaluate(evidence) -> Verdict``. A verdict carries whether
it passed, the measured value, the threshold, the window and the evidence that
explains it (which requests failed when, which pod was terminating, which zone
held how many replicas).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from resilience_tests.cluster.timeline import Record
from resilience_tests.load.samples import Failure, Totals, totals
from resilience_tests.schema import Duration, Model, Percent
from resilience_tests.sla.evidence import Evidence, Window

MAX_EVIDENCE = 8
# A pod may need this long beyond its grace period to be seen exiting (kubelet and watch latency).
EXIT_SLACK_S = 3.0


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check."""

    check: str
    passed: bool
    measured: str
    threshold: str
    window: str
    evidence: tuple[str, ...] = field(default_factory=tuple)

    @property
    def message(self) -> str:
        state = "passed" if self.passed else "FAILED"
        text = f"{self.check} {state}: measured {self.measured}, required {self.threshold}, window {self.window}"
        if self.evidence:
            text += "\n" + "\n".join(f"  - {line}" for line in self.evidence)
        return text


class _Check(Model):
    window: str = "whole"

    @property
    def label(self) -> str:
        return str(getattr(self, "type", type(self).__name__))

    def evaluate(self, ev: Evidence) -> Verdict:  # pragma: no cover - overridden
        raise NotImplementedError

    def _verdict(self, ev: Evidence, window: Window, passed: bool, measured: str, threshold: str,
                 evidence: list[str] | tuple[str, ...] = ()) -> Verdict:
        return Verdict(self.label, passed, measured, threshold, window.describe(ev.started), tuple(evidence))


class _LoadCheck(_Check):
    """A check over the load samples; never passes on load that did not run to its end."""

    allow_incomplete_load: bool = False

    def evaluate(self, ev: Evidence) -> Verdict:
        window = ev.window(self.window)
        if ev.load_complete is None:
            return self._verdict(ev, window, False, "no load", "a load section in the experiment",
                                 ["this check reads load samples; add `load:` to the experiment"])
        if not ev.load_complete and not self.allow_incomplete_load:
            return self._verdict(ev, window, False, "incomplete load", "load that ran to its end",
                                 [ev.load_problem or "Locust stopped before its shape ended"])
        t = totals(ev.samples, window.start, window.end)
        if t.requests == 0:
            return self._verdict(ev, window, False, "0 requests", "requests in the window",
                                 ["no request was sent in this window: is the load shape long enough?"])
        return self._judge(ev, window, t)

    def _judge(self, ev: Evidence, window: Window, t: Totals) -> Verdict:  # pragma: no cover - overridden
        raise NotImplementedError


def _failure_lines(ev: Evidence, failures: tuple[Failure, ...], t_reasons: Counter[str]) -> list[str]:
    lines = [f"reasons: {dict(t_reasons.most_common(5))}"] if t_reasons else []
    for failure in failures[:MAX_EVIDENCE]:
        pod = f" answered by {failure.pod}" if failure.pod else ""
        lines.append(f"+{failure.t - ev.started:.2f}s {failure.name}: {failure.reason}{pod}{_near(ev, failure.t)}")
    if len(failures) > MAX_EVIDENCE:
        lines.append(f"... and {len(failures) - MAX_EVIDENCE} more")
    return lines


def _near(ev: Evidence, t: float) -> str:
    """What the target's pods were doing around ``t`` (terminating pods at that moment)."""
    terminating = sorted({r.name.split("/")[-1] for r in ev.pod_records
                          if r.get("terminating") and r.t <= t} - _gone_before(ev, t))
    return f" (terminating then: {', '.join(terminating[:3])})" if terminating else ""


def _gone_before(ev: Evidence, t: float) -> set[str]:
    return {r.name.split("/")[-1] for r in ev.pod_records if r.change == "deleted" and r.t <= t}


class NoFailedRequests(_LoadCheck):
    """Not a single request failed in the window."""

    type: Literal["no-failed-requests"] = "no-failed-requests"

    def _judge(self, ev: Evidence, window: Window, t: Totals) -> Verdict:
        return self._verdict(ev, window, t.failures == 0, f"{t.failures} of {t.requests} requests failed",
                             "0 failed", _failure_lines(ev, t.failed, t.reasons))


class ErrorRate(_LoadCheck):
    """Failed requests / all requests in the window at most ``max``."""

    type: Literal["error-rate"] = "error-rate"
    max: Percent

    def _judge(self, ev: Evidence, window: Window, t: Totals) -> Verdict:
        rate = t.error_rate
        return self._verdict(ev, window, rate <= self.max, f"{rate:.2%} ({t.failures}/{t.requests})",
                             f"<= {self.max:.2%}", _failure_lines(ev, t.failed, t.reasons) if rate > self.max else [])


class Latency(_LoadCheck):
    """The ``percentile`` of request latency in the window at most ``max``."""

    type: Literal["latency"] = "latency"
    percentile: float = Field(default=99.0, gt=0, le=100)
    max: Duration

    def _judge(self, ev: Evidence, window: Window, t: Totals) -> Verdict:
        value = t.percentile(self.percentile)
        limit_ms = self.max * 1000
        worst = sorted(((s.t, max(s.hist)) for s in ev.samples if s.hist and s.t + 1 > window.start
                        and s.t < window.end), key=lambda x: -x[1])[:3]
        lines = ["slowest seconds: " + ", ".join(f"+{w[0] - ev.started:.0f}s max {w[1]} ms" for w in worst)]
        return self._verdict(ev, window, value is not None and value <= limit_ms,
                             f"p{self.percentile:g} = {value:.0f} ms" if value is not None else "no latency",
                             f"<= {limit_ms:.0f} ms", lines if value is None or value > limit_ms else [])


class Availability(_LoadCheck):
    """Share of the window's seconds that were up (some request succeeded, fewer than half failed)."""

    type: Literal["availability"] = "availability"
    min: Percent

    def _judge(self, ev: Evidence, window: Window, t: Totals) -> Verdict:
        seconds = [s for s in ev.samples if s.t + 1 > window.start and s.t < window.end]
        down = [s for s in seconds if not (s.requests > s.failures and s.failures * 2 < s.requests)]
        up = len(seconds) - len(down)
        share = up / len(seconds) if seconds else 0.0
        lines = [f"+{s.t - ev.started:.0f}s: {s.failures}/{s.requests} failed" for s in down]
        return self._verdict(ev, window, share >= self.min, f"{share:.2%} ({up}/{len(seconds)} s up)",
                             f">= {self.min:.2%}", lines[:MAX_EVIDENCE] if share < self.min else [])


class Throughput(_LoadCheck):
    """Successful requests per second over the window at least ``min``."""

    type: Literal["throughput"] = "throughput"
    min: float = Field(gt=0)

    def _judge(self, ev: Evidence, window: Window, t: Totals) -> Verdict:
        ok = t.requests - t.failures
        rate = ok / t.seconds if t.seconds else 0.0
        return self._verdict(ev, window, rate >= self.min, f"{rate:.1f} successful requests/s",
                             f">= {self.min:g}/s", [f"{ok} successful in {t.seconds} s"])


class ZoneSpread(_Check):
    """Ready replicas per zone (at the snapshot): skew at most ``max_skew``, at least ``min_zones`` zones."""

    type: Literal["zone-spread"] = "zone-spread"
    max_skew: int = Field(default=1, ge=0)
    min_zones: int = Field(default=2, ge=1)

    def evaluate(self, ev: Evidence) -> Verdict:
        window = Window("snapshot", ev.snapshot.t if ev.snapshot else ev.ended,
                        ev.snapshot.t if ev.snapshot else ev.ended)
        if ev.snapshot is None:
            return self._verdict(ev, window, False, "no snapshot", "a snapshot of the target")
        by_zone = ev.snapshot.ready_by_zone()
        used = [z for z, n in by_zone.items() if n > 0]
        skew = (max(by_zone.values()) - min(by_zone.values())) if by_zone else 0
        passed = len(used) >= self.min_zones and skew <= self.max_skew
        return self._verdict(ev, window, passed, f"{len(used)} zones, skew {skew}",
                             f">= {self.min_zones} zones, skew <= {self.max_skew}",
                             [f"ready replicas per zone: {dict(sorted(by_zone.items()))}"])


class SurvivesZoneLoss(_Check):
    """If any one zone were lost, at least ``min_capacity`` of the desired replicas would stay ready."""

    type: Literal["survives-zone-loss"] = "survives-zone-loss"
    min_capacity: Percent

    def evaluate(self, ev: Evidence) -> Verdict:
        snap = ev.snapshot
        window = Window("snapshot", snap.t if snap else ev.ended, snap.t if snap else ev.ended)
        if snap is None or snap.desired <= 0:
            return self._verdict(ev, window, False, "no snapshot", "a snapshot with desired replicas")
        by_zone = snap.ready_by_zone()
        total = sum(by_zone.values())
        worst_zone, worst = min(((z, (total - n) / snap.desired) for z, n in by_zone.items()),
                                key=lambda x: x[1], default=("-", total / snap.desired))
        return self._verdict(ev, window, worst >= self.min_capacity,
                             f"{worst:.0%} left after losing {worst_zone}", f">= {self.min_capacity:.0%}",
                             [f"ready replicas per zone: {dict(sorted(by_zone.items()))}, desired {snap.desired}"])


@dataclass
class _Termination:
    pod: str
    since: float
    grace: float
    exit_code: int | None = None
    exited: float | None = None
    reason: str = ""


def terminations(records: list[Record], window: Window) -> list[_Termination]:
    """Pods that started terminating inside ``window``, with their final exit code and time."""
    found: dict[str, _Termination] = {}
    for record in records:
        pod = record.name.split("/")[-1]
        if record.get("terminating") and pod not in found and record.t in window:
            found[pod] = _Termination(pod, record.t, float(record.get("grace") or 30))
        term = found.get(pod)
        if term is None or term.exit_code is not None:
            continue
        codes = [(k, v) for k, v in record.details if k.startswith("exit.") and v is not None]
        if codes:
            worst = max(codes, key=lambda kv: int(str(kv[1])))
            term.exit_code, term.exited = int(str(worst[1])), record.t
            term.reason = str(record.get("reason." + worst[0].split(".", 1)[1]) or "")
    return list(found.values())


class GracefulShutdown(_LoadCheck):
    """Every pod terminated in the window exited 0 on its own within its grace period (no SIGKILL, exit 137),
    and no request failed while one of them was shutting down."""

    type: Literal["graceful-shutdown"] = "graceful-shutdown"
    window: str = "faults"
    require_load: bool = True

    def evaluate(self, ev: Evidence) -> Verdict:
        if ev.load_complete is None and not self.require_load:
            return self._judge(ev, ev.window(self.window), None)
        return super().evaluate(ev)

    def _judge(self, ev: Evidence, window: Window, t: Totals | None) -> Verdict:
        terms = terminations(ev.pod_records, window)
        bad = []
        for term in terms:
            if term.exit_code is None:
                continue  # still terminating at the end (e.g. on a dead node): nothing to judge yet
            took = (term.exited or term.since) - term.since
            if term.exit_code != 0 or took > term.grace + EXIT_SLACK_S:
                how = "killed (SIGKILL)" if term.exit_code == 137 else f"exited {term.exit_code}"
                bad.append(f"{term.pod}: {how} {took:.1f}s after termination began (grace {term.grace:.0f}s)"
                           + (f", reason {term.reason}" if term.reason else ""))
        failed: list[Failure] = []
        if t is not None:
            spans = [(x.since, (x.exited or window.end) + 1.0) for x in terms]
            failed = [f for f in t.failed if any(a <= f.t <= b for a, b in spans)]
        judged = sum(1 for x in terms if x.exit_code is not None)
        evidence = bad[:MAX_EVIDENCE] + [f"request failed during a shutdown: +{f.t - ev.started:.2f}s {f.reason}"
                                         + (f" (answered by {f.pod})" if f.pod else "") for f in failed[:MAX_EVIDENCE]]
        if not terms:
            evidence.append("no pod of the target terminated in this window")
        return self._verdict(ev, window, not bad and not failed,
                             f"{len(bad)} of {judged} terminations not graceful, {len(failed)} requests failed "
                             "during shutdowns", "every pod exits 0 within its grace period, 0 failed requests",
                             evidence)


class RecoveryTime(_Check):
    """From the fault's end (or start) until ready replicas are back to desired: at most ``max``."""

    type: Literal["recovery-time"] = "recovery-time"
    max: Duration
    window: str = "faults"
    from_: Literal["end", "start"] = Field(default="end", alias="from")

    def evaluate(self, ev: Evidence) -> Verdict:
        window = ev.window(self.window)
        origin = window.end if self.from_ == "end" else window.start
        desired = ev.snapshot.desired if ev.snapshot else 0
        if desired <= 0:
            return self._verdict(ev, window, False, "unknown desired replicas", f"<= {self.max:g}s")
        ready: dict[str, bool] = {}
        recovered: float | None = None
        low = desired
        for record in ev.pod_records:
            pod = record.name.split("/")[-1]
            ready[pod] = bool(record.get("ready")) and not record.get("terminating") and record.change != "deleted"
            count = sum(ready.values())
            if record.t >= origin - 1e-6:
                low = min(low, count)
                if count >= desired and recovered is None and record.t >= origin:
                    recovered = record.t
            if record.t >= origin and count < desired:
                recovered = None
        if recovered is None and sum(ready.values()) >= desired:
            recovered = origin  # never dropped after the origin
        took = None if recovered is None else max(0.0, recovered - origin)
        passed = took is not None and took <= self.max
        measured = f"{took:.1f}s" if took is not None else "not recovered by the end of the run"
        return self._verdict(ev, window, passed, measured, f"<= {self.max:g}s",
                             [f"ready replicas {sum(ready.values())}/{desired} at the end; lowest after the "
                              f"{self.from_} of the window: {low}"])


Check = Annotated[NoFailedRequests | ErrorRate | Latency | Availability | Throughput | ZoneSpread
                  | SurvivesZoneLoss | GracefulShutdown | RecoveryTime, Field(discriminator="type")]
_ADAPTER: TypeAdapter[Check] = TypeAdapter(Check)


def parse_check(data: object) -> Check:
    """A check from its mapping (``{"type": "latency", "percentile": 99, "max": "300ms"}``)."""
    return _ADAPTER.validate_python(data)


def evaluate(checks: list[Check] | tuple[Check, ...], evidence: Evidence) -> list[Verdict]:
    """Evaluate every check; a check that cannot be evaluated fails with the reason."""
    from resilience_tests.errors import ResilienceError

    verdicts = []
    for check in checks:
        try:
            verdicts.append(check.evaluate(evidence))
        except ResilienceError as exc:
            verdicts.append(Verdict(check.label, False, "not evaluated", "-", check.window, (str(exc),)))
    return verdicts
