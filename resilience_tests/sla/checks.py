"""SLA checks: pure functions from :class:`Evidence` to :class:`Verdict`.

Each check is a frozen model (so experiments declare it in YAML and tests build
it in Python) with ``evaluate(evidence) -> Verdict``. A verdict carries whether
it passed, the measured value, the threshold, the window and the evidence that
explains it (which requests failed when, which pod was terminating, which zone
held how many replicas).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal, TypeVar

from pydantic import Field, TypeAdapter

from resilience_tests.backup.actions import BackupTaken, DisasterStruck, Restored
from resilience_tests.cluster.ready import replay_ready
from resilience_tests.cluster.timeline import PodRecord
from resilience_tests.load.samples import Failure, Totals, totals
from resilience_tests.schema import Duration, Model, Percent
from resilience_tests.sla.evidence import Evidence, Measure, Window

MAX_EVIDENCE = 8
# A pod may need this long beyond its grace period to be seen exiting (kubelet and watch latency).
EXIT_SLACK_S = 3.0


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check.

    Attributes:
        check: the check and the parameters that change what it measures (``recovery-time (from start)``).
        passed: whether the measured value met the threshold.
        measured, threshold: what was measured and what was required, as shown.
        window: the window judged, with offsets from the start of the fault schedule.
        evidence: lines that explain the value (which requests failed when, which seconds were down...).
        margin: how far a passing value was from its threshold (``by 4.1 pp``), for numeric checks.
        key: unique and stable within one experiment (JUnit property names, JSON keys).
        numbers: the measured value, threshold and margin as numbers with their unit (None when the verdict is
            not one number, or nothing was measured).
        span: the window judged, in seconds from the start of the fault schedule (``at: 0``).
    """

    check: str
    passed: bool
    measured: str
    threshold: str
    window: str
    evidence: tuple[str, ...] = field(default_factory=tuple)
    margin: str = ""
    key: str = ""
    numbers: Measure | None = None
    span: tuple[float, float] | None = None

    @property
    def message(self) -> str:
        state = "passed" if self.passed else "FAILED"
        if self.passed and self.margin:
            state += f" {self.margin}"
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
                 evidence: list[str] | tuple[str, ...] = (), margin: str = "",
                 numbers: Measure | None = None) -> Verdict:
        return Verdict(self.label, passed, measured, threshold, window.describe(ev.origin), tuple(evidence),
                       margin if passed else "", numbers=numbers,
                       span=(round(window.start - ev.origin, 3), round(window.end - ev.origin, 3)))


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
        t = totals(ev.samples, window.start, window.end, through=ev.ended)
        if t.requests == 0 and t.carried_in == 0 and t.down == 0:
            return self._verdict(ev, window, False, "0 requests", "requests in the window",
                                 ["no request was sent or waiting in this window: is the load shape long enough?"])
        return self._judge(ev, window, t)

    def _judge(self, ev: Evidence, window: Window, t: Totals) -> Verdict:  # pragma: no cover - overridden
        raise NotImplementedError


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


class NoFailedRequests(_LoadCheck):
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


class ErrorRate(_LoadCheck):
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


class Latency(_LoadCheck):
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


class Availability(_LoadCheck):
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


class Throughput(_LoadCheck):
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
                             [f"ready replicas per zone: {dict(sorted(by_zone.items()))}"],
                             numbers=Measure(skew, self.max_skew, "replicas of skew"))


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
                             [f"ready replicas per zone: {dict(sorted(by_zone.items()))}, desired {snap.desired}"],
                             numbers=Measure(worst, self.min_capacity, "ratio", at_most=False))


@dataclass
class _Termination:
    pod: str
    since: float
    grace: float
    exit_code: int | None = None
    exited: float | None = None
    reason: str = ""


def terminations(records: list[PodRecord], window: Window) -> list[_Termination]:
    """Pods that started terminating inside ``window``, with their final exit code and time."""
    found: dict[str, _Termination] = {}
    for record in records:
        state = record.state
        if state.terminating and record.pod not in found and record.t in window:
            found[record.pod] = _Termination(record.pod, record.t, float(state.grace or 30))
        term = found.get(record.pod)
        if term is None or term.exit_code is not None:
            continue
        exits = state.exits
        if exits:
            container, code = max(exits.items(), key=lambda kv: kv[1])
            term.exit_code, term.exited = code, record.t
            term.reason = state.containers[container].reason or ""
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
                how = "killed (SIGKILL, exit 137)" if term.exit_code == 137 else f"exited {term.exit_code}"
                bad.append(f"{term.pod}: {how} {took:.1f}s after termination began (grace {term.grace:.0f}s)"
                           + (f", reason {term.reason}" if term.reason else ""))
        failed: list[Failure] = []
        if t is not None:
            spans = [(x.since, (x.exited or window.end) + 1.0) for x in terms]
            failed = [f for f in t.failed if any(a <= f.t <= b for a, b in spans)]
        judged = sum(1 for x in terms if x.exit_code is not None)
        evidence = bad[:MAX_EVIDENCE] + [f"request failed during a shutdown: {ev.offset(f.t)} {f.reason}"
                                         + (f" (answered by {f.pod})" if f.pod else "") for f in failed[:MAX_EVIDENCE]]
        if not terms:
            evidence.append("no pod of the target terminated in this window")
        return self._verdict(ev, window, not bad and not failed,
                             f"{len(bad)} of {judged} terminations not graceful, {len(failed)} requests failed "
                             "during shutdowns", "every pod exits 0 within its grace period, 0 failed requests",
                             evidence)


REVISION_LABELS = ("pod-template-hash", "controller-revision-hash")


def _revision(labels: Mapping[str, str]) -> str | None:
    return next((f"{k}={labels[k]}" for k in REVISION_LABELS if k in labels), None)


class RecoveryTime(_Check):
    """How long the workload took to get its ready capacity back: at most ``max``.

    Ready capacity is the number of ready, not terminating pods of the workload's current revision (the
    revision its pods have at the end of the run), so a rollout recovers when the new version is fully
    ready, and a pod kill when the replacements are. ``from: start`` (the default) measures from the
    start of the window's fault, or from the first moment capacity dropped below desired after it,
    whichever is later; ``from: end`` from the window's end (for faults held with ``duration``). The
    capacity must then stay at desired for ``stable`` seconds (or until the end of the run).
    """

    type: Literal["recovery-time"] = "recovery-time"
    max: Duration
    window: str = "faults"
    from_: Literal["start", "end"] = Field(default="start", alias="from")
    stable: Duration = 5.0

    @property
    def label(self) -> str:
        return f"recovery-time (from {self.from_})"

    def evaluate(self, ev: Evidence) -> Verdict:
        window = ev.window(self.window)
        snap = ev.snapshot
        desired = snap.desired if snap else 0
        if snap is None or desired <= 0:
            return self._verdict(ev, window, False, "unknown desired replicas", f"<= {self.max:g}s",
                                 ["no snapshot of the workload with desired replicas at the end of the run"])
        current = Counter(_revision(dict(p.labels)) for p in snap.pods if p.ready and not p.terminating)
        revision = current.most_common(1)[0][0] if current else None
        series = self._capacity(ev, revision)
        base = window.start if self.from_ == "start" else window.end
        before = [c for t, c in series if t < base]
        level = before[-1] if before else 0
        drop: float | None = base if level < desired else None
        for t, count in series:
            if t >= base and count < desired and drop is None:
                drop = t
        what = f"ready replicas{f' of revision {revision}' if revision else ''}"
        if drop is None:
            return self._verdict(ev, window, True, "0.0s", f"<= {self.max:g}s",
                                 [f"{what} never dropped below desired ({desired}) after the {self.from_} of the "
                                  "window"], f"by {self.max:g}s", Measure(0.0, self.max, "s"))
        origin = drop
        recovered, held = self._recovered(series, origin, desired, ev.ended)
        lowest = min([level, *(c for t, c in series if t >= origin)])
        lines = [f"{what}: below desired ({desired}) from {ev.offset(origin)}, lowest {lowest}"]
        if recovered is None:
            final = series[-1][1] if series else 0
            lines.append(f"{final}/{desired} ready at the end of the run ({ev.offset(ev.ended)})")
            return self._verdict(ev, window, False, "not recovered by the end of the run", f"<= {self.max:g}s",
                                 lines, numbers=Measure(None, self.max, "s"))
        took = recovered - origin
        lines.append(f"back to {desired} at {ev.offset(recovered)} and held "
                     + (f"for {self.stable:g}s" if held >= self.stable else f"{held:.1f}s, until the end of the run"))
        return self._verdict(ev, window, took <= self.max, f"{took:.1f}s", f"<= {self.max:g}s", lines,
                             f"by {self.max - took:.1f}s", Measure(round(took, 3), self.max, "s"))

    @staticmethod
    def _capacity(ev: Evidence, revision: str | None) -> list[tuple[float, int]]:
        """(time, ready pods of ``revision``) after every pod record of the target."""
        steps = replay_ready(ev.pod_records, counts=lambda r: revision is None or _revision(r.state.labels) == revision)
        return [(step.record.t, step.total) for step in steps]

    def _recovered(self, series: list[tuple[float, int]], origin: float, desired: int,
                   end: float) -> tuple[float | None, float]:
        """The first moment after ``origin`` from which capacity stayed at desired for ``stable`` seconds (or
        until ``end``), and how long it held."""
        candidate: float | None = None
        for t, count in series:
            if t < origin:
                continue
            if count >= desired and candidate is None:
                candidate = t
            elif count < desired and candidate is not None:
                if t - candidate >= self.stable:
                    return candidate, t - candidate
                candidate = None
        if candidate is None:
            return None, 0.0
        return candidate, max(0.0, end - candidate)


class AuditClean(_Check):
    """The target passes the resilience audit (docs/audit.md): no finding at or above ``severity`` on its workload
    or namespace (findings skipped by an annotation with a reason do not count), optionally only ``rules``."""

    type: Literal["audit"] = "audit"
    severity: Literal["high", "medium", "low"] = "high"
    rules: tuple[str, ...] = ()

    def evaluate(self, ev: Evidence) -> Verdict:
        at = ev.audit_at or ev.ended
        window = Window("snapshot", at, at)
        if ev.audit is None:
            return self._verdict(ev, window, False, "not audited", "an audit of the target",
                                 ["the run could not read the target's objects"])
        ranks = {"high": 0, "medium": 1, "low": 2}
        wanted = {r.upper() for r in self.rules}
        found = [f for f in ev.audit if not f.skipped and ranks[f.rule.severity] <= ranks[self.severity]
                 and (not wanted or f.rule.id in wanted)]
        lines = [f"{f.rule.id} {f.rule.name} ({f.rule.severity}) {f.obj}: {f.message}" for f in found[:MAX_EVIDENCE]]
        if len(found) > MAX_EVIDENCE:
            lines.append(f"... and {len(found) - MAX_EVIDENCE} more")
        scope = f"rules {', '.join(sorted(wanted))}" if wanted else "every rule"
        return self._verdict(ev, window, not found, f"{len(found)} finding(s) at {self.severity} or above",
                             f"none ({scope})", lines, numbers=Measure(len(found), 0, "findings"))


A = TypeVar("A", BackupTaken, DisasterStruck, Restored)


def _action(ev: Evidence, kind: type[A]) -> tuple[float, A] | None:
    """When the last backup/disaster/restore step of ``kind`` recorded its action, and what it recorded (None if
    the step never ran)."""
    found = [(r.t, r.data) for r in ev.records if r.kind == "action" and isinstance(r.data, kind)]
    return found[-1] if found else None


class Rto(_Check):
    """Recovery time of a restore: from the disaster's start until the restored workloads were ready and the
    data probe answered (after the import hook), at most ``max``."""

    type: Literal["rto"] = "rto"
    max: Duration

    def evaluate(self, ev: Evidence) -> Verdict:
        disaster = next((f for f in ev.faults if f.type == "disaster"), None)
        found = _action(ev, Restored)
        restored = found[1] if found else None
        window = Window("disaster to restored", disaster.start if disaster else ev.started,
                        (restored.recovered or ev.ended) if restored else ev.ended)
        if disaster is None or restored is None:
            return self._verdict(ev, window, False, "no disaster and restore", f"<= {self.max:.0f} s",
                                 ["rto needs a disaster step and a restore step that ran"])
        if restored.not_ready:
            return self._verdict(ev, window, False, "never recovered", f"<= {self.max:.0f} s",
                                 [f"not ready when the restore step gave up: {','.join(restored.not_ready)}"])
        if restored.probe_error:
            return self._verdict(ev, window, False, "never recovered", f"<= {self.max:.0f} s",
                                 [f"the data probe did not answer: {restored.probe_error}"])
        seconds = window.end - disaster.start
        return self._verdict(ev, window, seconds <= self.max, f"{seconds:.1f} s", f"<= {self.max:.0f} s",
                             [f"disaster at {ev.offset(disaster.start)}, restore started at "
                              f"{ev.offset(restored.started)}, workloads ready and data probe "
                              f"answering at {ev.offset(window.end)}"], f"by {self.max - seconds:.1f} s",
                             Measure(round(seconds, 3), self.max, "s"))


class RestoredObjects(_Check):
    """Every object the namespace held before the disaster is there again after the restore, equal to what
    it was (fields the server fills in on its own are not differences)."""

    type: Literal["restored-objects"] = "restored-objects"

    def evaluate(self, ev: Evidence) -> Verdict:
        found = _action(ev, Restored)
        at = found[0] if found else ev.ended
        window = Window("after restore", at, at)
        if found is None:
            return self._verdict(ev, window, False, "no restore", "0 missing, 0 changed",
                                 ["restored-objects needs a backup step and a restore step that ran"])
        missing, changed = found[1].missing, found[1].changed
        lines = [f"missing: {', '.join(missing[:MAX_EVIDENCE * 2])}"] if missing else []
        lines += [f"changed: {', '.join(changed[:MAX_EVIDENCE * 2])}"] if changed else []
        return self._verdict(ev, window, not missing and not changed,
                             f"{len(missing)} missing, {len(changed)} changed", "0 missing, 0 changed", lines,
                             numbers=Measure(len(missing) + len(changed), 0, "objects"))


class DataIntact(_Check):
    """The data probe after the restore equals the probe when the backup was taken (``sha256``, or ``count``
    when the probe prints no sum): nothing written before the backup was lost."""

    type: Literal["data-intact"] = "data-intact"
    compare: Literal["sha256", "count"] = "sha256"

    def evaluate(self, ev: Evidence) -> Verdict:
        taken, found = _action(ev, BackupTaken), _action(ev, Restored)
        restored = found[1] if found else None
        at = found[0] if found else ev.ended
        window = Window("backup to restore", taken[0] if taken else ev.started, at)
        probe = taken[1].probe if taken else None
        if probe is None:
            return self._verdict(ev, window, False, "no probe at backup", f"equal {self.compare}",
                                 ["data-intact needs a backup step with a probe"])
        if probe.count == 0:
            return self._verdict(ev, window, False, "no data at backup", f"equal {self.compare}",
                                 ["the probe counted 0 records when the backup was taken: there is nothing to "
                                  "prove intact; write data before the backup step"])
        before = probe.value(self.compare)
        after_probe = restored.probe if restored else None
        after = after_probe.value(self.compare) if after_probe else None
        lines = [f"at backup: count {probe.count}, sha256 {probe.sha256[:16]}...",
                 f"after restore: count {after_probe.count if after_probe else '-'}, sha256 "
                 f"{(after_probe.sha256 if after_probe else '-')[:16]}..."]
        if restored is not None and restored.probe_error:
            lines.append(f"the probe did not answer after the restore: {restored.probe_error}")
        if restored is not None and restored.not_ready:
            lines.append(f"not ready after the restore: {','.join(restored.not_ready)}")
        measured = "no probe after restore" if after is None else "equal" if after == before else \
            f"differs ({self.compare} {after[:16]} vs {before[:16]})"
        return self._verdict(ev, window, after is not None and after == before, measured,
                             f"equal {self.compare}", lines)


class Rpo(_Check):
    """Records written after the backup and lost with the disaster (probe count when the disaster struck minus
    the count after the restore) at most ``max``."""

    type: Literal["rpo"] = "rpo"
    max: int = Field(default=0, ge=0)

    def evaluate(self, ev: Evidence) -> Verdict:
        taken, struck, restored = _action(ev, BackupTaken), _action(ev, DisasterStruck), _action(ev, Restored)
        window = Window("backup to disaster", taken[0] if taken else ev.started, struck[0] if struck else ev.ended)
        counts = [found[1].probe.count if found and found[1].probe else None for found in (taken, struck, restored)]
        if None in counts:
            return self._verdict(ev, window, False, "no counts", f"<= {self.max} records",
                                 ["rpo needs backup, disaster and restore steps and a probe printing count"])
        at_backup, at_disaster, after = (int(c or 0) for c in counts)
        written = at_disaster - at_backup
        lost = max(0, at_disaster - after)
        return self._verdict(ev, window, lost <= self.max, f"{lost} record(s) lost", f"<= {self.max} records",
                             [f"{written} record(s) written after the backup, {lost} of them lost"],
                             numbers=Measure(lost, self.max, "records"))


Check = Annotated[NoFailedRequests | ErrorRate | Latency | Availability | Throughput | ZoneSpread
                  | SurvivesZoneLoss | GracefulShutdown | RecoveryTime | AuditClean | Rto | RestoredObjects
                  | DataIntact | Rpo, Field(discriminator="type")]
_ADAPTER: TypeAdapter[Check] = TypeAdapter(Check)
LOAD_CHECKS = (NoFailedRequests, ErrorRate, Latency, Availability, Throughput, GracefulShutdown)
"""Checks that read load samples."""


def parse_check(data: object) -> Check:
    """A check from its mapping (``{"type": "latency", "percentile": 99, "max": "300ms"}``)."""
    return _ADAPTER.validate_python(data)


def evaluate(checks: list[Check] | tuple[Check, ...], evidence: Evidence) -> list[Verdict]:
    """Evaluate every check; a check that cannot be evaluated fails with the reason."""
    from resilience_tests.errors import ResilienceError

    verdicts = []
    seen: Counter[str] = Counter()
    for check in checks:
        try:
            verdict = check.evaluate(evidence)
        except ResilienceError as exc:
            verdict = Verdict(check.label, False, "not evaluated", "-", check.window, (str(exc),))
        key = f"{verdict.check} [{check.window}]"
        seen[key] += 1
        verdicts.append(dataclasses.replace(verdict, key=key if seen[key] == 1 else f"{key} #{seen[key]}"))
    return verdicts
