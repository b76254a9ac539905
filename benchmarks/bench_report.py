"""Reports: what the journal and Allure cost per experiment, and what `resilience report` costs for 20.

Runs N short experiments (pod kills and scale-downs of the demo app under a little load) against the local
cluster twice in one go: once with neither --results-dir nor --alluredir, once as `resilience run` does
(journal, plot, load files, summary and Allure results). A conftest hook wrapper times the reporting work of
each experiment (everything the `pytest_resilience_journal` hook does). Then `resilience report` builds the
HTML report of the second run a few times; its time and size are reported.

    python3 benchmarks/bench_report.py [--experiments 20] [--builds 3]

Needs the local cluster running with the demo app (`bash scripts/demo` leaves both).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from resilience_tests.reporting import html  # noqa: E402
from resilience_tests.testbed.cluster import LocalCluster  # noqa: E402

KILL = """name: bench-kill-{i}
target: {{namespace: demo, workload: deployment/web}}
load: {{shape: {{type: constant, users: 4, duration: 6s}}}}
faults: [{{type: pod-kill, at: 1s, count: 1}}]
settle: 2s
slas:
  - {{type: error-rate, max: 50%}}
  - {{type: recovery-time, window: "fault:pod-kill", max: 60s}}
"""
SCALE = """name: bench-scale-{i}
target: {{namespace: demo, workload: deployment/web}}
load: {{shape: {{type: constant, users: 4, duration: 6s}}}}
faults: [{{type: scale, at: 1s, replicas: 3, duration: 2s}}]
settle: 4s
slas:
  - {{type: error-rate, max: 50%}}
  - {{type: recovery-time, window: "fault:scale", from: end, max: 60s}}
"""
TIMER = """
import json, os, time
import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_resilience_journal(config, item, journal):
    start, cpu = time.perf_counter(), time.process_time()
    yield
    with open(os.environ["BENCH_TIMES"], "a") as out:
        out.write(json.dumps({"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}) + "\\n")
"""


def run(folder: Path, extra: list[str], times: Path, kubeconfig: str, context: str) -> float:
    env = {**os.environ, "BENCH_TIMES": str(times), "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--no-progress",
                           str(folder / "experiments"), "--experiments", str(folder / "experiments"),
                           "--kubeconfig", kubeconfig, "--context", context, "--rootdir", str(folder), *extra],
                          cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 1: a verdict failed, which costs the report nothing more
        sys.exit(f"the experiments did not run:\n{done.stdout[-3000:]}")
    if done.returncode == 1:
        print("note: some verdicts failed:", *[line for line in done.stdout.splitlines() if "FAILED" in line][:5],
              sep="\n  ")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", type=int, default=20)
    parser.add_argument("--builds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes (2 experiments, 1 build): does it still run (numbers meaningless)")
    args = parser.parse_args()
    if args.smoke:
        args.experiments, args.builds = 2, 1
    cluster = LocalCluster()
    if cluster.state() != "running":
        sys.exit("the local cluster is not running: bash scripts/demo (or resilience cluster up + deploy/demo.yaml)")
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        folder = Path(tmp)
        (folder / "experiments").mkdir()
        (folder / "conftest.py").write_text(TIMER)
        for i in range(args.experiments):
            (folder / "experiments" / f"e{i:02d}.yaml").write_text((KILL if i % 2 else SCALE).format(i=i))
        results = folder / "reports" / "bench"
        plain_times, full_times = folder / "plain.jsonl", folder / "full.jsonl"
        plain_wall = run(folder, [], plain_times, str(cluster.kubeconfig), cluster.context)
        full_wall = run(folder, ["--results-dir", str(results), "--alluredir", str(results / "allure-results")],
                        full_times, str(cluster.kubeconfig), cluster.context)
        plain = [json.loads(line) for line in plain_times.read_text().splitlines()]
        full = [json.loads(line) for line in full_times.read_text().splitlines()]
        builds = [html.build(results) for _ in range(args.builds)]
        allure_bytes = sum(p.stat().st_size for p in (results / "allure-results").iterdir())
        journal_bytes = sum(p.stat().st_size for p in results.glob("experiments/*/journal.json"))
        n = args.experiments
        print(f"{n} experiments: wall {plain_wall:.1f} s without reports, {full_wall:.1f} s with journal + Allure "
              f"(ratio {full_wall / plain_wall:.3f})")
        def ms(rows: list[dict[str, float]], key: str) -> str:
            return f"{statistics.median(r[key] for r in rows) * 1000:.1f} ms"

        print(f"reporting work per experiment (median): without reports {ms(plain, 'wall')} wall / "
              f"{ms(plain, 'cpu')} CPU; with journal + plot + Allure {ms(full, 'wall')} wall / {ms(full, 'cpu')} CPU")
        print(f"files: allure-results {allure_bytes / 1e6:.2f} MB, journals {journal_bytes / 1e6:.2f} MB "
              f"({journal_bytes / n / 1e3:.0f} kB each)")
        print(f"resilience report of {n} experiments: " + ", ".join(f"{b.seconds:.1f} s" for b in builds)
              + f" (median {statistics.median(b.seconds for b in builds):.1f} s), index.html "
              f"{builds[-1].size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
