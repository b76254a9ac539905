"""Audit time for N workloads read from manifest files (goal for 1,000: under 2 s).

Writes N Deployments (half of them hardened, half with the usual gaps), each with a Service and a
PodDisruptionBudget, into one multi-document file and into N small files, then times reading plus auditing
(best of a few rounds, in this process, so the import of the package is not counted).

    python3 benchmarks/bench_audit.py [--workloads 1000] [--rounds 3]
    python3 benchmarks/bench_audit.py --live     # also from a namespace of the running local cluster
    python3 benchmarks/bench_audit.py --smoke    # 20 workloads, one round: shows it still runs (unit tests run it)

``--live`` creates the same objects in one namespace of the local cluster (Deployments paused, so no pod is
made), times reading the namespace plus auditing it against the same objects read from a file, and deletes the
namespace.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from resilience_tests import strictyaml
from resilience_tests.audit import sources
from resilience_tests.audit.rules import audit

NAMESPACES = 20


def bundle(i: int, namespaces: int = NAMESPACES) -> list[dict[str, object]]:
    name, labels = f"app-{i}", {"app": f"app-{i}"}
    container: dict[str, object] = {"name": "app", "image": f"shop/app:{i}", "ports": [{"containerPort": 8080}]}
    if i % 2 == 0:
        probe = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5}
        container.update(readinessProbe=probe, livenessProbe={**probe, "failureThreshold": 3},
                         resources={"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                         lifecycle={"preStop": {"exec": {"command": ["sleep", "5"]}}},
                         securityContext={"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                          "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}})
    spread = [{"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
               "labelSelector": {"matchLabels": labels}}
              for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")] if i % 2 == 0 else []
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": f"ns-{i % namespaces}"},
         "spec": {"replicas": 3 if i % 2 == 0 else 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [container], "topologySpreadConstraints": spread,
                                        "automountServiceAccountToken": False}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": f"ns-{i % namespaces}"},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name,
                                                                             "namespace": f"ns-{i % namespaces}"},
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}},
    ]


def timed(paths: list[str], rounds: int) -> tuple[float, int, int]:
    best, findings, objects = float("inf"), 0, 0
    for _ in range(rounds):
        started = time.perf_counter()
        inventory, problems = sources.read_paths(paths)
        found = audit(inventory)
        best = min(best, time.perf_counter() - started)
        findings, objects = len(found), len(inventory.objects)
        assert not problems, problems[:3]
    return best, objects, findings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--namespaces", type=int, default=NAMESPACES, help="spread the workloads over N namespaces")
    parser.add_argument("--live", action="store_true", help="also audit a live namespace of the local cluster")
    parser.add_argument("--smoke", action="store_true", help="20 workloads, one round: a second, numbers meaningless")
    args = parser.parse_args()
    if args.smoke:
        args.workloads, args.rounds = 20, 1
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        root = Path(tmp)
        docs = [doc for i in range(args.workloads) for doc in bundle(i, args.namespaces)]
        one = root / "all.yaml"
        one.write_text(strictyaml.dump_all(docs))
        many = root / "many"
        many.mkdir()
        for i in range(args.workloads):
            (many / f"app-{i}.yaml").write_text(strictyaml.dump_all(bundle(i, args.namespaces)))
        for label, paths in (("one multi-document file", [str(one)]), (f"{args.workloads} files", [str(many)])):
            seconds, objects, findings = timed(paths, args.rounds)
            print(f"{args.workloads} workloads ({objects} objects) from {label}: {seconds:.2f} s "
                  f"(best of {args.rounds}), {findings} findings; {one.stat().st_size / 1e6:.1f} MB of YAML")
        started = time.perf_counter()
        inventory, _ = sources.read_paths([str(one)])
        read = time.perf_counter() - started
        started = time.perf_counter()
        audit(inventory)
        print(f"of which reading YAML {read:.2f} s, rules {time.perf_counter() - started:.2f} s")
        if args.live:
            live(args.workloads, args.rounds, root)


def live(workloads: int, rounds: int, root: Path) -> None:
    """The same workloads in one live namespace: time reading it plus the audit, against the file."""
    import json

    from resilience_tests.cluster.client import ClusterRef
    from resilience_tests.cluster.kube import Kube
    from resilience_tests.testbed.cluster import LocalCluster

    cluster = LocalCluster()
    if cluster.state() != "running":
        raise SystemExit("--live needs the local cluster: resilience cluster up")
    namespace = "bench-audit"
    docs = [doc for i in range(workloads) for doc in bundle(i)]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace  # type: ignore[index]
        if doc["kind"] == "Deployment":
            doc["spec"]["paused"] = True  # type: ignore[index]
    path = root / "live.yaml"
    path.write_text(strictyaml.dump_all(docs))
    cluster.kubectl("create", "namespace", namespace)
    try:
        started = time.perf_counter()
        cluster.kubectl("apply", "--server-side", "-f", "-", timeout=900,
                        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
        print(f"created {len(docs)} objects in namespace {namespace} in {time.perf_counter() - started:.0f} s")
        kube = Kube.connect(ClusterRef(str(cluster.kubeconfig), cluster.context))
        try:
            best, found = float("inf"), 0
            for _ in range(rounds):
                started = time.perf_counter()
                inventory, problems = sources.read_namespace(kube, namespace)
                found = len(audit(inventory))
                best = min(best, time.perf_counter() - started)
                assert not problems, problems
        finally:
            kube.close()
        from_file, _, file_found = timed([str(path)], rounds)
        print(f"{workloads} workloads from the live namespace: {best:.2f} s (best of {rounds}), {found} findings; "
              f"from the same objects in a file: {from_file:.2f} s ({file_found} findings); "
              f"ratio live/file {best / from_file:.1f}")
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


if __name__ == "__main__":
    main()
