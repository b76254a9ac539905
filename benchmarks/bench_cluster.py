"""Benchmarks of the local cluster: `up` time, resident memory, and scale mode.

Run:  python3 benchmarks/bench_cluster.py [--runs 3] [--scale-nodes 1000 --scale-pods 10000]

Prints one line per measurement. Uses its own cluster names and removes them afterwards.
Numbers on a shared 2-core machine are noisy: compare runs made in one go.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.testbed.topology import Topology


def bench_up(runs: int) -> None:
    cluster = LocalCluster("bench-up")
    cluster.down(log=False)
    times, rss = [], []
    for _ in range(runs):
        started = time.monotonic()
        cluster.up(Topology(3, 2), log=False)
        times.append(time.monotonic() - started)
        time.sleep(5)
        rss.append(cluster.memory_rss_bytes())
        again = time.monotonic()
        cluster.up(Topology(3, 2), log=False)
        idem = time.monotonic() - again
        cluster.down(log=False)
    print(f"up 3x2 (cached binaries): median {statistics.median(times):.1f} s over {runs} runs "
          f"(min {min(times):.1f}, max {max(times):.1f}); up on a running cluster {idem:.2f} s")
    print(f"resident memory of all cluster processes, 3x2 idle: median {statistics.median(rss) / 2**20:.0f} MiB")


def bench_scale(nodes: int, pods: int) -> None:
    zones = 4
    cluster = LocalCluster("bench-scale")
    cluster.down(log=False)
    started = time.monotonic()
    cluster.up(Topology(zones, nodes // zones), log=False, timeout=300)
    up = time.monotonic() - started
    print(f"scale: {nodes} simulated nodes registered and Ready in {up:.1f} s")
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "many", "namespace": "default"},
        "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "many"}},
                 "template": {"metadata": {"labels": {"app": "many"}},
                              "spec": {"containers": [{"name": "c", "image": "registry.local/demo:1"}]}}},
    }
    started = time.monotonic()
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(deployment))
    deadline = started + 900
    ready = 0
    while time.monotonic() < deadline:
        status = json.loads(cluster.kubectl("get", "deployment", "many", "-o", "json"))["status"]
        ready = status.get("readyReplicas", 0)
        if ready >= pods:
            break
        time.sleep(2)
    took = time.monotonic() - started
    print(f"scale: {ready}/{pods} pods scheduled, Running and Ready in {took:.1f} s "
          f"({ready / took:.0f} pods/s)")
    print(f"scale: resident memory of all cluster processes {cluster.memory_rss_bytes() / 2**20:.0f} MiB")
    cluster.down(log=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale-nodes", type=int, default=1000)
    parser.add_argument("--scale-pods", type=int, default=10000)
    parser.add_argument("--only", choices=("up", "scale"), help="run one of the two benchmarks")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes (1 up, 8 nodes and 20 pods at scale): does it still run (numbers meaningless)")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.scale_nodes, args.scale_pods = 1, 8, 20
    if args.only != "scale":
        bench_up(args.runs)
    if args.only != "up":
        bench_scale(args.scale_nodes, args.scale_pods)


if __name__ == "__main__":
    main()
