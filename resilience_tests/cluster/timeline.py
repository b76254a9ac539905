"""The timeline: what the cluster did while an experiment ran.

Watches on pods, EndpointSlices, events and HorizontalPodAutoscalers of the
target namespace and on all nodes are turned into timestamped records whenever
something an SLA check or a report cares about changes (pod phase/readiness/
termination and exit codes, node conditions and taints, endpoint readiness, an
HPA's replicas, metrics and conditions). Fault start and end marks go
in the same list. Watches resume from their last resourceVersion after a
dropped connection or an API server restart; when that version has expired
(HTTP 410) they relist and record only what changed meanwhile.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from resilience_tests.cluster.hpa import HpaState, hpa_state
from resilience_tests.cluster.kube import Kube, raw_list

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class ContainerState:
    """One container of a pod, as the timeline saw it.

    Attributes:
        restarts: its restart count.
        exit_code: its exit code while it is terminated now (None while it runs or waits).
        reason: why it terminated now (``Completed``, ``Error``, ``OOMKilled`` ...).
        last_exit_code: the exit code of its previous run, once it has restarted.
    """

    restarts: int = 0
    exit_code: int | None = None
    reason: str | None = None
    last_exit_code: int | None = None


@dataclass(frozen=True)
class PodState:
    """The parts of a pod the timeline tracks, typed: what the checks and the plot read.

    Attributes:
        phase: the pod's phase.
        ready: its Ready condition is True.
        node: the node it is bound to.
        terminating: it has a deletion timestamp.
        grace: its termination grace period (seconds).
        labels: its labels.
        containers: its containers by name.
    """

    phase: str | None = None
    ready: bool = False
    node: str | None = None
    terminating: bool = False
    grace: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    containers: Mapping[str, ContainerState] = field(default_factory=dict)

    @property
    def exits(self) -> dict[str, int]:
        """Exit codes of the containers terminated now, by container."""
        return {name: c.exit_code for name, c in sorted(self.containers.items()) if c.exit_code is not None}

    def shown(self) -> dict[str, Scalar]:
        """Node and the exits, as a listing shows them (``exit.<c>``, ``reason.<c>``)."""
        terminated = sorted((n, c) for n, c in self.containers.items() if c.exit_code is not None)
        return {"node": self.node, **{f"exit.{n}": c.exit_code for n, c in terminated},
                **{f"reason.{n}": c.reason for n, c in terminated if c.reason is not None}}

    def to_json(self) -> dict[str, Any]:
        """As the journal writes it."""
        return {"phase": self.phase, "ready": self.ready, "node": self.node, "terminating": self.terminating,
                "grace": self.grace, "labels": dict(self.labels),
                "containers": {n: dataclasses.asdict(c) for n, c in sorted(self.containers.items())}}


Details = tuple[tuple[str, Scalar], ...]


class ActionData(Protocol):
    """The typed value of an action record (a frozen dataclass of the layer that records it, read by the checks
    as it is): the journal writes it as a JSON object among the record's details."""

    def to_json(self) -> dict[str, Any]:
        """Its fields as JSON-ready data."""


@dataclass(frozen=True)
class Record:
    """One observation.

    Attributes:
        t: wall-clock time (epoch seconds) when it was observed.
        kind: ``pod``, ``node``, ``endpoints``, ``event``, ``hpa``, ``fault``, ``action`` or ``watch``.
        name: the object (``namespace/name`` for namespaced ones) or fault name.
        change: short verb: ``added``, ``updated``, ``deleted``, ``start``, ``end``, ``resumed`` ...
        details: the observed state, flat (every kind but pods).
        pod: a pod's state (pod records only).
        data: a typed value: an action's (backup, disaster, restore) or an HPA's
            (:class:`~resilience_tests.cluster.hpa.HpaState`).
    """

    t: float
    kind: str
    name: str
    change: str
    details: Details = ()
    pod: PodState | None = None
    data: ActionData | None = None

    def values(self) -> dict[str, Any]:
        """The details with the typed value's fields: what the journal writes and a listing shows."""
        return {**dict(self.details), **(self.data.to_json() if self.data is not None else {})}

    def get(self, key: str, default: Scalar = None) -> Scalar:
        """A detail by key."""
        return dict(self.details).get(key, default)

    def to_json(self) -> dict[str, Any]:
        """As the journal writes it."""
        data: dict[str, Any] = {"t": self.t, "kind": self.kind, "name": self.name, "change": self.change}
        if self.pod is not None:
            data["pod"] = self.pod.to_json()
        else:
            data["details"] = self.values()
        return data


@dataclass(frozen=True)
class PodRecord:
    """A pod record with its state: what :func:`pod_records` gives the checks and the plot."""

    t: float
    name: str
    change: str
    state: PodState

    @property
    def pod(self) -> str:
        """The pod's name, without its namespace."""
        return self.name.rpartition("/")[2]


def pod_records(records: Iterable[Record]) -> list[PodRecord]:
    """The pod records among ``records``, in time order."""
    found = [PodRecord(r.t, r.name, r.change, r.pod) for r in records if r.pod is not None]
    return sorted(found, key=lambda r: r.t)


Obj = dict[str, Any]
"""An API object as the server sent it (JSON): the timeline never builds client models, which is ~50x slower."""


def _conditions(obj: Obj) -> dict[str, str]:
    return {c.get("type", ""): c.get("status", "") for c in obj.get("status", {}).get("conditions") or []}


def pod_state(pod: Obj) -> PodState:
    """The parts of a pod the timeline tracks."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    containers = {}
    for cs in status.get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        containers[cs.get("name", "")] = ContainerState(restarts=cs.get("restartCount", 0),
                                                        exit_code=term.get("exitCode"), reason=term.get("reason"),
                                                        last_exit_code=last.get("exitCode"))
    return PodState(phase=status.get("phase"), ready=_conditions(pod).get("Ready") == "True",
                    node=spec.get("nodeName"), terminating=meta.get("deletionTimestamp") is not None,
                    grace=spec.get("terminationGracePeriodSeconds"), labels=dict(meta.get("labels") or {}),
                    containers=containers)


def node_state(node: Obj) -> Details:
    """The parts of a node the timeline tracks."""
    spec = node.get("spec", {})
    taints = sorted(f"{t.get('key')}:{t.get('effect')}" for t in spec.get("taints") or [])
    return (("ready", _conditions(node).get("Ready", "Unknown")),
            ("taints", ",".join(taints)), ("unschedulable", bool(spec.get("unschedulable"))))


def endpoints_state(eps: Obj) -> Details:
    """Ready/serving/terminating per endpoint of an EndpointSlice."""
    rows = []
    for ep in eps.get("endpoints") or []:
        ref = (ep.get("targetRef") or {}).get("name") or ",".join(ep.get("addresses") or [])
        cond = ep.get("conditions") or {}
        flags = "".join(flag for flag, key in (("R", "ready"), ("S", "serving"), ("T", "terminating"))
                        if cond.get(key))
        rows.append(f"{ref}={flags or '-'}")
    return (("endpoints", " ".join(sorted(rows))),)


def event_state(ev: Obj) -> Details:
    """Reason, type, object and message of an Event."""
    obj = ev.get("involvedObject") or {}
    return (("reason", ev.get("reason")), ("type", ev.get("type")),
            ("object", f"{obj.get('kind')}/{obj.get('name')}" if obj else ""),
            ("message", (ev.get("message") or "")[:300]))


State = Details | PodState | HpaState


@dataclass
class _Source:
    kind: str
    lister: Callable[..., Any]
    state: Callable[[Obj], State]
    namespaced: bool
    once: bool = False  # events: record each object once, never its updates
    optional: bool = False  # HPAs: a namespace the account may not watch them in is recorded without them
    known: dict[str, State] = field(default_factory=dict)

    def record(self, key: str, change: str, state: State) -> Record:
        """A record of ``state`` observed now."""
        if isinstance(state, PodState):
            return Record(time.time(), self.kind, key, change, pod=state)
        if isinstance(state, HpaState):
            return Record(time.time(), self.kind, key, change, data=state)
        return Record(time.time(), self.kind, key, change, state)


class Timeline:
    """Records what happens in ``namespace`` and on all nodes, from :meth:`start` to :meth:`stop`.

    Args:
        kube: the cluster.
        namespace: namespace of the target.
        watch_timeout: seconds a single watch request lasts before it is renewed
            (bounds how long :meth:`stop` waits).
    """

    def __init__(self, kube: Kube, namespace: str, *, watch_timeout: int = 5) -> None:
        self.kube = kube
        self.namespace = namespace
        self.watch_timeout = watch_timeout
        self._records: list[Record] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.resumes = 0
        core, disc = kube.raw.core, kube.raw.discovery
        self._sources = [
            _Source("pod", core.list_namespaced_pod, pod_state, True),
            _Source("node", core.list_node, node_state, False),
            _Source("endpoints", disc.list_namespaced_endpoint_slice, endpoints_state, True),
            _Source("event", core.list_namespaced_event, event_state, True, once=True),
            _Source("hpa", kube.raw.autoscaling.list_namespaced_horizontal_pod_autoscaler, hpa_state, True,
                    optional=True),
        ]

    # ---------------------------------------------------------------- public
    def start(self) -> Timeline:
        """List every source (recording initial states) and start watching. An optional source the account
        may not list (HPAs: HTTP 403, or 404 where autoscaling/v2 is not served) is left out with a ``watch``
        record saying so."""
        for source in self._sources:
            try:
                rv = self._relist(source, initial=True)
            except ApiException as exc:
                if not source.optional or exc.status not in (403, 404):
                    raise
                self.mark("watch", source.kind, "unavailable", reason=f"HTTP {exc.status}")
                continue
            thread = threading.Thread(target=self._watch, args=(source, rv), daemon=True,
                                      name=f"timeline-{source.kind}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Record]:
        """Stop the watches and return every record."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.watch_timeout + 5)
        return self.records()

    def mark(self, kind: str, name: str, change: str, *, data: ActionData | None = None,
             **details: Scalar) -> Record:
        """Add a record of our own (fault start/end, phase marks, a fault's actions with their typed value)."""
        record = Record(time.time(), kind, name, change, tuple(sorted(details.items())), data=data)
        self._append(record)
        return record

    def records(self, kind: str | None = None) -> list[Record]:
        """A copy of the records so far, optionally of one kind."""
        with self._lock:
            return [r for r in self._records if kind is None or r.kind == kind]

    def wait_for(self, predicate: Callable[[Record], bool], timeout: float, *, since: float = 0.0) -> Record | None:
        """Block until a record with ``t >= since`` satisfies ``predicate`` (None on timeout)."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for record in self._records[seen:]:
                    if record.t >= since and predicate(record):
                        return record
                seen = len(self._records)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)

    def __enter__(self) -> Timeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- internals
    def _append(self, record: Record) -> None:
        with self._changed:
            self._records.append(record)
            self._changed.notify_all()

    def _args(self, source: _Source) -> tuple[Any, ...]:
        return (self.namespace,) if source.namespaced else ()

    def _key(self, source: _Source, obj: Obj) -> str:
        meta = obj.get("metadata", {})
        return f"{meta.get('namespace')}/{meta.get('name')}" if source.namespaced else str(meta.get("name"))

    def _observe(self, source: _Source, obj: Obj, change: str) -> None:
        key = self._key(source, obj)
        if change == "deleted":
            if source.known.pop(key, None) is not None and not source.once:
                self._append(source.record(key, "deleted", source.state(obj)))
            return
        state = source.state(obj)
        previous = source.known.get(key)
        if previous == state or (source.once and previous is not None):
            return
        source.known[key] = state
        verb = change if previous is None else "updated"
        self._append(source.record(key, verb, state))

    def _relist(self, source: _Source, *, initial: bool) -> str:
        listing = raw_list(source.lister, *self._args(source))
        present = set()
        for obj in listing.get("items") or []:
            present.add(self._key(source, obj))
            self._observe(source, obj, "initial" if initial else "added")
        for key in [k for k in source.known if k not in present]:
            state = source.known.pop(key)
            if not source.once:
                self._append(source.record(key, "deleted", state))
        return str(listing.get("metadata", {}).get("resourceVersion", ""))

    def _events(self, source: _Source, rv: str) -> Iterator[tuple[str, Obj]]:
        """One watch request, read as JSON lines (no client models; the client's own
        watch helper cannot report an ERROR event without deserialising)."""
        response = source.lister(*self._args(source), watch=True, resource_version=rv,
                                 timeout_seconds=self.watch_timeout, allow_watch_bookmarks=True,
                                 _preload_content=False, _request_timeout=self.watch_timeout + 10)
        try:
            pending = b""
            for chunk in response.stream(amt=None, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        event = json.loads(line)
                        yield event["type"], event["object"]
        finally:
            response.release_conn()

    def _watch(self, source: _Source, rv: str) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                for kind, obj in self._events(source, rv):
                    if kind == "ERROR":
                        raise ApiException(status=obj.get("code") or 410)
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if kind != "BOOKMARK":
                        self._observe(source, obj, {"ADDED": "added", "MODIFIED": "updated"}.get(kind, "deleted"))
                    if self._stop.is_set():
                        return
                backoff = 0.2
            except ApiException as exc:
                if exc.status == 410:
                    rv = self._relist_safely(source, rv)
                else:
                    backoff = self._pause(source, backoff, f"HTTP {exc.status}")
            except Exception as exc:  # connection refused/reset while the API server restarts
                backoff = self._pause(source, backoff, type(exc).__name__)

    def _relist_safely(self, source: _Source, rv: str) -> str:
        try:
            return self._relist(source, initial=False)
        except Exception:
            return rv

    def _pause(self, source: _Source, backoff: float, why: str) -> float:
        self.resumes += 1
        self.mark("watch", source.kind, "interrupted", reason=why)
        self._stop.wait(backoff)
        return min(backoff * 2, 5.0)
