"""Every SLA check passes on good evidence and fails, for the right reason, on bad (pure)."""

from __future__ import annotations

import pytest

from resilience_tests.cluster.timeline import Record
from resilience_tests.load.samples import Sample
from resilience_tests.sla.checks import evaluate, parse_check
from resilience_tests.sla.evidence import Evidence, FaultSpan, PodSnap, Snapshot

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


def pod(t: float, name: str, change: str = "updated", **state: object) -> Record:
    details = {"ready": True, "terminating": False, "grace": 20, "labels": "app=web,pod-template-hash=x", **state}
    return Record(T0 + t, "pod", f"demo/{name}", change, tuple(sorted(details.items())))


def evidence(samples: list[Sample] | None = None, records: list[Record] | None = None,
             snapshot: Snapshot | None = None, complete: bool | None = True) -> Evidence:
    return Evidence(started=T0, ended=T0 + 60, samples=samples if samples is not None else load(),
                    records=records or [], faults=[FaultSpan(0, "rollout", T0 + 10, T0 + 30)],
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
    assert not bad.passed and "54/60 s up" in bad.measured and "+20s: 10/10 failed" in bad.message


def test_throughput() -> None:
    assert verdict({"type": "throughput", "min": 40}, evidence()).passed
    bad = verdict({"type": "throughput", "min": 40}, evidence(load(rps=20)))
    assert not bad.passed and bad.measured == "20.0 successful requests/s"


def test_load_checks_never_pass_on_incomplete_or_missing_load() -> None:
    crashed = verdict({"type": "no-failed-requests"}, evidence(complete=False))
    assert not crashed.passed and crashed.measured == "incomplete load"
    none = verdict({"type": "error-rate", "max": "1%"}, evidence(samples=[], complete=None))
    assert not none.passed and "add `load:`" in none.message
    empty = verdict({"type": "no-failed-requests", "window": "after"}, evidence(load(seconds=20)))
    assert not empty.passed and empty.measured == "0 requests"


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
    clean = [pod(12, "web-1", terminating=True), pod(17, "web-1", terminating=True, **{"exit.web": 0}),
             pod(18, "web-1", "deleted", terminating=True, **{"exit.web": 0})]
    assert verdict({"type": "graceful-shutdown"}, evidence(records=clean)).passed
    killed = [pod(12, "web-2", terminating=True, grace=3),
              pod(15.5, "web-2", terminating=True, grace=3, **{"exit.web": 137, "reason.web": "Error"})]
    bad = verdict({"type": "graceful-shutdown"}, evidence(records=killed))
    assert not bad.passed and "web-2: killed (SIGKILL) 3.5s after termination began (grace 3s)" in bad.message
    abrupt = [pod(12, "web-3", terminating=True), pod(12.1, "web-3", terminating=True, **{"exit.web": 1})]
    bad = verdict({"type": "graceful-shutdown"},
                  evidence(load(failures={T0 + 12.05: "connection reset"}), records=abrupt))
    assert not bad.passed and "web-3: exited 1" in bad.message
    assert "request failed during a shutdown: +12.05s connection reset" in bad.message


def _readiness(drop_at: float, back_at: float) -> list[Record]:
    records = [pod(0, f"web-{i}") for i in range(4)]
    records += [pod(drop_at, "web-0", "deleted", ready=False), pod(drop_at, "web-1", "deleted", ready=False)]
    records += [pod(back_at - 2, "web-4", ready=False), pod(back_at - 1, "web-4"), pod(back_at, "web-5")]
    return records


def test_recovery_time() -> None:
    snap = spread("zone-a", "zone-b", "zone-c", "zone-a")
    fast = verdict({"type": "recovery-time", "max": "10s"}, evidence(records=_readiness(25, 36), snapshot=snap))
    assert fast.passed and fast.measured == "6.0s"  # fault ends at +30 s
    slow = verdict({"type": "recovery-time", "max": "10s"}, evidence(records=_readiness(25, 55), snapshot=snap))
    assert not slow.passed and slow.measured == "25.0s"
    never = verdict({"type": "recovery-time", "max": "10s"}, evidence(records=_readiness(25, 500)[:-3], snapshot=snap))
    assert not never.passed and never.measured == "not recovered by the end of the run"


def test_unknown_windows_and_bad_thresholds_are_clear() -> None:
    wrong = verdict({"type": "no-failed-requests", "window": "fault:drain"}, evidence())
    assert not wrong.passed and "matches no fault" in wrong.message and "fault:0 (rollout)" in wrong.message
    with pytest.raises(ValueError, match="max"):
        parse_check({"type": "latency", "max": "fast"})
    with pytest.raises(ValueError, match="percent"):
        parse_check({"type": "error-rate", "max": "lots"})
