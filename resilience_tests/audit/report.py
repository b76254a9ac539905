"""The audit's outputs: a terminal table, JSON, and SARIF for CI code scanning (findings on manifest lines)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from resilience_tests import __version__
from resilience_tests.audit.model import SEVERITIES, Finding, Problem, Rule
from resilience_tests.audit.prove import NO_PROOF, QUIET_REASONS, Result, Unproved

JSON_VERSION = 1
SARIF_LEVEL = {"high": "error", "medium": "warning", "low": "note"}


def counts(findings: list[Finding]) -> str:
    """``3 findings (1 high, 2 medium, 0 low), 1 skipped``."""
    live = [f for f in findings if not f.skipped]
    by = Counter(f.rule.severity for f in live)
    text = f"{len(live)} finding(s) ({', '.join(f'{by[s]} {s}' for s in SEVERITIES)})"
    skipped = len(findings) - len(live)
    return text + (f", {skipped} skipped" if skipped else "")


def table(findings: list[Finding], problems: list[Problem], audited: int) -> str:
    """One line per finding: severity, rule, object, where, and what to do; skipped ones with their reason."""
    rows = [(f.rule.severity if not f.skipped else "skipped", f"{f.rule.id} {f.rule.name}", f.obj, str(f.location),
             f.message + (f" (skipped: {f.skipped})" if f.skipped else "")) for f in findings]
    lines = []
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)) for row in rows]
    lines += [f"problem: {p.location}: {p.message}" for p in problems]
    lines.append(f"audit: {audited} object(s), {counts(findings)}" + (f", {len(problems)} problem(s)" if problems
                                                                    else ""))
    return "\n".join(lines) + "\n"


def _finding(f: Finding) -> dict[str, Any]:
    return {"rule": f.rule.id, "name": f.rule.name, "severity": f.rule.severity, "object": f.obj,
            "source": f.location.source, "line": f.location.line, "message": f.message,
            "experiment": f.rule.experiment, "doc": f.rule.doc, "skipped": f.skipped or None}


def as_json(findings: list[Finding], problems: list[Problem], audited: int, rules: dict[str, Rule], *,
            proofs: list[Result] | None = None) -> str:
    """The audit as JSON; with ``proofs`` (``--prove``), each finding carries what its experiment showed."""
    shown = {(f.rule.id, f.obj): r for r in proofs or [] for f in r.proof.findings}

    def finding(f: Finding) -> dict[str, Any]:
        data = _finding(f)
        if proofs is not None:
            r = shown.get((f.rule.id, f.obj))
            data["proof"] = {"status": r.status, "why": r.why, "experiment": r.proof.name,
                             "outcome": r.outcome} if r else None
        return data

    return json.dumps({
        "version": JSON_VERSION, "tool_version": __version__, "objects": audited,
        "findings": [finding(f) for f in findings],
        "problems": [{"source": p.location.source, "line": p.location.line, "message": p.message} for p in problems],
        "rules": {r.id: {"name": r.name, "severity": r.severity, "summary": r.summary, "experiment": r.experiment}
                  for r in rules.values()},
    }, indent=1) + "\n"


def proof_table(results: list[Result], unproved: list[Unproved]) -> str:
    """What ``--prove`` showed: one line per finding proved (status, rule, object, experiment, why), then the
    findings left unproved for a reason other than having no experiment."""
    rows = [(r.status, f"{f.rule.id} {f.rule.name}", f.obj, r.proof.name, r.why)
            for r in results for f in r.proof.findings]
    rows += [("not run", f"{u.finding.rule.id} {u.finding.rule.name}", u.finding.obj, "-", u.why)
             for u in unproved if u.why not in QUIET_REASONS]
    lines = ["", "proofs:"]
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines += ["  " + "  ".join(c.ljust(widths[i]) if i < 4 else c for i, c in enumerate(row)) for row in rows]
    by = Counter(r.status for r in results for _ in r.proof.findings)
    none = sum(u.why == NO_PROOF for u in unproved)
    lines.append(f"prove: {len(results)} experiment(s); {by['confirmed']} finding(s) confirmed, "
                 f"{by['not confirmed']} not confirmed, {by['inconclusive']} inconclusive, {by['not run']} not run; "
                 f"{none} with no experiment")
    return "\n".join(lines) + "\n"


def as_sarif(findings: list[Finding], problems: list[Problem], rules: dict[str, Rule]) -> str:
    """SARIF 2.1.0: one run, the rules as the driver's rules, each finding a result at its file and line."""
    ordered = sorted(rules.values(), key=lambda r: r.id)
    index = {r.id: i for i, r in enumerate(ordered)}

    def location(source: str, line: int) -> dict[str, Any]:
        physical: dict[str, Any] = {"artifactLocation": {"uri": source}}
        if line:
            physical["region"] = {"startLine": line}
        return {"physicalLocation": physical}

    results = []
    for f in findings:
        result: dict[str, Any] = {"ruleId": f.rule.id, "ruleIndex": index[f.rule.id],
                                  "level": SARIF_LEVEL[f.rule.severity],
                                  "message": {"text": f"{f.obj}: {f.message}"},
                                  "locations": [location(f.location.source, f.location.line)]}
        if f.skipped:
            result["suppressions"] = [{"kind": "inSource", "justification": f.skipped}]
        results.append(result)
    notifications = [{"level": "error", "message": {"text": p.message},
                      "locations": [location(p.location.source, p.location.line)]} for p in problems]
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "resilience-tests audit", "version": __version__,
                            "rules": [{"id": r.id, "name": r.name, "shortDescription": {"text": r.summary},
                                       "helpUri": r.doc, "defaultConfiguration": {"level": SARIF_LEVEL[r.severity]},
                                       "properties": {"experiment": r.experiment}} for r in ordered]}},
        "results": results,
        "invocations": [{"executionSuccessful": not problems, "toolExecutionNotifications": notifications}],
    }
    return json.dumps({"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
                       "runs": [run]}, indent=1) + "\n"
