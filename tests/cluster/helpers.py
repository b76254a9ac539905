"""Small manifest builders shared by the cluster tests."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes import client

from resilience_tests.testbed.cluster import LocalCluster

if TYPE_CHECKING:
    from resilience_tests.cluster.cleanup import CleanupAction
    from resilience_tests.cluster.kube import Kube

ZONE = "topology.kubernetes.io/zone"


def deployment(name: str, replicas: int, *, spread: bool = True, zone: str | None = None) -> client.V1Deployment:
    """A Deployment of ``replicas`` pause-like pods, optionally spread over zones or pinned to one."""
    labels = {"app": name}
    spec = client.V1PodSpec(
        containers=[client.V1Container(name="app", image="registry.local/demo:1", image_pull_policy="IfNotPresent")],
        termination_grace_period_seconds=5,
    )
    if spread:
        spec.topology_spread_constraints = [client.V1TopologySpreadConstraint(
            max_skew=1, topology_key=ZONE, when_unsatisfiable="DoNotSchedule",
            label_selector=client.V1LabelSelector(match_labels=labels))]
    if zone:
        spec.node_selector = {ZONE: zone}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels), spec=spec),
        ),
    )


def running_pods(core: client.CoreV1Api, namespace: str, app: str) -> list[client.V1Pod]:
    """Pods of ``app`` that are not terminating."""
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def zones_of(core: client.CoreV1Api, pods: list[client.V1Pod]) -> Counter[str]:
    """How many of ``pods`` run in each zone."""
    node_zone = {n.metadata.name: n.metadata.labels.get(ZONE, "") for n in core.list_node().items}
    return Counter(node_zone.get(p.spec.node_name or "", "unscheduled") for p in pods)


def create_pdb(policy: client.PolicyV1Api, namespace: str, name: str, app: str, min_available: int) -> None:
    """Create a PodDisruptionBudget over ``app=<app>`` and wait until the disruption controller observed it."""
    from resilience_tests.waiting import wait_until

    pdb = client.V1PodDisruptionBudget(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodDisruptionBudgetSpec(min_available=min_available,
                                              selector=client.V1LabelSelector(match_labels={"app": app})))
    policy.create_namespaced_pod_disruption_budget(namespace, pdb)
    wait_until(f"PDB {name} observed", lambda: policy.read_namespaced_pod_disruption_budget(
        name, namespace).status.observed_generation, timeout=30)


REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def demo_manifests(namespace: str, *, misbehave: str = "", replicas: int = 4, prestop: bool = True,
                   grace: int | None = None, args: tuple[str, ...] = (), zone: str | None = None,
                   ) -> list[dict[str, object]]:
    """deploy/demo.yaml moved into ``namespace``: optional misbehaviour (and extra ``args``), optionally
    pinned to one ``zone``; no fixed NodePort, no Namespace object."""
    import yaml

    docs = [d for d in yaml.safe_load_all((REPO / "deploy" / "demo.yaml").read_text()) if d["kind"] != "Namespace"]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "Deployment":
            doc["spec"]["replicas"] = replicas
            pod = doc["spec"]["template"]["spec"]
            container = pod["containers"][0]
            if misbehave:
                container["args"] = [*container["args"], f"--misbehave={misbehave}"]
            container["args"] = [*container["args"], *args]
            if zone:
                pod["nodeSelector"] = {**pod["nodeSelector"], ZONE: zone}
            if not prestop:
                container.pop("lifecycle")
            if grace is not None:
                pod["terminationGracePeriodSeconds"] = grace
        if doc["kind"] == "Service":
            doc["spec"]["ports"][0].pop("nodePort")
    return docs


def deploy_demo(local_cluster: LocalCluster, core: client.CoreV1Api, namespace: str, **variant: object) -> int:
    """Apply a variant of deploy/demo.yaml into ``namespace``; wait until it serves; return the NodePort."""
    import json

    from resilience_tests.waiting import wait_until

    docs = demo_manifests(namespace, **variant)  # type: ignore[arg-type]
    local_cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    replicas = next(d for d in docs if d["kind"] == "Deployment")["spec"]["replicas"]  # type: ignore[index]
    wait_until("demo pods ready", lambda: sum(ready(p) for p in running_pods(core, namespace, "web")) == replicas,
               timeout=120)
    port = core.read_namespaced_service("web", namespace).spec.ports[0].node_port
    wait_until("NodePort answering", lambda: answers(port), timeout=30)
    return int(port)


def answers(port: int) -> bool:
    """One request to the NodePort succeeds."""
    from tests.cluster.traffic import RequestLoop

    with RequestLoop(port, workers=1, max_requests=1, max_seconds=3) as loop:
        pass
    return bool(loop.outcomes) and loop.outcomes[0].ok


def delete_namespace(core: client.CoreV1Api, name: str, timeout: float = 120, *, quick: bool = False) -> None:
    """Delete a namespace and wait until it is gone (nothing to do if it does not exist).

    ``quick`` (a test's own namespace at teardown): once the namespace is terminating, every pod's grace is
    shortened to 1 s, so the wait is not spent on preStop sleeps and drains nobody measures. The kubelets still
    stop the containers before the pods go, so the next test starts on nodes where nothing of this one runs.
    """
    import contextlib

    from kubernetes.client.exceptions import ApiException

    from resilience_tests.waiting import wait_until

    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            return
        raise
    if quick:  # no pod can be created in a terminating namespace, so none escapes the shorter grace
        core.delete_collection_namespaced_pod(name, grace_period_seconds=1)
        wait_until(f"the pods of {name} gone", lambda: not core.list_namespaced_pod(name).items, timeout=timeout)
        # The namespace controller looks again only after the longest grace the pods' specs give; a change to
        # the namespace makes it look now.
        with contextlib.suppress(ApiException):
            core.patch_namespace(name, {"metadata": {"labels": {"resilience-tests.io/pods-gone": "true"}}})

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_until(f"namespace {name} deleted", gone, timeout=timeout)


def service_account_kubeconfig(local_cluster: LocalCluster, core: client.CoreV1Api, path: Path, *,
                               namespace: str = "resilience-tests", account: str = "resilience-tests",
                               ) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount only (a token from the TokenRequest API), with the
    local cluster's context name (faults find the local cluster's host hooks by it)."""
    context = local_cluster.context
    import yaml

    token = core.create_namespaced_service_account_token(account, namespace, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))).status.token
    admin = yaml.safe_load(local_cluster.kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "local", "cluster": server}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": "local", "user": account}}]}))
    path.chmod(0o600)
    return path


def ctrl_c_reaches_it() -> None:
    """``preexec_fn`` for a process a test interrupts with SIGINT, as an operator's Ctrl-C would: SIGINT back to
    its default. A command started in the background by a non-interactive shell (``bash .ci/run &``) inherits
    SIGINT ignored, and so would every process the tests start."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class AuditLog:
    """The API server's audit log read from a mark on: what was written, read from the server itself rather
    than from our own code (one JSON event per line, Metadata level, every write request)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def writes(self, *, namespace: str | None = None, user: str | None = None) -> list[dict[str, object]]:
        """Write requests logged since the mark (optionally only those in ``namespace`` or made by ``user``)."""
        import json

        if not self.path.exists():
            raise AssertionError(f"the API server's audit log {self.path} does not exist")
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            lines = handle.read().splitlines()
        found = []
        for line in lines:
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if event.get("verb") not in WRITE_VERBS or event.get("stage") != "ResponseComplete":
                continue
            if namespace is not None and ref.get("namespace") != namespace:
                continue
            if user is not None and (event.get("user") or {}).get("username") != user:
                continue
            found.append(event)
        return found

    @staticmethod
    def describe(events: list[dict[str, object]]) -> str:
        """``patch configmaps kube-system/x (200)`` per event, for an assertion message."""
        out = []
        for event in events:
            ref = event.get("objectRef") or {}
            assert isinstance(ref, dict)
            code = (event.get("responseStatus") or {}).get("code")  # type: ignore[union-attr]
            out.append(f"{event.get('verb')} {ref.get('resource')} {ref.get('namespace', '')}/{ref.get('name', '')}"
                       f" ({code})")
        return "; ".join(out)


def cleanup_as_the_cli_does(kube: Kube, **kwargs: Any) -> list[CleanupAction]:
    """``cleanup`` with the cluster's platform doing what lies outside the API (host-side restore, load stop), as
    ``resilience cleanup`` runs it."""
    from resilience_tests.cluster.cleanup import cleanup
    from resilience_tests.platform import detect, host_restore

    platform = detect(kube)
    return cleanup(kube, host_restore=host_restore(platform, kube), stop_load=platform.stop_load, **kwargs)
