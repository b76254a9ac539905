"""``resilience cluster ...``: build, start, stop and inspect the local cluster; fail and restore its nodes."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from resilience_tests.commands.common import Parser, non_empty, say
from resilience_tests.errors import UsageError
from resilience_tests.testbed import build
from resilience_tests.testbed.cluster import DEFAULT_NAME, ClusterStatus, LocalCluster
from resilience_tests.testbed.topology import Topology


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    cluster = sub.add_parser("cluster", help="the local cluster built from real Kubernetes components")
    actions = cluster.add_subparsers(dest="action", required=True, parser_class=Parser)

    def named(name: str, help_text: str) -> Parser:
        parser: Parser = actions.add_parser(name, help=help_text)
        parser.add_argument("--name", default=DEFAULT_NAME, help=f"cluster name (default {DEFAULT_NAME})")
        return parser

    actions.add_parser("build", help="build the cluster binaries into the cache (idempotent)")
    up = named("up", "start the cluster (idempotent); prints the kubeconfig path")
    up.add_argument("--zones", type=int, default=3, help="number of zones (default 3)")
    up.add_argument("--nodes-per-zone", type=int, default=2, help="simulated nodes per zone (default 2)")
    up.add_argument("--real-nodes", type=int, default=3,
                    help="real kubelet+containerd nodes, one per zone (default 3; 0 for none)")
    up.add_argument("--port", type=int, default=0, help="API server port (default: a free one)")
    up.add_argument("--timeout", type=float, default=120, help="seconds to wait for readiness (default 120)")
    up.add_argument("--velero", action="store_true",
                    help="also run Velero and an S3 object store as host processes (docs/backup.md)")
    up.add_argument("--keda", action="store_true",
                    help="also run KEDA's operator and metrics adapter as host processes (docs/local-cluster.md)")
    named("down", "stop every process of the cluster and remove its state")
    named("status", "show processes and nodes")
    named("kubeconfig", "print the kubeconfig path")
    load = named("load-image", "import image archives (docker save / OCI layout) into every real node")
    load.add_argument("archives", nargs="+", help="image archive files")
    for verb, text in (("fail", "fail nodes or a zone (heartbeat stops; real nodes freeze)"),
                       ("restore", "bring failed nodes back")):
        parser = named(verb, text)
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--zone", type=non_empty("--zone"), help="every node of this zone")
        target.add_argument("--node", action="append", type=non_empty("--node"), help="this node (repeatable)")


def _print_status(status: ClusterStatus) -> None:
    say(f"cluster {status.name}: {status.state}")
    if status.state == "absent":
        return
    say(f"kubeconfig: {status.kubeconfig}")
    if status.topology:
        say(f"topology: {status.topology.describe()}")
    if status.problem:
        say(f"problem: {status.problem}")
    for name, pid in sorted(status.processes.items()):
        say(f"  process {name:<26} pid {pid}")
    for node in status.nodes:
        taints = ",".join(node.taints) or "-"
        say(f"  node {node.name:<12} {node.zone:<8} {node.kind:<10} Ready={node.ready:<8} "
              f"heartbeat={node.heartbeat or '-':<4} taints={taints}")


def cluster_command(args: argparse.Namespace) -> int:
    if args.action == "build":
        build.build()
        return 0
    cluster = LocalCluster(args.name)
    handlers: dict[str, Callable[[], int]] = {
        "up": lambda: _up(cluster, args),
        "down": lambda: (cluster.down(), 0)[1],
        "status": lambda: _status(cluster),
        "kubeconfig": lambda: _kubeconfig(cluster),
        "load-image": lambda: _load_image(cluster, args),
        "fail": lambda: _heartbeat(cluster, args, fail=True),
        "restore": lambda: _heartbeat(cluster, args, fail=False),
    }
    return handlers[args.action]()


def _up(cluster: LocalCluster, args: argparse.Namespace) -> int:
    topology = Topology(args.zones, args.nodes_per_zone, args.real_nodes)
    kubeconfig = cluster.up(topology, port=args.port, timeout=args.timeout)
    if args.velero:
        cluster.start_velero()
    if args.keda:
        cluster.start_keda()
    say(kubeconfig)
    return 0


def _status(cluster: LocalCluster) -> int:
    status = cluster.status()
    _print_status(status)
    return 0 if status.state == "running" else 1


def _kubeconfig(cluster: LocalCluster) -> int:
    if cluster.state() != "running":
        raise UsageError(f"cluster {cluster.name!r} is not running", hint="run `resilience cluster up` first")
    say(cluster.kubeconfig)
    return 0


def _load_image(cluster: LocalCluster, args: argparse.Namespace) -> int:
    for archive in args.archives:
        for node in cluster.load_image(Path(archive)):
            say(f"imported {archive} into {node}")
    return 0


def _heartbeat(cluster: LocalCluster, args: argparse.Namespace, *, fail: bool) -> int:
    names = cluster.zone_nodes(args.zone) if args.zone else list(args.node)
    (cluster.fail_nodes if fail else cluster.restore_nodes)(names)
    say(f"{'failed' if fail else 'restored'}: {', '.join(names)}")
    return 0
