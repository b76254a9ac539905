"""Undo what dead runs left behind, from the change ledgers on the objects they changed.

Every node or workload a run changes carries the label ``resilience-tests.io/changed`` and its change ledger
(:mod:`resilience_tests.cluster.ledger`). :func:`cleanup` finds them and, for every run whose lease has
expired (:mod:`resilience_tests.cluster.leases`), undoes that run's entries: a field still holding the value the
run set goes back to the value before; a field someone changed since is left alone and reported. A live run is
never touched, unless it is named with ``force``. A run whose lease names a process of this host that is gone
is dead at once (:func:`resilience_tests.cluster.leases.run_state`). Load generators of dead runs still running
on this machine are stopped too, and the private folders where killed processes of this machine kept their
client key (:mod:`resilience_tests.cluster.client`) are removed.

What lies outside the API (a frozen node of the local cluster, a paused kind container, a load generator's
process) is the platform's (:mod:`resilience_tests.platform`): the caller passes its ``host_restore`` and
``stop_load``; this module keeps to the ledgers.

Each thing found ends as one :class:`CleanupAction` whose ``outcome`` says what became of it: ``done`` (or to be
done, in a dry run), ``left alone``, ``refused`` or ``failed``; a ``noted`` line says why a run counts as dead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kubernetes.client.exceptions import ApiException

from resilience_tests.cluster import changes
from resilience_tests.cluster import ledger as ledgers
from resilience_tests.cluster.client import api_message, remove_dead_key_folders
from resilience_tests.cluster.kube import Kube, Workload, raw_list
from resilience_tests.cluster.leases import RunState, run_state
from resilience_tests.errors import ResilienceError

DONE = "done"
LEFT_ALONE = "left alone"
REFUSED = "refused"
FAILED = "failed"
NOTED = "noted"
OUTCOMES = (DONE, LEFT_ALONE, REFUSED, FAILED)


@dataclass(frozen=True)
class CleanupAction:
    """One thing cleanup did (or would do, in a dry run), left alone, refused or failed at, and what or why."""

    run_id: str
    target: str
    action: str
    outcome: str = DONE


def dead_note(run: str, state: RunState) -> list[CleanupAction]:
    """The line saying a run is dead although its lease has not expired (its process on this host is gone)."""
    return [CleanupAction(run, "run", f"the run is {state.describe()}", NOTED)] if state.gone else []


def failure(exc: Exception) -> str:
    """One line for an error met while cleaning one thing (the others go on)."""
    if isinstance(exc, ApiException) and not isinstance(exc, ResilienceError):
        return f"HTTP {exc.status} {api_message(exc.body, exc.reason)}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _targets(kube: Kube) -> list[tuple[changes.Target, tuple[ledgers.Change, ...]]]:
    """Every node and workload carrying a change ledger."""
    selector = ledgers.RUN_LABEL
    found: list[tuple[changes.Target, tuple[ledgers.Change, ...]]] = []
    for node in raw_list(kube.raw.core.list_node, label_selector=selector)["items"]:
        found.append((node["metadata"]["name"], _ledger(node)))
    listers = (("deployment", kube.raw.apps.list_deployment_for_all_namespaces),
               ("statefulset", kube.raw.apps.list_stateful_set_for_all_namespaces),
               ("daemonset", kube.raw.apps.list_daemon_set_for_all_namespaces))
    for kind, lister in listers:
        for obj in raw_list(lister, label_selector=selector)["items"]:
            meta = obj["metadata"]
            found.append((Workload(kind, meta["namespace"], meta["name"]), _ledger(obj)))
    return found


def _ledger(obj: dict[str, object]) -> tuple[ledgers.Change, ...]:
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") if isinstance(meta, dict) else {}
    return ledgers.parse((annotations or {}).get(ledgers.LEDGER_ANNOTATION))


def _name(target: changes.Target) -> str:
    return f"node/{target}" if isinstance(target, str) else str(target)


HostRestore = Callable[[str, str], None]
StopLoad = Callable[[str, Callable[[str], bool]], list[tuple[str, str]]]


def cleanup(kube: Kube, *, run_id: str | None = None, dry_run: bool = False, force: bool = False,
            host_restore: HostRestore | None = None, stop_load: StopLoad | None = None) -> list[CleanupAction]:
    """Undo the changes of every dead run (or of ``run_id`` only; ``force`` even if it is alive).

    Args:
        host_restore: ``(node, field)`` brings back what a run changed outside the API (the platform's); without
            it such an entry fails and stays in the ledger for a cleanup that has it.
        stop_load: ``(server, dead)`` stops the load generators of dead runs of the API server ``server`` (the
            platform's); without it none is stopped.

    Returns what was done, or would be with ``dry_run``.
    """
    restore = host_restore or _no_host_restore
    actions: list[CleanupAction] = []
    states: dict[str, RunState] = {}
    for target, ledger in _targets(kube):
        for run in ledgers.runs(ledger):
            if run_id and run != run_id:
                continue
            try:
                if run not in states:
                    states[run] = run_state(kube, run)
                    actions += dead_note(run, states[run])
                state = states[run]
                if state.alive and not (force and run == run_id):
                    actions.append(CleanupAction(run, _name(target), f"the run is {state.describe()}",
                                                 LEFT_ALONE))
                    continue
                actions += _undo_run(kube, target, run, dry_run, restore)
            except (ResilienceError, ApiException) as exc:
                actions.append(CleanupAction(run, _name(target), failure(exc), FAILED))
    if not dry_run and stop_load is not None:
        def dead(run: str) -> bool:
            if run_id and run != run_id:
                return False
            if run not in states:
                states[run] = run_state(kube, run)
            state = states[run]
            return not state.alive or (force and run == run_id)

        actions += [CleanupAction(run, "this machine", what) for run, what in stop_load(kube.server, dead)]
    verb = "remove" if dry_run else "removed"
    actions += [CleanupAction("-", "this machine", f"{verb} the client key folder {path} ({why})")
                    for path, why in remove_dead_key_folders(dry_run=dry_run)]
    return actions


def _undo_run(kube: Kube, target: changes.Target, run: str, dry_run: bool,
              restore: Callable[[str, str], None]) -> list[CleanupAction]:
    entries = [c for c in changes.recorded(kube, target) if c.run == run]
    if dry_run:
        return [CleanupAction(run, _name(target), f"undo {c.field}: {c.after!r} -> {c.before!r} (if unchanged)")
                for c in entries]
    out = []
    if isinstance(target, str):  # outside the API first, while the ledger still says what to restore
        for change in entries:
            if change.field.startswith(changes.HOST) and \
                    changes.owns(kube, target, change.field, run=run, fault=change.fault) and not change.before:
                restore(target, change.field)
                out.append(CleanupAction(run, _name(target), f"restored {change.field}"))
    done = changes.undo(kube, target, run=run)
    out += [CleanupAction(run, _name(target), f"set {field} back to {value!r}")
            for field, value in done.restore.items() if not field.startswith(changes.HOST)]
    out += [CleanupAction(run, _name(target), conflict, LEFT_ALONE) for conflict in done.conflicts]
    return out


def _no_host_restore(node: str, field: str) -> None:
    raise ResilienceError(f"{field} on node/{node} is restored on this machine by the cluster's platform, and "
                          "none was given", hint="run `resilience cleanup`, which passes it")
