"""``resilience audit --prove``: run, for each finding that has one, the experiment that demonstrates it against
the live workload, and report the finding confirmed, not confirmed or inconclusive.

Pure planning and judging: :func:`plan` turns findings and what the cluster shows of the workloads
(:class:`Placement`) into experiments, written as YAML files an SRE can rerun with ``resilience run``;
:func:`judge` reads each experiment's entry of ``summary.json``. Running them is ``resilience run``'s job.

A finding is *confirmed* when its experiment shows the failure the rule warns of (requests failed during a
rollout, the app was down while its zone was lost, a drain could not finish); *not confirmed* when the
experiment ran to its end and the failure did not show; *inconclusive* when the experiment could not say
(the app was unhealthy before the fault, a fault could not be injected, the run was interrupted).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from resilience_tests.audit.model import Finding, Obj
from resilience_tests.labels import has_labels

Status = Literal["confirmed", "not confirmed", "inconclusive", "not run"]
USERS = 10  # load of a proof: enough to see a failure, light enough for a staging cluster
MAX_LOAD_S = 300
NO_PROOF = "no experiment proves this rule"
NOT_SELECTED = "rule not selected by --prove"
QUIET_REASONS = (NO_PROOF, NOT_SELECTED)  # not listed one by one: counted


@dataclass(frozen=True)
class ProofKind:
    """An experiment shape that demonstrates a rule's failure, and what confirms it."""

    name: str
    shows: str  # what confirms the finding, in words: "a rollout under load fails requests"
    example: str  # the example experiment of the same shape, under experiments/


ROLLOUT = ProofKind("rollout", "a rolling restart under load fails requests", "rollout-under-load")
POD_KILL = ProofKind("pod-kill", "one pod crashing (killed without grace) under load fails requests",
                     "kill-two-pods")
ZONE = ProofKind("zone-outage", "losing the zone of most replicas takes the app down half the outage or more",
                 "zone-a-outage")
DRAIN_BLOCKED = ProofKind("drain-blocked", "draining a node of the workload cannot finish", "drain-one-node")
DRAIN_LOAD = ProofKind("drain-under-load", "draining a node of the workload under load fails requests",
                       "drain-one-node")

ORDER = (ROLLOUT, POD_KILL, DRAIN_LOAD, DRAIN_BLOCKED, ZONE)  # the least disruptive first, losing a zone last
PROOFS: dict[str, ProofKind] = {
    "RT101": ROLLOUT, "RT401": ROLLOUT, "RT601": ROLLOUT,
    "RT201": POD_KILL,
    "RT202": ZONE, "RT204": ZONE,
    "RT203": DRAIN_LOAD, "RT501": DRAIN_LOAD,
    "RT502": DRAIN_BLOCKED,
}
PROVABLE_KINDS = ("Deployment", "StatefulSet")  # what the faults can target as a workload
DRAINS = (DRAIN_LOAD, DRAIN_BLOCKED)  # judged with the journal's records too (see :func:`judge`)
PENDING_S = 5.0  # a replica still on no node this long when the drain gave up: the scheduler had nowhere for it
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Placement:
    """What the live cluster shows of one workload: replicas, and its running pods' zones."""

    replicas: int = 1
    zones: Counter[str] = field(default_factory=Counter)  # zone -> running pods of the workload
    zone_nodes: dict[str, int] = field(default_factory=dict)  # zone -> its nodes (an outage fails them all)
    labels: Labels = ()  # the workload's selector (matchLabels): which pods of the journal are its replicas


@dataclass(frozen=True)
class Proof:
    """One experiment against one workload, proving one or more of its findings."""

    kind: ProofKind
    namespace: str
    workload: str  # ``deployment/web``
    findings: tuple[Finding, ...]
    experiment: dict[str, Any]
    labels: Labels = ()  # the workload's selector, from its Placement

    @property
    def name(self) -> str:
        return str(self.experiment["name"])

    @property
    def rules(self) -> str:
        return ", ".join(sorted({f.rule.id for f in self.findings}))


@dataclass(frozen=True)
class Unproved:
    """A finding no experiment was run for, and why."""

    finding: Finding
    why: str


@dataclass(frozen=True)
class Result:
    """What a proof's experiment showed."""

    proof: Proof
    status: Status
    why: str
    outcome: str = ""  # the experiment's outcome (summary.json)


def _workload(finding: Finding) -> tuple[str, str, str] | None:
    """``Deployment demo/web`` -> (Deployment, demo, web)."""
    match = re.fullmatch(r"(\w+) ([^/ ]+)/(\S+)", finding.obj)
    return (match[1], match[2], match[3]) if match else None


def selected_rules(text: str | None) -> set[str] | None:
    """``--prove`` with no value: every rule (None); ``--prove RT201,RT204``: those rules."""
    if not text or text == "all":
        return None
    wanted = {part.strip().upper() for part in text.split(",") if part.strip()}
    unknown = sorted(wanted - set(PROOFS))
    if unknown:
        from resilience_tests.errors import UsageError

        raise UsageError(f"--prove {text}: no experiment proves {', '.join(unknown)}",
                         hint=f"rules with a proof: {', '.join(sorted(PROOFS))}")
    return wanted


def plan(findings: Iterable[Finding], placements: dict[str, Placement], *,
         rules: set[str] | None = None) -> tuple[list[Proof], list[Unproved]]:
    """The experiments that prove ``findings`` (one per workload and proof kind), and the findings left unproved.

    ``placements`` maps a workload's ``Kind namespace/name`` to what the cluster shows of it.
    """
    grouped: dict[tuple[ProofKind, str], list[Finding]] = {}
    unproved: list[Unproved] = []
    for finding in findings:
        kind = PROOFS.get(finding.rule.id)
        parsed = _workload(finding)
        if finding.skipped:
            unproved.append(Unproved(finding, f"skipped: {finding.skipped}"))
        elif kind is None:
            unproved.append(Unproved(finding, NO_PROOF))
        elif rules is not None and finding.rule.id not in rules:
            unproved.append(Unproved(finding, NOT_SELECTED))
        elif parsed is None or parsed[0] not in PROVABLE_KINDS:
            unproved.append(Unproved(finding, "only Deployments and StatefulSets are proved"))
        elif finding.obj not in placements:
            unproved.append(Unproved(finding, "not found in the cluster"))
        else:
            grouped.setdefault((kind, finding.obj), []).append(finding)
    proofs = []
    for (kind, obj), found in sorted(grouped.items(), key=lambda item: (ORDER.index(item[0][0]), item[0][1])):
        workload_kind, namespace, name = _workload(found[0]) or ("", "", "")
        placement = placements[obj]
        if kind is ZONE and not placement.zones:
            unproved += [Unproved(f, "no running pod with a zone to lose") for f in found]
            continue
        workload = f"{workload_kind.lower()}/{name}"
        proofs.append(Proof(kind, namespace, workload, tuple(found),
                            _experiment(kind, namespace, workload, name, placement, found), placement.labels))
    return proofs, unproved


def read_placements(kube: Any, objects: Iterable[Obj]) -> dict[str, Placement]:
    """What the cluster shows of each Deployment and StatefulSet among ``objects`` (read live): its replicas, the
    zones of its running pods, and each zone's nodes. ``kube`` is a
    :class:`~resilience_tests.cluster.kube.Kube`."""
    nodes = kube.nodes()
    zone_of = {n.name: n.zone for n in nodes}
    zone_nodes = Counter(n.zone for n in nodes if n.zone)
    found: dict[str, Placement] = {}
    for obj in objects:
        if obj.kind not in PROVABLE_KINDS:
            continue
        spec = obj.data.get("spec") or {}
        labels = ((spec.get("selector") or {}).get("matchLabels") or {})
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = [p for p in kube.pods(obj.namespace, selector) if p.node and not p.terminating and not p.finished] \
            if selector else []
        zones = Counter(zone_of.get(p.node, "") for p in pods)
        zones.pop("", None)
        found[obj.ref] = Placement(int(spec.get("replicas", 1) or 0), zones, dict(zone_nodes),
                                   tuple(sorted((str(k), str(v)) for k, v in labels.items())))
    return found


def _load_seconds(replicas: int) -> int:
    """Long enough for a rollout there and back (each replica replaced twice), at most five minutes."""
    return min(MAX_LOAD_S, 40 + 10 * max(0, replicas - 2))


def _experiment(kind: ProofKind, namespace: str, workload: str, name: str, placement: Placement,
                findings: list[Finding]) -> dict[str, Any]:
    rules = sorted({f.rule.id for f in findings})
    exp: dict[str, Any] = {
        "name": re.sub(r"[^A-Za-z0-9_-]", "-", f"prove-{kind.name}-{name}"),
        "description": f"Proves {', '.join(rules)} of {namespace}/{workload}: confirmed if {kind.shows}.",
        "severity": "normal",
        "tags": ["audit-proof", *rules],
        "target": {"namespace": namespace, "workload": workload},
        "settle": "1s",
    }
    # a clean baseline: not one failed request before the fault, so a failure in the run is the fault's
    healthy = [{"type": "no-failed-requests"}]
    if kind is ROLLOUT:
        seconds = _load_seconds(placement.replicas)
        exp |= {"load": _load(seconds), "steady_state": healthy,
                "faults": [{"type": "rollout", "at": "2s", "action": "restart", "timeout": f"{seconds - 6}s"}],
                # to the run's end: a new pod that takes traffic before it listens fails requests after the
                # rollout itself has finished
                "slas": [{"type": "no-failed-requests", "window": "whole"}]}
    elif kind is POD_KILL:
        exp |= {"load": _load(25), "steady_state": healthy,
                # a crash (no grace): a graceful delete of a well-draining single replica may be covered by
                # its replacement starting while it drains; a crash, an OOM kill or a lost node is not
                "faults": [{"type": "pod-kill", "at": "2s", "count": 1, "grace_period": "0s"}],
                "slas": [{"type": "no-failed-requests", "window": "after"}]}
    elif kind is ZONE:
        zone, _ = sorted(placement.zones.items(), key=lambda item: (-item[1], item[0]))[0]
        exp |= {"load": _load(30), "steady_state": healthy,
                "guardrails": {"max_nodes": max(1, placement.zone_nodes.get(zone, 1))},
                "faults": [{"type": "zone-outage", "at": "2s", "zone": zone, "duration": "20s"}],
                "slas": [{"type": "availability", "min": "50%", "window": "fault:zone-outage"}]}
    elif kind is DRAIN_BLOCKED:
        exp |= {"guardrails": {"max_pods": 30},
                "faults": [{"type": "node-drain", "at": "0s", "nodes": {"count": 1}, "timeout": "20s"}]}
    else:  # DRAIN_LOAD
        exp |= {"load": _load(45), "steady_state": healthy, "guardrails": {"max_pods": 30},
                "faults": [{"type": "node-drain", "at": "2s", "nodes": {"count": 1}, "timeout": "35s"}],
                "slas": [{"type": "no-failed-requests", "window": "fault:node-drain"}]}
    return exp


def _load(seconds: int) -> dict[str, Any]:
    return {"shape": {"type": "constant", "users": USERS, "duration": f"{seconds}s"}}


def judge(proof: Proof, entry: dict[str, Any] | None, records: Sequence[Mapping[str, Any]] = ()) -> Result:
    """What the experiment's ``summary.json`` entry says of the proof's findings.

    A drain's proof also reads ``records``, its journal's (``journal.json``): a drain that a PDB stopped while a
    replica of the workload could be scheduled nowhere (pinned to the drained node) confirms its findings.
    """
    if entry is None:
        return Result(proof, "not run", "the experiment did not run (the session stopped before it?)")
    outcome = str(entry.get("outcome", ""))
    errors = [str(e) for e in entry.get("errors") or []]
    if outcome == "revert-failed":
        reverts = "; ".join(str(e) for e in entry.get("revert_errors") or []) or "see the journal"
        return Result(proof, "inconclusive", f"its revert failed, the cluster may still be changed: {reverts}",
                      outcome)
    if outcome == "interrupted":
        return Result(proof, "not run", "interrupted", outcome)
    if outcome == "planned":
        return Result(proof, "not run", "dry run: planned only", outcome)
    blocked = next((e for e in errors if "blocked by PDB" in e), "") if proof.kind in DRAINS else ""
    unplaced = _unplaced(proof, records, blocked) if blocked else ""
    if proof.kind is DRAIN_LOAD and unplaced:
        return Result(proof, "confirmed", f"{unplaced}; the drain could not finish: {blocked}", outcome)
    if proof.kind is DRAIN_BLOCKED:
        if blocked:
            return Result(proof, "confirmed", f"{blocked}; {unplaced}" if unplaced else blocked, outcome)
        if outcome == "passed":
            return Result(proof, "not confirmed", "the drain finished: every pod of the node was evicted", outcome)
        return Result(proof, "inconclusive", errors[0] if errors else outcome, outcome)
    if outcome == "steady-state-not-met":
        failed = [v for v in entry.get("steady_state") or [] if not v.get("passed")]
        why = "; ".join(f"{v.get('check')} {v.get('measured')} (wanted {v.get('threshold')})" for v in failed)
        return Result(proof, "inconclusive", f"the app was not healthy before the fault: {why}", outcome)
    if outcome == "error" or errors:
        return Result(proof, "inconclusive", errors[0] if errors else "the experiment stopped with an error", outcome)
    slas = entry.get("slas") or []
    if not slas:
        return Result(proof, "inconclusive", f"no verdict (outcome {outcome})", outcome)
    verdict = slas[0]
    said = (f"{verdict.get('check')}: {verdict.get('measured')} (wanted {verdict.get('threshold')}) over "
            f"{verdict.get('window')}")
    if outcome == "sla-violated" and not verdict.get("passed"):
        return Result(proof, "confirmed", said, outcome)
    if outcome == "passed" and verdict.get("passed"):
        return Result(proof, "not confirmed", said, outcome)
    return Result(proof, "inconclusive", f"{said}; outcome {outcome}", outcome)


def _unplaced(proof: Proof, records: Sequence[Mapping[str, Any]], blocked: str) -> str:
    """From a drain's journal records: a replica of the workload that the scheduler could place nowhere when the
    drain gave up (Pending on no node for :data:`PENDING_S` or more, or a FailedScheduling event of it), while a
    PDB held back another replica of the same workload (``blocked`` names it). "" when the records do not show it
    (or the workload's labels are unknown: the journal alone cannot tell its pods from others)."""
    gave_up = next((float(r["t"]) for r in records if r.get("kind") == "fault" and r.get("change") == "error"
                    and str(r.get("name", "")).endswith(":node-drain")), None)
    if gave_up is None or not proof.labels:
        return ""
    wanted = dict(proof.labels)
    ours: dict[str, tuple[Mapping[str, Any], float]] = {}  # pod -> (its state when the drain gave up, since)
    for record in sorted((r for r in records if r.get("kind") == "pod" and float(r["t"]) <= gave_up),
                         key=lambda r: float(r["t"])):
        name, pod = str(record["name"]), record.get("pod") or {}
        if not name.startswith(f"{proof.namespace}/") or not has_labels(pod.get("labels") or {}, wanted):
            continue
        state, before = {**pod, "deleted": record.get("change") == "deleted"}, ours.get(name)
        since = before[1] if before and _waiting(before[0]) and _waiting(state) else float(record["t"])
        ours[name] = (state, since)
    if not any(f"{pod} blocked by PDB" in blocked for pod in ours):
        return ""
    scheduler = {str((r.get("details") or {}).get("object", "")): str((r.get("details") or {}).get("message", ""))
                 for r in records if r.get("kind") == "event" and float(r["t"]) <= gave_up
                 and (r.get("details") or {}).get("reason") == "FailedScheduling"}
    for name, (pod, since) in sorted(ours.items()):
        said = scheduler.get(f"Pod/{name.rpartition('/')[2]}")
        if _waiting(pod) and (gave_up - since >= PENDING_S or said is not None):
            return (f"{name} could not be scheduled anywhere: Pending on no node for {gave_up - since:.0f} s when "
                    f"the drain gave up" + (f" (the scheduler: {said})" if said else ""))
    return ""


def _waiting(pod: Mapping[str, Any]) -> bool:
    return pod.get("phase") == "Pending" and not pod.get("node") and not pod.get("terminating") \
        and not pod.get("deleted")
