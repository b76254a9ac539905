"""Load numbers: Locust's raw requests/s with and without the sample listener, 1 vs 2 worker processes, and the
time to evaluate every SLA check over a one-hour run at 1 s resolution.

Usage: python3 benchmarks/bench_load.py [overhead|workers|checks] [--seconds 15] [--rounds 3]
       python3 benchmarks/bench_load.py --smoke    # a few seconds, no Locust: the checks and the listener's cost
                                                   # at tiny sizes (the numbers mean nothing; the unit tests run it)

The target is the demo app binary on 127.0.0.1 (no cluster), so the numbers are Locust's and ours, not
kube-proxy's. Runs alternate (with, without, with, ...) so that a noisy machine hurts both sides alike.
Numbers are printed, not asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from resilience_tests.cluster.timeline import Record
from resilience_tests.load.locust import LISTENER, REPO_PROFILES, SHAPE
from resilience_tests.load.samples import Sample
from resilience_tests.net import free_port
from resilience_tests.sla.checks import evaluate, parse_check
from resilience_tests.sla.evidence import Evidence, FaultWindow, PodSnap, Snapshot
from resilience_tests.testbed.images import demoapp_binary


def _start_demo() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([str(demoapp_binary()), "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={"POD_NAME": "bench", "GOMAXPROCS": "1"})
    time.sleep(0.5)
    return proc, port


def _locust_rps(port: int, seconds: float, users: int, *, listener: bool, workers: int = 0) -> float:
    """Requests/s Locust reports for a constant shape (its own stats, from --csv)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "RT_WAIT": "0", "RT_SHAPE": f'{{"type": "constant", "users": {users}, '
                                                         f'"duration": {seconds}}}'}
        files = [str(REPO_PROFILES / "web.py"), str(SHAPE)]
        if listener:
            env["RT_SAMPLES"] = str(Path(tmp) / "samples.jsonl")
            files.append(str(LISTENER))
        base = [sys.executable, "-m", "locust", "-f", ",".join(files), "--headless", "--only-summary",
                "--csv", str(Path(tmp) / "run")]
        procs = []
        if workers:
            mport = free_port()
            procs.append(subprocess.Popen([*base, "--host", f"http://127.0.0.1:{port}", "--master",
                                           "--master-bind-host", "127.0.0.1", "--master-bind-port", str(mport),
                                           "--expect-workers", str(workers)], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for _ in range(workers):
                procs.append(subprocess.Popen([sys.executable, "-m", "locust", "-f", ",".join(files), "--worker",
                                               "--master-port", str(mport)], env=env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        else:
            procs.append(subprocess.Popen([*base, "--host", f"http://127.0.0.1:{port}"], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for proc in procs:
            proc.wait(timeout=seconds + 120)
        with open(Path(tmp) / "run_stats.csv") as handle:
            rows = {r["Name"]: r for r in csv.DictReader(handle)}
        return float(rows["Aggregated"]["Requests/s"])


@contextlib.contextmanager
def _demo() -> Iterator[int]:
    proc, port = _start_demo()
    try:
        yield port
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def _alternate(rounds: int, first: Callable[[], float], second: Callable[[], float]) -> tuple[list[float], ...]:
    """Run ``first`` and ``second`` in turns, ``rounds`` times each."""
    a, b = [], []
    for _ in range(rounds):
        a.append(first())
        b.append(second())
    return a, b


def overhead(seconds: float, rounds: int) -> None:
    with _demo() as port:
        with_l, without = _alternate(rounds, lambda: _locust_rps(port, seconds, 20, listener=True),
                                     lambda: _locust_rps(port, seconds, 20, listener=False))
    a, b = statistics.median(with_l), statistics.median(without)
    print(f"one Locust process, 20 users, no wait, {seconds:.0f} s x {rounds} rounds: "
          f"without listener {b:.0f} req/s {[round(x) for x in without]}, "
          f"with listener {a:.0f} req/s {[round(x) for x in with_l]}: overhead {(1 - a / b):.1%}")
    cost = _listener_cost()
    print(f"the listener's own cost per request: {cost * 1e6:.1f} us, i.e. {cost * b:.2%} of a core at {b:.0f} req/s")


def workers(seconds: float, rounds: int) -> None:
    with _demo() as port:
        one, two = _alternate(rounds, lambda: _locust_rps(port, seconds, 40, listener=True, workers=1),
                              lambda: _locust_rps(port, seconds, 40, listener=True, workers=2))
    a, b = statistics.median(one), statistics.median(two)
    print(f"master + N workers, 40 users, no wait, listener on, {seconds:.0f} s x {rounds} rounds: "
          f"1 worker {a:.0f} req/s {[round(x) for x in one]}, 2 workers {b:.0f} req/s "
          f"{[round(x) for x in two]}: ratio {b / a:.2f} (the demo app and the master share the 2 cores)")


def _listener_cost(calls: int = 200_000) -> float:
    """Seconds the listener spends per request, called directly in a child process: the client wrapper's
    bookkeeping (a request starts, its answer, it ends), its request hook, and the ticks that write the
    seconds (one every 1,000 requests)."""
    code = (
        "import os, time, tempfile\n"
        "os.environ['RT_SAMPLES'] = os.path.join(tempfile.mkdtemp(), 's.jsonl')\n"
        f"import importlib.util; spec = importlib.util.spec_from_file_location('l', {str(LISTENER)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "s = m._stream\n"
        "t = time.perf_counter()\n"
        f"for i in range({calls}):\n"
        "    second = s.begin()\n"
        "    m._on_request('GET', '/', 3.0 + i % 50, None, None, time.time() - 0.003)\n"
        "    s.end(second, True)\n"
        "    if i % 1000 == 0:\n"
        "        s.write(s.tick(time.time()))\n"
        f"print((time.perf_counter() - t) / {calls})\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def checks(seconds: int = 3600, per_second: int = 200) -> None:
    rng = random.Random(7)
    t0 = 1_800_000_000.0
    samples = []
    for i in range(seconds):
        s = Sample(int(t0) + i)
        for _ in range(per_second):
            s.add(rng.lognormvariate(2.5, 0.6))
        if seconds // 2 <= i < seconds // 2 + 30:
            s.add(5, failed=True, t=t0 + i + 0.5, name="GET /", reason="connection refused")
        samples.append(s)
    records = []
    for i in range(seconds // 6):  # 600 pod changes over the hour (rollouts every few minutes)
        t = t0 + i * 6
        records.append(Record(t, "pod", f"demo/web-{i}", "added", (("labels", "app=web"), ("ready", True))))
        records.append(Record(t + 3, "pod", f"demo/web-{i - 4}", "updated",
                              (("grace", 20), ("labels", "app=web"), ("ready", False), ("terminating", True))))
        records.append(Record(t + 5, "pod", f"demo/web-{i - 4}", "updated",
                              (("exit.web", 0), ("grace", 20), ("labels", "app=web"), ("terminating", True))))
    snap = Snapshot(t0 + seconds, tuple(PodSnap(f"web-{i}", "n", f"zone-{'abc'[i % 3]}", True) for i in range(6)), 6,
                    ("zone-a", "zone-b", "zone-c"))
    half = t0 + seconds // 2
    ev = Evidence(t0, t0 + seconds, samples, records, [FaultWindow(0, "rollout", half - 10, half + 50)], snap,
                  {"app": "web"}, True)
    specs = [{"type": "no-failed-requests", "window": "fault:rollout"}, {"type": "error-rate", "max": "1%"},
             {"type": "latency", "percentile": 99, "max": "100ms"}, {"type": "availability", "min": "99%"},
             {"type": "throughput", "min": 10}, {"type": "zone-spread"},
             {"type": "survives-zone-loss", "min_capacity": "50%"}, {"type": "graceful-shutdown", "window": "whole"},
             {"type": "recovery-time", "max": "60s"}]
    parsed = [parse_check(s) for s in specs]
    started = time.perf_counter()
    verdicts = evaluate(parsed, ev)
    took = time.perf_counter() - started
    print(f"all 9 checks over a {seconds} s run ({len(samples):,} samples, {seconds * per_second:,} requests, "
          f"{len(records)} pod records): "
          f"{took * 1000:.0f} ms; {sum(v.passed for v in verdicts)} passed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="?", choices=["overhead", "workers", "checks"])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, a few seconds, to show the benchmark still runs; alone it starts no Locust "
                             "(the checks over 2 minutes and the listener's cost over 2,000 calls)")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.rounds = 2, 1
        if args.only in (None, "checks"):
            checks(120, 5)
            print(f"the listener's own cost per request: {_listener_cost(2_000) * 1e6:.1f} us")
        if args.only == "overhead":
            overhead(args.seconds, args.rounds)
        if args.only == "workers":
            workers(args.seconds, args.rounds)
        return 0
    if args.only in (None, "checks"):
        checks()
    if args.only in (None, "overhead"):
        overhead(args.seconds, args.rounds)
    if args.only in (None, "workers"):
        workers(args.seconds, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
