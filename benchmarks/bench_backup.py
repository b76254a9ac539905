"""Backup and restore on the local cluster: time and archive size for a namespace of N objects, peak memory of a
backup of M ConfigMaps, and the recovery time of the stateful demo (experiments/backup-restore.yaml).

    python3 benchmarks/bench_backup.py [--objects 500] [--configmaps 10000] [--rto-rounds 3] [--velero]

Needs the local cluster running (`resilience cluster up`). The namespaces it makes are deleted at the end. The
memory of a backup is the peak resident size of a `resilience backup` process (its children included), next to
that of the same process backing up an empty namespace. With ``--velero`` the RTO rounds run again through
Velero (started as host processes for them, stopped after): the two engines' RTOs measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from resilience_tests.testbed.cluster import LocalCluster

ROOT = Path(__file__).parents[1]


def objects(namespace: str, count: int) -> list[dict[str, object]]:
    """``count`` objects: 60 % ConfigMaps, 20 % Secrets, 10 % Services, 10 % ServiceAccounts."""
    made: list[dict[str, object]] = []
    for i in range(count):
        meta = {"name": f"obj-{i}", "namespace": namespace, "labels": {"bench": "backup"}}
        kind = i % 10
        if kind < 6:
            made.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                         "data": {"settings.json": json.dumps({"i": i, "text": "x" * 200})}})
        elif kind < 8:
            made.append({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"token": f"t-{i}"}})
        elif kind < 9:
            made.append({"apiVersion": "v1", "kind": "Service", "metadata": meta,
                         "spec": {"selector": {"app": f"a{i}"}, "ports": [{"port": 80}]}})
        else:
            made.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
    return made


def configmaps(namespace: str, count: int) -> list[dict[str, object]]:
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}", "namespace": namespace},
             "data": {"value": "y" * 300}} for i in range(count)]


def create(cluster: LocalCluster, namespace: str, items: list[dict[str, object]]) -> float:
    cluster.kubectl("create", "namespace", namespace)
    started = time.monotonic()
    for chunk in range(0, len(items), 2000):
        cluster.kubectl("apply", "--server-side", "-f", "-", timeout=900, stdin=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": items[chunk:chunk + 2000]}))
    return time.monotonic() - started


def cli(cluster: LocalCluster, *args: str) -> tuple[float, int, str]:
    """Run the CLI in a child process: (seconds, peak RSS of the child in MB, stdout)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KUBECONFIG", None)
    code = ("import resource, sys; from resilience_tests.cli import main; rc = main(sys.argv[1:]); "
            "print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code, *args, "--kubeconfig", str(cluster.kubeconfig)],
                          capture_output=True, text=True, env=env, timeout=1800, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"resilience {' '.join(args)} failed: {done.stderr[-2000:]}")
    rss = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("maxrss"))
    return seconds, rss // 1024, done.stdout


def delete(cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=600s",
                    timeout=620)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--configmaps", type=int, default=10000)
    parser.add_argument("--rto-rounds", type=int, default=3)
    parser.add_argument("--velero", action="store_true", help="also measure the RTO through Velero")
    parser.add_argument("--smoke", action="store_true",
                        help="20 objects, 50 ConfigMaps, 1 RTO round: does it still run (numbers meaningless)")
    args = parser.parse_args()
    if args.smoke:
        args.objects, args.configmaps, args.rto_rounds = 20, 50, 1
    cluster = LocalCluster()
    if cluster.state() != "running":
        raise SystemExit("needs the local cluster: resilience cluster up")
    key = Path(tempfile.mkdtemp(prefix="bench-backup-")) / "backup.key"
    key.write_text("bench key: not a secret, long enough\n")
    archive = key.parent / "ns.tar.gz"

    namespace = "bench-backup"
    delete(cluster, namespace)
    made = create(cluster, namespace, objects(namespace, args.objects))
    try:
        backup_s, backup_mb, out = cli(cluster, "backup", namespace, "-o", str(archive), "--key-file", str(key))
        print(out.strip())
        delete(cluster, namespace)
        restore_s, _, out = cli(cluster, "restore", str(archive), "--key-file", str(key), "--timeout", "0")
        print(out.strip())
        print(f"{args.objects} objects (created in {made:.0f} s): backup {backup_s:.1f} s (process, start included; "
              f"peak {backup_mb} MB), archive {archive.stat().st_size / 1e3:.0f} kB, restore {restore_s:.1f} s")
    finally:
        delete(cluster, namespace)

    if args.configmaps:
        empty = "bench-backup-empty"
        delete(cluster, empty)
        cluster.kubectl("create", "namespace", empty)
        try:
            _, empty_mb, _ = cli(cluster, "backup", empty, "-o", str(archive))
        finally:
            delete(cluster, empty)
        big = "bench-backup-big"
        delete(cluster, big)
        made = create(cluster, big, configmaps(big, args.configmaps))
        try:
            seconds, peak_mb, out = cli(cluster, "backup", big, "-o", str(archive))
            print(out.strip())
            print(f"{args.configmaps} ConfigMaps (created in {made:.0f} s): backup {seconds:.1f} s, peak RSS "
                  f"{peak_mb} MB (an empty namespace: {empty_mb} MB), archive {archive.stat().st_size / 1e6:.1f} MB")
        finally:
            delete(cluster, big)

    for round_ in range(args.rto_rounds):
        rto = rto_round(cluster)
        print(f"rto round {round_ + 1} (built-in archive): {rto}")
    if args.velero:
        cluster.start_velero()
        try:
            for round_ in range(args.rto_rounds):
                rto = rto_round(cluster)
                print(f"rto round {round_ + 1} (Velero): {rto}")
        finally:
            cluster.stop_velero()
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


def rto_round(cluster: LocalCluster) -> str:
    """One run of experiments/backup-restore.yaml against the stateful demo: its rto verdict."""
    cluster.kubectl("apply", "-f", str(ROOT / "deploy" / "demo-stateful.yaml"))
    cluster.kubectl("-n", "demo-stateful", "rollout", "status", "statefulset/records", "--timeout=180s", timeout=190)
    import urllib.error
    import urllib.request

    from resilience_tests.waiting import wait_until

    def write(i: int) -> bool:
        try:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:30081/records?value=bench-{i}",
                                                          method="POST"), timeout=5).read()
        except (urllib.error.URLError, OSError):
            return False  # the Service's endpoints may trail the pods' readiness
        return True

    for i in range(10):
        wait_until("the stateful demo answering", lambda i=i: write(i), timeout=60, interval=0.5)
    results = Path(tempfile.mkdtemp(prefix="bench-rto-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KUBECONFIG", None)
    subprocess.run([sys.executable, "-m", "resilience_tests.cli", "run", str(ROOT / "experiments" /
                    "backup-restore.yaml"), "--results-dir", str(results), "--no-report", "--no-progress"],
                   capture_output=True, text=True, env=env, timeout=600, check=False)
    summary = json.loads((results / "summary.json").read_text())
    (exp,) = summary["experiments"]
    rto = next(v for v in exp["slas"] if v["check"] == "rto")
    return f"{rto['measured']} ({exp['outcome']})"


if __name__ == "__main__":
    main()
