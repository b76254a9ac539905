"""Checks of the workload on the cluster: zone-spread, survives-zone-loss, graceful-shutdown, audit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from resilience_tests.cluster.timeline import PodRecord
from resilience_tests.load.samples import Failure, Totals
from resilience_tests.schema import Percent
from resilience_tests.sla.base import MAX_EVIDENCE, BaseCheck, LoadCheck, Verdict
from resilience_tests.sla.evidence import Evidence, Measure, Window

# A pod may need this long beyond its grace period to be seen exiting (kubelet and watch latency).
EXIT_SLACK_S = 3.0


class ZoneSpread(BaseCheck):
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


class SurvivesZoneLoss(BaseCheck):
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


class GracefulShutdown(LoadCheck):
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



class AuditClean(BaseCheck):
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
