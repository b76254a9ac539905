"""Real nodes: time to add them, time to an Available demo Deployment, NodePort throughput, memory.

Usage: python3 benchmarks/bench_real_nodes.py [--real-nodes 2] [--seconds 10] [--connections 16]

Starts the default local cluster afresh (it is stopped first if running) and leaves it running. Throughput is
measured from one host process (asyncio, HTTP/1.1) against the demo app's NodePort on 127.0.0.1, once with
keep-alive connections and once with a new connection per request (every request then goes through
kube-proxy's DNAT afresh). Numbers are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

from resilience_tests.testbed.cluster import LocalCluster

REPO = Path(__file__).resolve().parents[1]


async def _client(port: int, deadline: float, keepalive: bool, counts: list[int]) -> None:
    request = (b"GET / HTTP/1.1\r\nHost: bench\r\n" + (b"" if keepalive else b"Connection: close\r\n") + b"\r\n")
    reader = writer = None
    while time.monotonic() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert reader is not None
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            counts[0 if head.startswith(b"HTTP/1.1 200") else 1] += 1
            if not keepalive:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, AttributeError):
            counts[1] += 1
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


def throughput(port: int, seconds: float, connections: int, keepalive: bool) -> tuple[float, int]:
    """Requests/s answered 200 and the number of failures, from ``connections`` concurrent clients."""
    counts = [0, 0]

    async def main() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(_client(port, deadline, keepalive, counts) for _ in range(connections)))

    started = time.monotonic()
    asyncio.run(main())
    return counts[0] / (time.monotonic() - started), counts[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-nodes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes (1 real node, 1 s of 2 connections): does it still run (numbers meaningless)")
    args = parser.parse_args()
    if args.smoke:
        args.real_nodes, args.seconds, args.connections = 1, 1, 2
    cluster = LocalCluster()
    cluster.down(log=False)
    proc = subprocess.run([sys.executable, "-m", "resilience_tests.cli", "cluster", "up", "--real-nodes",
                           str(args.real_nodes)], capture_output=True, text=True, check=True)
    real = re.search(r"real nodes Ready in ([\d.]+) s", proc.stdout)
    total = re.search(r"up in ([\d.]+) s", proc.stdout)
    print(f"cluster up (3 zones x 2 simulated + {args.real_nodes} real): {total.group(1) if total else '?'} s; "
          f"real nodes added (containerd, images, kubelet, kube-proxy, Ready) in {real.group(1) if real else '?'} s")

    started = time.monotonic()
    cluster.kubectl("apply", "-f", str(REPO / "deploy" / "demo.yaml"))
    cluster.kubectl("-n", "demo", "wait", "deployment/web", "--for=condition=Available", "--timeout=180s",
                    timeout=200)
    cluster.kubectl("-n", "demo", "rollout", "status", "deployment/web", "--timeout=180s", timeout=200)
    print(f"kubectl apply -f deploy/demo.yaml -> Deployment Available (4/4 ready): {time.monotonic() - started:.1f} s")

    time.sleep(2)
    for keepalive in (True, False):
        rps, failed = throughput(30080, args.seconds, args.connections, keepalive)
        kind = "keep-alive" if keepalive else "new connection per request"
        print(f"NodePort 127.0.0.1:30080, one process, {args.connections} connections, {kind}: "
              f"{rps:.0f} requests/s ({failed} failed)")
    print(f"memory of the whole cluster (control plane, kwok, kubelets, containerds, shims, containers, "
          f"kube-proxy): {cluster.memory_rss_bytes() / 2**20:.0f} MiB RSS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
