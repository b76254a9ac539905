"""Repeatability of verdicts: run each example experiment and each misbehaving variant N times, count flips.

    python3 benchmarks/bench_repeatability.py [--runs 20] [--only NAME ...] [--json FILE]

Uses the local cluster 'resilience' (started if needed, with 3 real nodes) and deploys deploy/demo.yaml into
namespace demo for the examples; each variant gets a namespace of its own. A verdict *flips* when it passed in
some runs and failed in others. For each verdict the smallest margin by which it passed is shown, so a check
that sits near its threshold is visible before it flips.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resilience_tests.chaos import Chaos  # noqa: E402
from resilience_tests.cluster.client import ClusterRef  # noqa: E402
from resilience_tests.cluster.kube import Kube  # noqa: E402
from resilience_tests.faults.base import load_registry  # noqa: E402
from resilience_tests.testbed.cluster import LocalCluster  # noqa: E402
from tests.cluster.helpers import delete_namespace, deploy_demo  # noqa: E402

ROLLOUT = [{"type": "rollout", "at": "3s", "action": "restart", "timeout": "90s"}]


def variant(namespace: str, faults: list[dict[str, Any]], slas: list[dict[str, Any]], duration: str = "25s",
            **load: Any) -> dict[str, Any]:
    shape = {"type": "constant", "users": load.pop("users", 10), "duration": duration}
    return {"name": namespace, "target": {"namespace": namespace, "workload": "deployment/web"},
            "guardrails": {"max_pods": 4}, "settle": "2s", "faults": faults, "load": {"shape": shape, **load},
            "slas": slas}


# name -> (demo variant, experiment, the verdicts each run must give: key prefix -> passed)
VARIANTS: dict[str, tuple[dict[str, Any], Callable[[str], dict[str, Any]]]] = {
    "exit-on-term-rollout": ({"misbehave": "exit-on-term", "prestop": False}, lambda ns: variant(
        ns, ROLLOUT, [{"type": "no-failed-requests", "window": "fault:rollout"},
                      {"type": "graceful-shutdown", "window": "fault:rollout"}], path="/?sleep=300ms", users=20)),
    "slow-start-rollout": ({"misbehave": "slow-start", "args": ("--start-delay=6s",), "replicas": 2},
                           lambda ns: variant(ns, ROLLOUT, [{"type": "recovery-time", "window": "fault:rollout",
                                                             "max": "5s"}], duration="30s")),
    "errors-70": ({"misbehave": "errors", "args": ("--error-ratio=0.7",), "replicas": 2}, lambda ns: variant(
        ns, [{"type": "pod-kill", "at": "2s", "count": 1}],
        [{"type": "error-rate", "max": "1%"}, {"type": "availability", "min": "90%"}], duration="12s")),
    "frozen-zone-a": ({"zone": "zone-a", "replicas": 2}, lambda ns: variant(
        ns, [{"type": "node-failure", "at": "4s", "duration": "8s", "nodes": {"names": ["real-a1"]}}],
        [{"type": "availability", "min": "50%", "window": "fault:0"}, {"type": "availability", "min": "90%"}],
        duration="22s", timeout="3s")),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--only", nargs="*", default=None, help="example file stems or variant names")
    parser.add_argument("--json", type=Path, default=None, help="write the raw outcomes here")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes (1 run of kill-two-pods): does it still run (numbers meaningless)")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.only = 1, args.only or ["kill-two-pods"]

    cluster = LocalCluster("resilience")
    if cluster.state() != "running":
        subprocess.run([sys.executable, "-m", "resilience_tests.cli", "cluster", "up"], check=True)
    kube = Kube.connect(ClusterRef(str(cluster.kubeconfig), cluster.context))
    api = config.new_client_from_config(str(cluster.kubeconfig), context=cluster.context)
    core = client.CoreV1Api(api)
    cluster.kubectl("apply", "-f", str(ROOT / "deploy" / "demo.yaml"))
    cluster.kubectl("-n", "demo", "rollout", "status", "deployment/web", "--timeout=120s")
    chaos = Chaos(kube, load_registry())

    for leftover in [n.metadata.name for n in core.list_namespace().items if n.metadata.name.startswith("rep-")]:
        delete_namespace(core, leftover)
    jobs: list[tuple[str, Callable[[], dict[str, Any] | Path]]] = []
    for path in sorted((ROOT / "experiments").glob("*.yaml")):
        jobs.append((path.stem, lambda p=path: p))
    for name, (demo, build) in VARIANTS.items():
        namespace = f"rep-{name}"
        jobs.append((name, lambda n=namespace, d=demo, b=build: _variant(cluster, core, n, d, b)))
    # Examples first (their drains must not meet a variant pinned to one node), each variant's namespace deleted
    # after its runs.
    outcomes: dict[str, dict[str, list[tuple[bool, str, str]]]] = defaultdict(lambda: defaultdict(list))
    started = time.monotonic()
    ran = 0
    for name, job in jobs:
        if args.only and name not in args.only:
            continue
        ran += 1
        for run in range(args.runs):
            try:
                result = chaos.run(job())
            except Exception as exc:  # an experiment error is an outcome too: it shows as a flip
                outcomes[name]["(experiment error)"].append((False, f"{type(exc).__name__}: {exc}"[:200], ""))
                print(f"[{time.monotonic() - started:6.0f}s] {name} run {run + 1}/{args.runs}: error {exc}",
                      flush=True)
                continue
            outcomes[name]["(experiment error)"].append((True, "none", ""))
            for verdict in (*result.steady, *result.verdicts):
                outcomes[name][verdict.key].append((verdict.passed, verdict.measured, verdict.margin))
            status = "aborted: " + result.aborted if result.aborted else \
                f"{sum(v.passed for v in result.verdicts)}/{len(result.verdicts)} passed"
            print(f"[{time.monotonic() - started:6.0f}s] {name} run {run + 1}/{args.runs}: {status}", flush=True)
        if name in VARIANTS:
            delete_namespace(core, f"rep-{name}")
    chaos.revert_all()
    _report(outcomes, ran, args.runs)
    if args.json:
        args.json.write_text(json.dumps(outcomes, indent=1))


def _variant(cluster: LocalCluster, core: client.CoreV1Api, namespace: str, demo: dict[str, Any],
             build: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    if not any(n.metadata.name == namespace for n in core.list_namespace().items):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        deploy_demo(cluster, core, namespace, **demo)
    return build(namespace)


def _report(outcomes: dict[str, dict[str, list[tuple[bool, str, str]]]], experiments: int, runs: int) -> None:
    total = flips = 0
    print(f"\n{'experiment':26} {'verdict':52} {'passed':>7} flip  closest pass / measured")
    for name, verdicts in outcomes.items():
        for key, seen in verdicts.items():
            passed = sum(p for p, _, _ in seen)
            flipped = 0 < passed < len(seen)
            total += 1
            flips += flipped
            margins = sorted((m for p, _, m in seen if p and m), key=_margin_value)
            measured = sorted({m for _, m, _ in seen})
            print(f"{name:26} {key[:52]:52} {passed:>3}/{len(seen):<3} {'FLIP' if flipped else '    '} "
                  f"{margins[0] if margins else '-'} / {', '.join(measured[:3])}{' ...' if len(measured) > 3 else ''}")
    print(f"\n{experiments} experiments x {runs} runs: {total} verdicts judged in every run, {flips} flipped "
          f"({experiments - len(outcomes)} experiments have no verdicts)")


def _margin_value(margin: str) -> float:
    try:
        return float(margin.split()[1].rstrip("s%/"))
    except (IndexError, ValueError):
        return float("inf")


if __name__ == "__main__":
    main()
