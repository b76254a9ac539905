"""The safety net, many times: SIGKILL a multi-fault run at a random moment, clean up, compare the cluster state.

    python3 benchmarks/bench_safety_net.py [--trials 50] [--seed 1]

Uses the local cluster 'resilience' (started if needed) and a namespace of its own with a Deployment of six
simulated pods. Each trial kills the run 0-7 s after it took its lease, runs the cleanup of that run, and
compares nodes (schedulability, taints, labels, annotations) and the workload (replicas, images, env, labels,
annotations) with the state before. Then it measures how long after a run's death its lease expires (when a
plain `resilience cleanup` may act on it).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import client  # noqa: E402

from resilience_tests.cluster.client import ClusterRef  # noqa: E402
from resilience_tests.cluster.kube import Kube  # noqa: E402
from resilience_tests.cluster.leases import run_state  # noqa: E402
from resilience_tests.testbed.cluster import LocalCluster  # noqa: E402
from resilience_tests.waiting import wait_until  # noqa: E402
from tests.cluster.helpers import delete_namespace, deployment  # noqa: E402
from tests.cluster.safety import _run_id, kill_and_clean  # noqa: E402

NAMESPACE = "bench-safety-net"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes (1 trial): does it still run (numbers meaningless)")
    args = parser.parse_args()
    if args.smoke:
        args.trials = 1
    cluster = LocalCluster("resilience")
    if cluster.state() != "running":
        subprocess.run([sys.executable, "-m", "resilience_tests.cli", "cluster", "up"], check=True)
    kube = Kube.connect(ClusterRef(str(cluster.kubeconfig), cluster.context))
    if not any(n.metadata.name == NAMESPACE for n in kube.raw.core.list_namespace().items):
        kube.raw.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
        kube.raw.apps.create_namespaced_deployment(NAMESPACE, deployment("web", 6))
    wait_until("web available", lambda: (kube.raw.apps.read_namespaced_deployment_status(
        "web", NAMESPACE).status.available_replicas or 0) == 6, timeout=120)
    failures = []
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for trial in range(args.trials):
                seed = args.seed + trial
                result = kill_and_clean(cluster, kube, NAMESPACE, Path(tmp), seed)
                print(f"[{time.monotonic() - started:6.0f}s] trial {trial + 1}/{args.trials} (seed {seed}): "
                      f"differences: {result}", flush=True)
                if result != "nothing":
                    failures.append((seed, result))
            expiry = _lease_expiry(cluster, kube, Path(tmp))
    finally:  # nothing of the benchmark stays in the cluster (a later drain test would meet its pods)
        delete_namespace(kube.raw.core, NAMESPACE)
    print(f"\n{args.trials} trials, {len(failures)} with state differences after cleanup")
    for seed, result in failures:
        print(f"  seed {seed}: {result}")
    print(f"a killed run's lease expired {expiry:.1f} s after its death (a plain `resilience cleanup` may act then)")


def _lease_expiry(cluster: LocalCluster, kube: Kube, workdir: Path) -> float:
    import json

    from tests.cluster.safety import experiment

    path = workdir / "expiry.yaml"
    path.write_text(json.dumps(experiment(NAMESPACE)))
    proc = subprocess.Popen([sys.executable, "-m", "resilience_tests.cli", "run", str(path), "--kubeconfig",
                             str(cluster.kubeconfig), "--pytest-args=-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    holder = f"/{proc.pid}"
    wait_until("lease taken", lambda: _run_id(kube, holder), timeout=60)
    run_id = _run_id(kube, holder)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    died = time.monotonic()
    wait_until("lease expired", lambda: not run_state(kube, run_id).alive, timeout=120, interval=0.2,
               max_interval=0.5)
    took = time.monotonic() - died
    from tests.cluster.helpers import cleanup_as_the_cli_does

    cleanup_as_the_cli_does(kube, run_id=run_id)
    return took


if __name__ == "__main__":
    main()
