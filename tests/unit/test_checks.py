"""Every SLA check passes on good evidence and fails, for the right reason, on bad (pure)."""

from __future__ import annotations

import pytest

from resilience_tests.cluster.timeline import ContainerState, PodState, Record
from resilience_tests.load.samples import Sample
from resilience_tests.sla.checks import evaluate, parse_check
from resilience_tests.sla.evidence import Evidence, FaultWindow, PodSnap, Snapshot

T0 = 1_000.0
SELECTOR = {"app": "web"}


def load(seconds: int = 60, rps: int = 50, latency: float = 5,
         failures: dict[float, str] | None = None) -> list[Sample]:
    samples = [Sample(int(T0) + i) for i in range(seconds)]
    for s in samples:
        for _ in range(rps):
            s.add(latency)
    for t, reason in (failures or {}).items():
        samples[int(t - T0)].add(latency, failed=True, t=t, name="GET /", reason=reason)
    return samples


def pod(t: float, name: str, change: str = "updated", *, ready: bool = True, terminating: bool = False,
        grace: int = 20, revision: str = "x", exit: int | None = None, reason: str | None = None) -> Record:
    """A pod record of the demo's container ``web``."""
    return Record(T0 + t, "pod", f"demo/{name}", change, pod=PodState(
        ready=ready, terminating=terminating, grace=grace, labels={"app": "web", "pod-template-hash": revision},
        containers={"web": ContainerState(exit_code=exit, reason=reason)}))


def evidence(samples: list[Sample] | None = None, records: list[Record] | None = None,
             snapshot: Snapshot | None = None, complete: bool | None = True) -> Evidence:
    return Evidence(started=T0, ended=T0 + 60, samples=samples if samples is not None else load(),
                    records=records or [], faults=[FaultWindow(0, "rollout", T0 + 10, T0 + 30)],
                    snapshot=snapshot, selector=SELECTOR, load_complete=complete)


def verdict(check: dict[str, object], ev: Evidence):  # type: ignore[no-untyped-def]
    (result,) = evaluate([parse_check(check)], ev)
    return result


def spread(*zones: str, desired: int | None = None) -> Snapshot:
    pods = tuple(PodSnap(f"web-{i}", f"n-{z}", z, True) for i, z in enumerate(zones))
    return Snapshot(T0 + 60, pods, desired or len(zones), ("zone-a", "zone-b", "zone-c"))


# ------------------------------------------------------------------ load checks
def test_no_failed_requests() -> None:
    assert verdict({"type": "no-failed-requests", "window": "fault:rollout"}, evidence()).passed
    bad = verdict({"type": "no-failed-requests", "window": "fault:rollout"},
                  evidence(load(failures={T0 + 12.5: "connection refused"}),
                           records=[pod(11, "web-old", terminating=True)]))
    assert not bad.passed and bad.measured.startswith("1 of")
    assert "+12.50s GET /: connection refused (terminating then: web-old)" in bad.message
    # The same failure outside the window does not count.
    assert verdict({"type": "no-failed-requests", "window": "fault:rollout"},
                   evidence(load(failures={T0 + 45: "HTTP 500"}))).passed


def test_error_rate() -> None:
    failures = {T0 + 20 + i / 10: "HTTP 500" for i in range(30)}  # 30 of ~3,030
    assert verdict({"type": "error-rate", "max": "2%"}, evidence(load(failures=failures))).passed
    bad = verdict({"type": "error-rate", "max": "0.5%"}, evidence(load(failures=failures)))
    assert not bad.passed and "0.99%" in bad.measured and "HTTP 500" in bad.message


def test_latency() -> None:
    assert verdict({"type": "latency", "percentile": 99, "max": "50ms"}, evidence(load(latency=20))).passed
    slow = load(latency=20)
    for _ in range(100):
        slow[30].add(900)
    bad = verdict({"type": "latency", "percentile": 99, "max": "50ms"}, evidence(slow))
    assert not bad.passed and bad.measured == "p99 = 900 ms" and "+30s max 900 ms" in bad.message


def test_availability() -> None:
    assert verdict({"type": "availability", "min": "99%"}, evidence()).passed
    down = load()
    for i in range(20, 26):
        down[i] = Sample(down[i].t)
        for _ in range(10):
            down[i].add(1, failed=True, t=down[i].t + 0.1, reason="connection refused")
    bad = verdict({"type": "availability", "min": "95%"}, evidence(down))
    assert not bad.passed and "54/60 s up" in bad.measured and "down: +20s, +21s, +22s" in bad.message
    assert bad.margin == "" and verdict({"type": "availability", "min": "85%"}, evidence(down)).margin == "by 5.00 pp"


def test_throughput() -> None:
    assert verdict({"type": "throughput", "min": 40}, evidence()).passed
    bad = verdict({"type": "throughput", "min": 40}, evidence(load(rps=20)))
    assert not bad.passed and bad.measured == "20.0 successful requests/s"


def test_load_checks_never_pass_on_incomplete_or_missing_load() -> None:
    crashed = verdict({"type": "no-failed-requests"}, evidence(complete=False))
    assert not crashed.passed and crashed.measured == "incomplete load"
    none = verdict({"type": "error-rate", "max": "1%"}, evidence(samples=[], complete=None))
    assert not none.passed and "add `load:`" in none.message
    short = evidence(load(seconds=20))
    short.ended = T0 + 20  # the load ended before the window started
    empty = verdict({"type": "no-failed-requests", "window": "after"}, short)
    assert not empty.passed and empty.measured == "0 requests"
    # The load claims to have run to +60 s but its stream stops at +20 s: the missing seconds are down.
    broken = verdict({"type": "no-failed-requests", "window": "after"}, evidence(load(seconds=20)))
    assert not broken.passed and broken.measured == "0 of 0 requests failed, 30 s down", broken.message
    assert "30 s missing from the sample stream" in broken.message


# ------------------------------------------------------------------ cluster checks
def test_zone_spread() -> None:
    assert verdict({"type": "zone-spread", "max_skew": 1, "min_zones": 3},
                   evidence(snapshot=spread("zone-a", "zone-b", "zone-c", "zone-a"))).passed
    bad = verdict({"type": "zone-spread", "min_zones": 2}, evidence(snapshot=spread("zone-a", "zone-a", "zone-a")))
    assert not bad.passed and bad.measured == "1 zones, skew 3"
    assert "{'zone-a': 3, 'zone-b': 0, 'zone-c': 0}" in bad.message


def test_survives_zone_loss() -> None:
    good = verdict({"type": "survives-zone-loss", "min_capacity": "60%"},
                   evidence(snapshot=spread("zone-a", "zone-a", "zone-b", "zone-b", "zone-c", "zone-c")))
    assert good.passed and good.measured.startswith("67% left")
    bad = verdict({"type": "survives-zone-loss", "min_capacity": "60%"},
                  evidence(snapshot=spread("zone-a", "zone-a", "zone-a", "zone-b")))
    assert not bad.passed and bad.measured == "25% left after losing zone-a"


def test_graceful_shutdown() -> None:
    clean = [pod(12, "web-1", terminating=True), pod(17, "web-1", terminating=True, exit=0),
             pod(18, "web-1", "deleted", terminating=True, exit=0)]
    assert verdict({"type": "graceful-shutdown"}, evidence(records=clean)).passed
    killed = [pod(12, "web-2", terminating=True, grace=3),
              pod(15.5, "web-2", terminating=True, grace=3, exit=137, reason="Error")]
    bad = verdict({"type": "graceful-shutdown"}, evidence(records=killed))
    assert not bad.passed and "web-2: killed (SIGKILL, exit 137) 3.5s after termination began (grace 3s)" in bad.message
    abrupt = [pod(12, "web-3", terminating=True), pod(12.1, "web-3", terminating=True, exit=1)]
    bad = verdict({"type": "graceful-shutdown"},
                  evidence(load(failures={T0 + 12.05: "connection reset"}), records=abrupt))
    assert not bad.passed and "web-3: exited 1" in bad.message
    assert "request failed during a shutdown: +12.05s connection reset" in bad.message


def _readiness(drop_at: float, back_at: float) -> list[Record]:
    records = [pod(0, f"web-{i}") for i in range(4)]
    records += [pod(drop_at, "web-0", "deleted", ready=False), pod(drop_at, "web-1", "deleted", ready=False)]
    records += [pod(back_at - 2, "web-4", ready=False), pod(back_at - 1, "web-4"), pod(back_at, "web-5")]
    return records


def test_recovery_time_counts_from_the_drop_after_the_fault_starts() -> None:
    snap = spread("zone-a", "zone-b", "zone-c", "zone-a")
    fast = verdict({"type": "recovery-time", "max": "12s"}, evidence(records=_readiness(25, 36), snapshot=snap))
    assert fast.passed and fast.measured == "11.0s" and fast.check == "recovery-time (from start)"
    assert fast.margin == "by 1.0s" and "below desired (4) from +25.00s, lowest 2" in fast.message
    end = verdict({"type": "recovery-time", "from": "end", "max": "10s"},
                  evidence(records=_readiness(25, 36), snapshot=snap))
    assert end.passed and end.measured == "6.0s" and end.check == "recovery-time (from end)"  # fault ends at +30 s
    slow = verdict({"type": "recovery-time", "max": "10s"}, evidence(records=_readiness(25, 55), snapshot=snap))
    assert not slow.passed and slow.measured == "30.0s"
    never = verdict({"type": "recovery-time", "max": "10s"}, evidence(records=_readiness(25, 500)[:-3], snapshot=snap))
    assert not never.passed and never.measured == "not recovered by the end of the run"
    steady = verdict({"type": "recovery-time", "max": "1s"}, evidence(records=[pod(0, f"web-{i}") for i in range(4)],
                                                                      snapshot=snap))
    assert steady.passed and steady.measured == "0.0s" and "never dropped below desired (4)" in steady.message


def test_recovery_time_must_hold_for_the_stable_period() -> None:
    snap = spread("zone-a", "zone-b", "zone-c", "zone-a")
    flapping = [*_readiness(25, 36), pod(38, "web-5", ready=False), pod(45, "web-5")]
    result = verdict({"type": "recovery-time", "max": "30s"}, evidence(records=flapping, snapshot=snap))
    assert result.measured == "20.0s", result.message  # back at +36 s, lost again at +38 s, back for good at +45 s
    loose = verdict({"type": "recovery-time", "max": "30s", "stable": "1s"}, evidence(records=flapping, snapshot=snap))
    assert loose.measured == "11.0s", loose.message


def test_a_slow_rollout_fails_recovery_time_by_default() -> None:
    """A rollout waits until every new pod is ready, so its window ends when capacity is back: measured from
    the end it is always 0 s. Measured from the start, the new revision's 38 s of start-up show."""
    old = [pod(0, f"web-{i}", revision="old") for i in range(4)]
    new = [pod(12 + i, f"web-n{i}", ready=False, revision="new") for i in range(4)]
    new += [pod(48, f"web-n{i}", revision="new") for i in range(4)]
    gone = [pod(49, f"web-{i}", "deleted", terminating=True, revision="old")
            for i in range(4)]
    pods = tuple(PodSnap(f"web-n{i}", "n", z, True, labels=(("app", "web"), ("pod-template-hash", "new")))
                 for i, z in enumerate(("zone-a", "zone-b", "zone-c", "zone-a")))
    snap = Snapshot(T0 + 60, pods, 4, ("zone-a", "zone-b", "zone-c"))
    ev = evidence(records=old + new + gone, snapshot=snap)
    ev.faults = [FaultWindow(0, "rollout", T0 + 10, T0 + 50)]
    default = verdict({"type": "recovery-time", "window": "fault:rollout", "max": "10s"}, ev)
    assert not default.passed and default.measured == "38.0s", default.message
    assert "revision pod-template-hash=new" in default.message
    assert verdict({"type": "recovery-time", "from": "end", "window": "fault:rollout", "max": "10s"}, ev).measured \
        == "0.0s"


def test_unknown_windows_and_bad_thresholds_are_clear() -> None:
    wrong = verdict({"type": "no-failed-requests", "window": "fault:drain"}, evidence())
    assert not wrong.passed and "matches no fault" in wrong.message and "fault:0 (rollout)" in wrong.message
    with pytest.raises(ValueError, match="max"):
        parse_check({"type": "latency", "max": "fast"})
    with pytest.raises(ValueError, match="percent"):
        parse_check({"type": "error-rate", "max": "lots"})


# ------------------------------------------------------------------ every second counted
def outage(seconds: int = 61, hung: range = range(20, 33), users: int = 10) -> list[Sample]:
    """Load through an outage in which every user hangs in a 5 s timeout: the seconds in ``hung`` had no
    request sent at all, only users waiting on requests that then timed out."""
    samples = [Sample(int(T0) + i, users=users) for i in range(seconds)]
    for i, s in enumerate(samples):
        if i in hung:
            s.carried, s.carried_failed = users, users
            continue
        for _ in range(50):
            s.add(5)
    first = samples[hung.start - 1]
    for _ in range(users):
        first.add(5000, failed=True, t=first.t + 0.5, name="GET /", reason="timeout")
    return samples


def test_seconds_in_which_nothing_was_sent_count_as_down() -> None:
    samples = outage()
    # The truth, computed second by second: a second is down when no request sent or waited on in it succeeded.
    truth = sum(1 for s in samples if s.requests and s.failures * 2 < s.requests) / len(samples)
    ev = evidence(samples)
    ev.ended = T0 + 61
    result = verdict({"type": "availability", "min": "80%"}, ev)
    assert not result.passed and result.measured == f"{truth:.2%} (48/61 s up)", result.message
    assert "13 s with nothing sent: every active user was waiting on an answer" in result.message
    # Before: only seconds with traffic were judged (48/48 s up); now the empty ones count.
    throughput = verdict({"type": "throughput", "min": 45}, ev)
    ok = sum(s.requests - s.failures for s in samples)
    assert not throughput.passed and throughput.measured == f"{ok / 61:.1f} successful requests/s"


def test_a_window_in_which_users_only_waited_still_fails() -> None:
    """A fault window that falls entirely inside the hang: nothing was sent in it, the requests waited on were
    sent before it and failed. Every load check must fail rather than see an empty, clean window."""
    ev = evidence(outage())
    ev.faults = [FaultWindow(0, "zone-outage", T0 + 22, T0 + 30)]
    for check in ({"type": "no-failed-requests"}, {"type": "error-rate", "max": "1%"},
                  {"type": "availability", "min": "50%"}):
        result = verdict({**check, "window": "fault:0"}, ev)
        assert not result.passed, result.message
        assert "10 requests sent before the window were still waiting at its start (10 of them failed" \
            in result.message, result.message
    measured = verdict({"type": "no-failed-requests", "window": "fault:0"}, ev).measured
    assert measured == "10 of 10 requests failed, 8 s down"


def test_a_request_sent_in_the_window_that_times_out_after_it_counts_in_the_window() -> None:
    samples = load(failures={})
    samples[29].add(5000, failed=True, t=T0 + 29.9, name="GET /", reason="timeout")  # answered at +34.9 s
    for s in samples[30:35]:
        s.carry(failed=True)
    result = verdict({"type": "no-failed-requests", "window": "fault:rollout"}, evidence(samples))  # +10..+30 s
    assert not result.passed and result.measured.startswith("1 of"), result.message
    assert "+29.90s GET /: timeout" in result.message
    assert "1 requests sent before the window's end were still waiting at its end" in result.message


def test_slow_but_successful_requests_keep_a_second_up() -> None:
    samples = load()
    for s in samples[20:25]:  # one user waits 5 s on an answer that then succeeds
        s.requests = s.failures = 0
        s.hist.clear()
        s.carried = 1
    result = verdict({"type": "availability", "min": "100%"}, evidence(samples))
    assert result.passed, result.message


def test_idle_seconds_are_not_judged_and_unanswered_ones_are_down() -> None:
    samples = load()
    samples[5] = Sample(samples[5].t)  # think time: nobody sent or waited
    samples[50] = Sample(samples[50].t, unanswered=3)  # sent, then the load stopped before any answer
    result = verdict({"type": "availability", "min": "90%"}, evidence(samples))
    assert result.measured == "98.31% (58/59 s up)", result.message
    assert "1 idle" in result.message and "3 requests sent in the window never got an answer" in result.message
