"""Run liveness: a live run holds a ``coordination.k8s.io`` Lease, so that cleanup never touches it.

Each run that changes a cluster holds the Lease ``run-<run id>`` in the namespace ``resilience-tests`` (created
on first use), renewed every ``RENEW_EVERY`` seconds and valid for ``LEASE_SECONDS``. A run that ends deletes its
Lease; a run that is killed stops renewing it, and ``LEASE_SECONDS`` after its last renewal it counts as dead:
``resilience cleanup`` may then undo what it left. Times are the renewing host's clock, compared with the
cleaning host's: hosts whose clocks differ by more than a few seconds should add that to the wait.

A run killed on the host that cleans up need not be waited for: the lease's holder identity
``user@host/pid/start/space`` names the process (its pid and start time) and the pid space it lives in (the
kernel's boot id and pid namespace, so that a container or another machine with the same host name is not
mistaken for this one). When that process is gone, or the pid now belongs to a process that started at another
time, the run is dead at once, whatever the lease's expiry says. Identities written before the start time was
kept (``user@host/pid``) are judged by the pid alone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import hashlib
import os
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from resilience_tests.cluster.kube import Kube
from resilience_tests.errors import ResilienceError
from resilience_tests.labels import object_name
from resilience_tests.procs import process_gone, process_started

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
    gone: str = ""  # why the holder is known dead on this host ("pid 4810 on this host is gone"), if it is

    def describe(self) -> str:
        if self.gone:
            return f"dead: {self.gone}"
        if self.silent_for is None:
            return "no lease (the run ended or never held one)"
        state = "alive" if self.alive else "dead"
        return f"{state}: lease held by {self.holder}, renewed {self.silent_for:.0f} s ago"


_HOLDER = re.compile(r"(?P<user>[^@/]*)@(?P<host>[^/]+)/(?P<pid>[0-9]{1,10})"
                     r"(?:/(?P<start>[0-9]{1,12}(?:\.[0-9]{1,6})?)(?:/(?P<space>[0-9a-f]{1,64}))?)?")


def pid_space() -> str:
    """Which pid space this process lives in: a digest of the kernel's boot id and this pid namespace.

    Two containers (or machines) with the same host name have different ones; '' where neither can be read.
    """
    parts = []
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12] if parts else ""


def holder_identity(pid: int | None = None) -> str:
    """``user@host/pid/start/space`` of this process (or of ``pid`` on this host)."""
    pid = os.getpid() if pid is None else pid
    started = process_started(pid) or 0.0
    space = pid_space()
    return f"{getpass.getuser()}@{socket.gethostname()}/{pid}/{started:.2f}" + (f"/{space}" if space else "")


def dead_here(holder: str) -> str:
    """Why the process named by a holder identity is known dead: it is on this host and gone, or its pid is
    another process now; '' when it runs, or is on another host (the lease's expiry decides there)."""
    found = _HOLDER.fullmatch(holder)
    if found is None or found["host"] != socket.gethostname():
        return ""
    if found["space"] is not None and found["space"] != pid_space():
        return ""  # the same host name, but another machine or container
    started = float(found["start"]) if found["start"] is not None else None
    return process_gone(int(found["pid"]), started)


def run_state(kube: Kube, run_id: str) -> RunState:
    """Whether ``run_id`` still renews its lease (and, when it is held on this host, still runs)."""
    try:
        lease = kube.raw.coordination.read_namespaced_lease(lease_name(run_id), LEASE_NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return RunState(False)
        if isinstance(exc, ResilienceError):  # a 403 already says who may not do what
            raise
        raise LeaseError(f"cannot read the lease {LEASE_NAMESPACE}/{lease_name(run_id)} of run {run_id}: HTTP "
                         f"{exc.status} {exc.reason}", hint="allow get of leases in namespace "
                                                            f"{LEASE_NAMESPACE} (see deploy/rbac.yaml)") from None
    spec = lease.spec
    return judge(spec.holder_identity or "", spec.renew_time or spec.acquire_time,
                 spec.lease_duration_seconds or LEASE_SECONDS)


def judge(holder: str, renewed: dt.datetime | None, duration: float) -> RunState:
    """A run's state from its lease: dead if its holder is known dead on this host, else by the lease's expiry."""
    silent = None if renewed is None else (_now() - renewed).total_seconds()
    gone = dead_here(holder)
    if gone:
        return RunState(False, holder, silent, gone)
    if silent is None:
        return RunState(False, holder, None)
    return RunState(silent < duration, holder, silent)


class RunLease:
    """The lease of one live run: :meth:`start` takes it and renews it in a thread, :meth:`stop` gives it back."""

    def __init__(self, kube: Kube, run_id: str) -> None:
        self.kube = kube
        self.run_id = run_id
        self.name = lease_name(run_id)
        self.holder = holder_identity()
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
