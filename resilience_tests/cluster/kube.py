"""A thin facade over the kubernetes client with the operations faults need.

Changes faults make are recorded on the objects themselves, through
:mod:`resilience_tests.cluster.changes`, so ``resilience cleanup`` can undo what a killed run left behind.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from resilience_tests.cluster.client import ClusterAccessError, ClusterRef, api_client, api_message
from resilience_tests.cluster.resources import Resources
from resilience_tests.cluster.selection import NodeInfo, PodInfo, selector_text
from resilience_tests.errors import ResilienceError
from resilience_tests.labels import selects


class NotFound(ResilienceError):
    """The object asked for does not exist (HTTP 404)."""


class EvictionFailed(ResilienceError):
    """The Eviction API refused for another reason than a PodDisruptionBudget."""


class EvictionBlocked(ResilienceError):
    """The API server refused an eviction (HTTP 429): a PodDisruptionBudget allows no disruption."""

    def __init__(self, pod: str, pdbs: list[str], reason: str) -> None:
        self.pod = pod
        self.pdbs = pdbs
        what = f"PDB {', '.join(pdbs)}" if pdbs else "a disruption budget"
        super().__init__(f"eviction of {pod} blocked by {what}: {reason}")


class ExecError(ResilienceError):
    """A command could not be run in a pod, or did not end in time."""


@dataclass(frozen=True)
class Workload:
    """A Deployment, StatefulSet or DaemonSet by kind, namespace and name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} in {self.namespace}"


def pod_info(pod: dict[str, Any]) -> PodInfo:
    """What selection and guardrails need of a pod (from its JSON)."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    controller = next((o.get("kind", "") for o in meta.get("ownerReferences") or [] if o.get("controller")), "")
    return PodInfo(name=meta["name"], namespace=meta.get("namespace", ""), node=spec.get("nodeName") or "",
                   labels=dict(meta.get("labels") or {}), terminating=meta.get("deletionTimestamp") is not None,
                   controller=controller, mirror="kubernetes.io/config.mirror" in (meta.get("annotations") or {}),
                   finished=status.get("phase") in ("Succeeded", "Failed"),
                   emptydir=tuple(v["name"] for v in spec.get("volumes") or [] if "emptyDir" in v))


class RawApis:
    """The kubernetes client's API objects: for the modules of cluster/ (and tests) only. Everything else asks
    :class:`Kube` for an operation, so that the client's models and ``ApiException`` stay in this layer."""

    def __init__(self, api: client.ApiClient) -> None:
        self.client = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.policy = client.PolicyV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.autoscaling = client.AutoscalingV2Api(api)
        self.apiregistration = client.ApiregistrationV1Api(api)


class Kube:
    """API access for one cluster. Build with :meth:`connect`; close when done."""

    def __init__(self, api: client.ApiClient, ref: ClusterRef) -> None:
        self.ref = ref
        self.raw = RawApis(api)

    def resources(self) -> Resources:
        """Any served kind by REST path. Its discovery is made on first use and kept by the object returned, so
        each call sees the kinds served then (a CRD installed since, e.g. Velero's, is found)."""
        return Resources(self.raw.client)

    @property
    def server(self) -> str:
        """The API server's URL."""
        return str(self.raw.client.configuration.host)

    @classmethod
    def connect(cls, ref: ClusterRef, *, timeout: float = 5) -> Kube:
        """Connect and check the API server answers within ``timeout`` seconds."""
        kube = cls(api_client(ref), ref)
        try:
            kube.server_version(timeout=timeout)
        except ClusterAccessError:
            kube.close()
            raise
        return kube

    def close(self) -> None:
        """Release connection pools."""
        self.raw.client.close()

    def server_version(self, *, timeout: float = 5) -> str:
        """The API server's git version, e.g. v1.36.3."""
        try:
            info = client.VersionApi(self.raw.client).get_code(_request_timeout=timeout)
        except (HTTPError, OSError, ApiException) as exc:
            host = self.raw.client.configuration.host
            raise ClusterAccessError(f"API server {host} is unreachable ({type(exc).__name__})",
                                     hint="check that the cluster runs and the kubeconfig/context point at it"
                                     ) from None
        return str(info.git_version)

    # ------------------------------------------------------------- reading
    def pods(self, namespace: str, selector: str | None = None) -> list[PodInfo]:
        """Pods of ``namespace`` matching a label selector."""
        return [pod_info(p) for p in self.pod_objects(namespace, selector)]

    def pods_on_nodes(self, nodes: list[str]) -> list[PodInfo]:
        """Pods of every namespace bound to ``nodes``."""
        found: list[PodInfo] = []
        for node in nodes:
            items = raw_list(self.raw.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}")["items"]
            found += [pod_info(p) for p in items]
        return found

    def pod_objects(self, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        """Pods of ``namespace`` matching a label selector, as the server sent them."""
        return list(raw_list(self.raw.core.list_namespaced_pod, namespace, label_selector=selector or None)["items"])

    def node_objects(self) -> list[dict[str, Any]]:
        """All nodes, as the server sent them."""
        return list(raw_list(self.raw.core.list_node)["items"])

    def services(self, namespace: str) -> list[Any]:
        """Services of the namespace (client models: what :func:`load.target.service_url` reads)."""
        return list(self.raw.core.list_namespaced_service(namespace).items)

    def nodes(self) -> list[NodeInfo]:
        """All nodes."""
        return [NodeInfo(name=n["metadata"]["name"], labels=dict(n["metadata"].get("labels") or {}),
                         unschedulable=bool(n.get("spec", {}).get("unschedulable")))
                for n in self.node_objects()]

    def audit_objects(self, namespace: str) -> list[dict[str, Any]]:
        """What the resilience audit reads of a namespace, as the server sent it (each item with its kind):
        workloads and bare pods, Services, PodDisruptionBudgets, HorizontalPodAutoscalers, NetworkPolicies,
        ResourceQuotas and LimitRanges."""
        listers = (("Deployment", self.raw.apps.list_namespaced_deployment),
                   ("StatefulSet", self.raw.apps.list_namespaced_stateful_set),
                   ("DaemonSet", self.raw.apps.list_namespaced_daemon_set),
                   ("Pod", self.raw.core.list_namespaced_pod), ("Service", self.raw.core.list_namespaced_service),
                   ("PodDisruptionBudget", self.raw.policy.list_namespaced_pod_disruption_budget),
                   ("HorizontalPodAutoscaler", self.raw.autoscaling.list_namespaced_horizontal_pod_autoscaler),
                   ("NetworkPolicy", self.raw.networking.list_namespaced_network_policy),
                   ("ResourceQuota", self.raw.core.list_namespaced_resource_quota),
                   ("LimitRange", self.raw.core.list_namespaced_limit_range))
        found: list[dict[str, Any]] = []
        for kind, lister in listers:
            for item in raw_list(lister, namespace)["items"]:
                if kind == "Pod" and (item.get("metadata") or {}).get("ownerReferences"):
                    continue  # pods of a workload are audited through it
                found.append({**item, "kind": kind})
        return found

    def namespace_exists(self, name: str) -> bool:
        """Whether the namespace exists."""
        try:
            self.raw.core.read_namespace(name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def exec(self, pod: str, namespace: str, command: list[str], *, stdin: str | None = None,
             container: str | None = None, timeout: float = 60) -> tuple[int, str, str]:
        """Run ``command`` in a pod's container through the API (no shell needed in the image); feed it
        ``stdin`` and close it. Returns (exit code, stdout, stderr); raises ExecError if it cannot run or
        does not end in ``timeout`` seconds."""
        import time

        from kubernetes.stream import stream

        try:
            resp = stream(self.raw.core.connect_get_namespaced_pod_exec, pod, namespace, command=command,
                          container=container, stdin=stdin is not None, stdout=True, stderr=True, tty=False,
                          _preload_content=False, _request_timeout=timeout)
        except (ApiException, HTTPError, OSError) as exc:
            raise ExecError(f"exec in {namespace}/{pod} failed: {getattr(exc, 'reason', None) or exc}") from None
        out: list[str] = []
        err: list[str] = []
        try:
            if stdin is not None:
                resp.write_stdin(stdin)
                resp.close_channel(0)  # end of input (the v5 protocol's close frame)
            deadline = time.monotonic() + timeout
            while resp.is_open() and time.monotonic() < deadline:
                resp.update(timeout=1)
                if resp.peek_stdout():
                    out.append(resp.read_stdout())
                if resp.peek_stderr():
                    err.append(resp.read_stderr())
            if resp.is_open():
                raise ExecError(f"{' '.join(command)} in {namespace}/{pod} did not end in {timeout:.0f} s")
            out.append(resp.read_stdout() or "")
            err.append(resp.read_stderr() or "")
            code = resp.returncode
        finally:
            resp.close()
        return int(code if code is not None else -1), "".join(out), "".join(err)

    def proxy(self, pod: str, namespace: str, port: int, path: str, *, method: str = "GET", body: str | None = None,
              timeout: float = 60) -> tuple[int, str]:
        """An HTTP request to ``port`` of a pod through the API server's pod proxy (the account needs
        ``pods/proxy``; nothing but the API server is contacted). Returns (HTTP status, body); raises ExecError
        if the API server does not answer in ``timeout`` seconds."""
        from urllib.parse import parse_qsl, quote

        route, _, query = path.partition("?")
        headers = {"Accept": "*/*", "Content-Type": "application/octet-stream"}
        where = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}:{int(port)}/proxy"
        try:
            request = self.raw.client.param_serialize(
                method=method, resource_path=where + route,
                query_params=parse_qsl(query), header_params=headers, auth_settings=["BearerToken"])
            data = None if method in ("GET", "HEAD") else (body or "").encode()
            response = self.raw.client.call_api(*request[:3], data, request[4], _request_timeout=(10, timeout))
            return int(response.status), response.read().decode(errors="replace")
        except ApiException as exc:
            return int(exc.status or 0), str(exc.body or exc.reason or "")
        except (HTTPError, OSError) as exc:
            raise ExecError(f"{method} {namespace}/{pod}:{port}{path} through the API server failed: {exc}") from None

    def delete_pod(self, name: str, namespace: str, grace_period_seconds: int | None = None) -> bool:
        """Delete a pod; False if it was gone already."""
        try:
            self.raw.core.delete_namespaced_pod(name, namespace, grace_period_seconds=grace_period_seconds)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def ingresses(self, namespace: str) -> list[Any]:
        """Ingresses of the namespace; none if this account may not list them (or the API is not served)."""
        try:
            return list(self.raw.networking.list_namespaced_ingress(namespace).items)
        except ApiException as exc:
            if exc.status in (403, 404):
                return []
            raise

    def workload_labels(self, workload: Workload) -> dict[str, str]:
        """The labels a workload selects its pods by (its matchLabels); NotFound if it does not exist."""
        try:
            obj = self.read_workload(workload)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(f"{workload} does not exist") from None
            raise
        return dict(obj.spec.selector.match_labels or {})

    def read_workload(self, workload: Workload) -> Any:
        """The workload object (client model)."""
        readers = {"deployment": self.raw.apps.read_namespaced_deployment,
                   "statefulset": self.raw.apps.read_namespaced_stateful_set,
                   "daemonset": self.raw.apps.read_namespaced_daemon_set}
        return readers[workload.kind](workload.name, workload.namespace)

    def patch_workload(self, workload: Workload, body: dict[str, Any]) -> Any:
        """Strategic-merge patch of a workload."""
        patchers = {"deployment": self.raw.apps.patch_namespaced_deployment,
                    "statefulset": self.raw.apps.patch_namespaced_stateful_set,
                    "daemonset": self.raw.apps.patch_namespaced_daemon_set}
        return patchers[workload.kind](workload.name, workload.namespace, body)

    # ------------------------------------------------------------- nodes
    def evict(self, pod: str, namespace: str) -> None:
        """Evict a pod through the Eviction API; raise EvictionBlocked on HTTP 429."""
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=namespace))
        try:
            self.raw.core.create_namespaced_pod_eviction(pod, namespace, body)
        except ApiException as exc:
            if exc.status == 404:
                return
            if exc.status == 403 and "NamespaceTerminating" in (exc.body or ""):
                return  # the namespace controller deletes it; the drain waits for it to go
            if exc.status == 429:
                reason = _api_message(exc)
                raise EvictionBlocked(f"{namespace}/{pod}", self.blocking_pdbs(pod, namespace), reason) from None
            if isinstance(exc, ResilienceError):  # a refusal (Forbidden) says itself
                raise
            raise EvictionFailed(f"HTTP {exc.status} {exc.reason}: {_api_message(exc)}") from None

    def blocking_pdbs(self, pod: str, namespace: str) -> list[str]:
        """Names of PDBs selecting ``pod`` that allow no disruption now."""
        try:
            labels = self.raw.core.read_namespaced_pod(pod, namespace).metadata.labels or {}
        except ApiException:
            return []
        names = []
        for pdb in self.raw.policy.list_namespaced_pod_disruption_budget(namespace).items:
            selector = self.raw.client.sanitize_for_serialization(pdb.spec.selector)  # None, or as the API writes it
            if selects(selector, labels) and (pdb.status.disruptions_allowed or 0) == 0:
                names.append(pdb.metadata.name)
        return names

    # ------------------------------------------------------------- workloads
    def replicas(self, workload: Workload) -> int:
        """Desired replicas of a Deployment or StatefulSet."""
        return int(self.read_workload(workload).spec.replicas or 0)

    def restart(self, workload: Workload) -> None:
        """Rolling restart, as `kubectl rollout restart` does."""
        now = dt.datetime.now(dt.UTC).isoformat()
        self.patch_workload(workload, {"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": now}}}}})

    def stuck_pods(self, workload: Workload) -> list[str]:
        """Pods of ``workload`` whose containers cannot start (image pull errors, crash loops), one line each."""
        selector = selector_text(self.workload_labels(workload))
        items = raw_list(self.raw.core.list_namespaced_pod, workload.namespace, label_selector=selector)["items"]
        return [line for pod in items for line in stuck_reasons(pod)]

    def rollout_pending(self, workload: Workload) -> str:
        """'' when the rollout is complete, else what it still waits for."""
        obj = self.read_workload(workload)
        status, spec = obj.status, obj.spec
        if (status.observed_generation or 0) < (obj.metadata.generation or 0):
            return "the controller to observe the new generation"
        if workload.kind == "daemonset":
            want = status.desired_number_scheduled or 0
            got = (status.updated_number_scheduled or 0, status.number_available or 0)
            return "" if got == (want, want) else f"{got[0]}/{want} updated, {got[1]}/{want} available"
        want = spec.replicas or 0
        updated, ready = status.updated_replicas or 0, status.ready_replicas or 0
        total = status.replicas or 0
        if updated == want and ready == want and total == want:
            return ""
        return f"{updated}/{want} updated, {ready}/{want} ready, {total} total replicas"


STUCK_REASONS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
                 "CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError")


def stuck_reasons(pod: dict[str, Any]) -> list[str]:
    """Why the containers of a pod (raw JSON) cannot run, one line each ([] if nothing is stuck)."""
    found = []
    statuses = (pod.get("status") or {}).get("initContainerStatuses", []) + \
        (pod.get("status") or {}).get("containerStatuses", [])
    for status in statuses:
        waiting = (status.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        if reason in STUCK_REASONS:
            name = pod["metadata"]["name"]
            node = (pod.get("spec") or {}).get("nodeName") or "?"
            what = f"image {status.get('image')} cannot be pulled" if "Image" in reason else "container cannot run"
            detail = (waiting.get("message") or "").splitlines()[0][:160] if waiting.get("message") else ""
            found.append(f"pod {name} on {node}: {what} ({reason}{': ' + detail if detail else ''})")
    return found


def raw_list(lister: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Call a client ``list_*`` method and return the server's JSON, without building client models.

    Deserialising into the client's models costs ~5 ms per pod; 10,000 pods took 48 s that way.
    """
    response = lister(*args, _preload_content=False, **kwargs)
    try:
        data: dict[str, Any] = json.loads(response.data)
    finally:
        response.release_conn()
    return data


def _api_message(exc: ApiException) -> str:
    return api_message(exc.body, exc.reason)


def is_transient(exc: BaseException) -> bool:
    """Whether an API call that raised ``exc`` may succeed if tried again: the server was unreachable, timed out,
    overloaded (429) or failed (5xx). A 4xx answer (not found, forbidden, conflict) is final."""
    if isinstance(exc, ApiException):
        return exc.status in (0, 429) or (exc.status or 0) >= 500
    return isinstance(exc, HTTPError | OSError | ClusterAccessError)
