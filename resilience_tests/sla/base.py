"""What every SLA check shares: the :class:`Verdict` it returns and its base models.

A check is a frozen model (so experiments declare it in YAML and tests build it in Python) with
``evaluate(evidence) -> Verdict``. :class:`LoadCheck` is the base of the checks that read load samples: it
refuses load that did not run to its end, or a window with no request, before the check judges the totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from resilience_tests.load.samples import Totals, totals
from resilience_tests.schema import Model
from resilience_tests.sla.evidence import Evidence, Measure, Window

MAX_EVIDENCE = 8


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


class BaseCheck(Model):
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


class LoadCheck(BaseCheck):
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
