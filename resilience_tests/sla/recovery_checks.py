"""Recovery and backup checks: recovery-time (from the pod records), and rto, restored-objects, data-intact,
rpo (from the typed records of the backup, disaster and restore steps)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Literal, TypeVar

from pydantic import Field

from resilience_tests.backup.actions import BackupTaken, DisasterStruck, Restored
from resilience_tests.cluster.ready import replay_ready
from resilience_tests.schema import Duration
from resilience_tests.sla.base import MAX_EVIDENCE, BaseCheck, Verdict
from resilience_tests.sla.evidence import Evidence, Measure, Window

REVISION_LABELS = ("pod-template-hash", "controller-revision-hash")


def _revision(labels: Mapping[str, str]) -> str | None:
    return next((f"{k}={labels[k]}" for k in REVISION_LABELS if k in labels), None)


class RecoveryTime(BaseCheck):
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


A = TypeVar("A", BackupTaken, DisasterStruck, Restored)


def _action(ev: Evidence, kind: type[A]) -> tuple[float, A] | None:
    """When the last backup/disaster/restore step of ``kind`` recorded its action, and what it recorded (None if
    the step never ran)."""
    found = [(r.t, r.data) for r in ev.records if r.kind == "action" and isinstance(r.data, kind)]
    return found[-1] if found else None


class Rto(BaseCheck):
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


class RestoredObjects(BaseCheck):
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


class DataIntact(BaseCheck):
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


class Rpo(BaseCheck):
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
