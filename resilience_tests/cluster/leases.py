"""Run liveness: a live run holds a ``coordination.k8s.io`` Lease, so that cleanup never touches it.

Each run that changes a cluster holds the Lease ``run-<run id>`` in the namespace ``resilience-tests`` (created
on first use), renewed every ``RENEW_EVERY`` seconds and valid for ``LEASE_SECONDS``. A run that ends deletes its
Lease; a run that is killed stops renewing it, and ``LEASE_SECONDS`` after its last renewal it counts as dead:
``resilience cleanup`` may then undo what it left. Times are the renewing host's clock, compared with the
cleaning host's: hosts whose clocks differ by more than a few seconds should add that to the wait.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import os
import socket
import threading
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from resilience_tests.cluster.kube import Kube
from resilience_tests.errors import ResilienceError
from resilience_tests.labels import object_name

LEASE_NAMESPACE = "resilience-tests"
LEASE_SECONDS = 30
RENEW_EVERY = 10.0


class LeaseError(ResilienceError):
    """The run could not take or keep its lease."""


def lease_name(run_id: str) -> str:
    """``run-<run id>`` as a valid object name."""
    return object_name("run-" + run_id)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class RunState:
    """Whether a run is alive, and since when it has not renewed its lease."""

    alive: bool
    holder: str = ""
    silent_for: float | None = None  # seconds since the last renewal (None: no lease at all)

    def describe(self) -> str:
        if self.silent_for is None:
            return "no lease (the run ended or never held one)"
        state = "alive" if self.alive else "dead"
        return f"{state}: lease held by {self.holder}, renewed {self.silent_for:.0f} s ago"


def run_state(kube: Kube, run_id: str) -> RunState:
    """Whether ``run_id`` still renews its lease."""
    try:
        lease = kube.raw.coordination.read_namespaced_lease(lease_name(run_id), LEASE_NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return RunState(False)
        raise
    spec = lease.spec
    renewed = spec.renew_time or spec.acquire_time
    if renewed is None:
        return RunState(False, spec.holder_identity or "", None)
    silent = (_now() - renewed).total_seconds()
    return RunState(silent < (spec.lease_duration_seconds or LEASE_SECONDS), spec.holder_identity or "", silent)


class RunLease:
    """The lease of one live run: :meth:`start` takes it and renews it in a thread, :meth:`stop` gives it back."""

    def __init__(self, kube: Kube, run_id: str) -> None:
        self.kube = kube
        self.run_id = run_id
        self.name = lease_name(run_id)
        self.holder = f"{getpass.getuser()}@{socket.gethostname()}/{os.getpid()}"
        self.problem = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RunLease:
        """Take the lease (creating the namespace if needed); LeaseError names what is missing."""
        try:
            self._ensure_namespace()
            now = _now()
            self.kube.raw.coordination.create_namespaced_lease(LEASE_NAMESPACE, client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, labels={"app.kubernetes.io/managed-by":
                                                                     "resilience-tests"}),
                spec=client.V1LeaseSpec(holder_identity=self.holder, lease_duration_seconds=LEASE_SECONDS,
                                         acquire_time=now, renew_time=now)))
        except ApiException as exc:
            raise LeaseError(f"cannot hold the run's lease {LEASE_NAMESPACE}/{self.name}: HTTP {exc.status} "
                             f"{exc.reason}", hint="allow create, update and delete of leases in namespace "
                                                   f"{LEASE_NAMESPACE} (see deploy/rbac.yaml)") from None
        self._thread = threading.Thread(target=self._renew, daemon=True, name=f"lease-{self.name}")
        self._thread.start()
        return self

    def _ensure_namespace(self) -> None:
        try:
            self.kube.raw.core.read_namespace(LEASE_NAMESPACE)
        except ApiException as exc:
            if exc.status != 404:
                raise
            try:
                self.kube.raw.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
                    name=LEASE_NAMESPACE)))
            except ApiException as created:
                if created.status != 409:
                    raise

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            try:
                self.kube.raw.coordination.patch_namespaced_lease(self.name, LEASE_NAMESPACE, {"spec": {
                    "renewTime": _now().isoformat(), "holderIdentity": self.holder}})
                self.problem = ""
            except Exception as exc:  # keep trying: the API server may come back before the lease expires
                self.problem = f"lease renewal failed: {type(exc).__name__}"

    def stop(self) -> None:
        """Stop renewing and delete the lease (the run is over)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        # If this fails, the lease expires by itself and cleanup then sees the run as dead.
        with contextlib.suppress(Exception):
            self.kube.raw.coordination.delete_namespaced_lease(self.name, LEASE_NAMESPACE)

    def __enter__(self) -> RunLease:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
