"""Benchmarks of the engine: plugin start-up overhead, timeline latency, work at scale.

    python3 benchmarks/bench_engine.py plugin  [--runs 15]
    python3 benchmarks/bench_engine.py latency [--samples 50]     # uses the local cluster 'resilience'
    python3 benchmarks/bench_engine.py scale   [--pods 10000]     # brings up 1,000 nodes (cluster 'bench-scale')
    python3 benchmarks/bench_engine.py plugin --smoke             # tiny sizes, seconds: shows it still runs

``--smoke`` runs 1 start-up pair, 3 latency samples, 50 pods at scale (still 1,000 nodes): the numbers mean nothing.

Numbers on a shared 2-core machine are noisy: compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from resilience_tests.cluster.client import ClusterRef
from resilience_tests.cluster.kube import Kube
from resilience_tests.cluster.selection import Amount, NodeSelector, select_nodes, select_pods
from resilience_tests.cluster.timeline import Timeline
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.testbed.topology import Topology


def bench_plugin(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_one.py").write_text("def test_one():\n    pass\n")
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", tmp]
        timings: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(runs):  # alternate so drift hits both alike
            for label, extra in (("without", ["-p", "no:resilience"]), ("with", [])):
                started = time.perf_counter()
                subprocess.run(base + extra, check=True, capture_output=True)
                timings[label].append(time.perf_counter() - started)
    with_, without = statistics.median(timings["with"]), statistics.median(timings["without"])
    print(f"pytest start-up, one trivial test, median of {runs}: without plugin {without:.3f} s, "
          f"with plugin {with_:.3f} s, ratio {with_ / without:.2f} (+{with_ - without:.3f} s)")


def bench_latency(samples: int) -> None:
    cluster = LocalCluster("resilience")
    cluster.up(Topology(3, 2), log=False)
    kube = Kube.connect(ClusterRef(str(cluster.kubeconfig), cluster.context))
    delays = []
    with Timeline(kube, "default") as timeline:
        for i in range(samples):
            before = time.time()
            kube.raw.core.patch_node("sim-a1", {"spec": {"unschedulable": i % 2 == 0}})
            record = timeline.wait_for(lambda r: r.kind == "node" and r.name == "sim-a1", 10, since=before)
            assert record is not None
            delays.append(record.t - before)
    kube.raw.core.patch_node("sim-a1", {"spec": {"unschedulable": False}})
    kube.close()
    delays.sort()
    print(f"event-to-record latency over {samples} node updates (includes the PATCH round trip): "
          f"median {statistics.median(delays) * 1000:.0f} ms, p95 {delays[int(0.95 * len(delays)) - 1] * 1000:.0f} ms, "
          f"max {delays[-1] * 1000:.0f} ms")


def bench_scale(pods: int) -> None:
    cluster = LocalCluster("bench-scale")
    if cluster.state() != "running":
        cluster.up(Topology(4, 250), log=False, timeout=300)
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "many", "namespace": "default"},
                  "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "many"}},
                           "template": {"metadata": {"labels": {"app": "many"}},
                                        "spec": {"containers": [{"name": "c", "image": "registry.local/demo:1"}]}}}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(deployment))
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline:
        ready = json.loads(cluster.kubectl("get", "deployment", "many", "-o", "json"))["status"].get("readyReplicas", 0)
        if ready >= pods:
            break
        time.sleep(5)
    kube = Kube.connect(ClusterRef(str(cluster.kubeconfig), cluster.context))
    tracemalloc.start()
    started = time.perf_counter()
    all_pods = kube.pods("default", "app=many")
    nodes = kube.nodes()
    listed = time.perf_counter() - started
    started = time.perf_counter()
    chosen = select_pods(all_pods, Amount(percent="10%"), seed=1, allow_kube_system=False, max_pods=pods,
                         what="app=many")
    picked = select_nodes(nodes, NodeSelector(zone="zone-b", percent="50%"), seed=1, allow_control_plane=False,
                          max_nodes=1000, target_nodes={p.node for p in all_pods})
    selected = time.perf_counter() - started
    _, peak_select = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    print(f"scale: list {len(all_pods)} pods + {len(nodes)} nodes {listed:.2f} s; select {len(chosen)} pods and "
          f"{len(picked)} nodes {selected * 1000:.0f} ms; peak Python memory {peak_select / 2**20:.0f} MiB")
    started = time.perf_counter()
    timeline = Timeline(kube, "default").start()
    start_time = time.perf_counter() - started
    _, peak_start = tracemalloc.get_traced_memory()
    before = time.time()
    kube.raw.apps.patch_namespaced_deployment_scale("many", "default", {"spec": {"replicas": pods + 100}})
    record = timeline.wait_for(lambda r: r.kind == "pod" and r.change == "added", 30, since=before)
    latency = (record.t - before) if record else float("nan")
    time.sleep(20)
    records = timeline.stop()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"scale: timeline start (initial list of {len(all_pods)} pods, {len(nodes)} nodes) {start_time:.2f} s, "
          f"{len(records)} records, peak Python memory {max(peak, peak_start) / 2**20:.0f} MiB, "
          f"first new pod recorded {latency * 1000:.0f} ms after the scale request; "
          f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    kube.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("plugin", "latency", "scale"))
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--keep", action="store_true", help="leave the scale cluster running")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: shows the benchmark still runs")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.samples, args.pods = 1, 3, 50
    if args.what == "plugin":
        bench_plugin(args.runs)
    elif args.what == "latency":
        bench_latency(args.samples)
    else:
        bench_scale(args.pods)
        if not args.keep:
            LocalCluster("bench-scale").down(log=False)


if __name__ == "__main__":
    main()
