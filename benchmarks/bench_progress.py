"""What the live status line costs: the same experiment run with and without it, alternately.

    python3 benchmarks/bench_progress.py [--rounds 3] [--experiment experiments/rollout-under-load.yaml]

Runs the experiment in this process against the local cluster (started if needed; deploy/demo.yaml applied)
and reports this process's CPU time (Locust runs in processes of its own and is not counted) and wall time
per run, with the status line composed once a second and thrown away, and without it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resilience_tests.cluster.client import ClusterRef  # noqa: E402
from resilience_tests.cluster.kube import Kube  # noqa: E402
from resilience_tests.experiment.model import load_experiment  # noqa: E402
from resilience_tests.experiment.runner import Runner  # noqa: E402
from resilience_tests.faults.base import load_registry  # noqa: E402
from resilience_tests.testbed.cluster import LocalCluster  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--experiment", default=str(ROOT / "experiments" / "rollout-under-load.yaml"))
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes (1 round): does it still run (numbers meaningless)")
    args = parser.parse_args()
    if args.smoke:
        args.rounds = 1
    cluster = LocalCluster("resilience")
    if cluster.state() != "running":
        subprocess.run([sys.executable, "-m", "resilience_tests.cli", "cluster", "up"], check=True)
    cluster.kubectl("apply", "-f", str(ROOT / "deploy" / "demo.yaml"))
    cluster.kubectl("-n", "demo", "rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
    kube = Kube.connect(ClusterRef(str(cluster.kubeconfig), cluster.context))
    registry = load_registry()
    experiment = load_experiment(Path(args.experiment), registry)
    cpu: dict[bool, list[float]] = {True: [], False: []}
    wall: dict[bool, list[float]] = {True: [], False: []}
    lines: list[str] = []
    for round_ in range(args.rounds):
        for shown in (True, False):
            runner = Runner(kube, registry, seed=round_, progress=lines.append if shown else None)
            cpu0, wall0 = time.process_time(), time.monotonic()
            result = runner.run(experiment)
            cpu[shown].append(time.process_time() - cpu0)
            wall[shown].append(time.monotonic() - wall0)
            assert not result.errors and not result.revert_errors, result.errors + result.revert_errors
            print(f"round {round_ + 1}: status line {'on ' if shown else 'off'}: cpu {cpu[shown][-1]:.2f} s, "
                  f"wall {wall[shown][-1]:.1f} s", flush=True)
    on, off = statistics.median(cpu[True]), statistics.median(cpu[False])
    print(f"\nmedian CPU of the run's process: {on:.2f} s with the status line, {off:.2f} s without "
          f"(ratio {on / off:.3f}); {len(lines)} status lines composed")
    print(f"median wall: {statistics.median(wall[True]):.1f} s with, {statistics.median(wall[False]):.1f} s without")


if __name__ == "__main__":
    main()
