"""``resilience audit``: workloads against the resilience rules (manifests, standard input or a live namespace),
and with ``--prove`` the experiment that proves each finding, run and judged."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from resilience_tests.commands.common import Parser, reading_session, say
from resilience_tests.commands.run import option_args, run_pytest
from resilience_tests.errors import ResilienceError, UsageError
from resilience_tests.plugin import OPTIONS
from resilience_tests.text import printable

if TYPE_CHECKING:
    from resilience_tests.audit.model import Finding
    from resilience_tests.audit.prove import Placement, Unproved
    from resilience_tests.audit.prove import Result as ProofResult


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    audit = sub.add_parser("audit", help="check workloads against resilience rules (manifests or a live namespace)",
                           description="Audit manifest files and folders, standard input (-), or a live namespace "
                                       "against the resilience rules (docs/audit.md). Exit code 1 when anything "
                                       "was found or could not be read.")
    audit.add_argument("targets", nargs="+", metavar="NAMESPACE|PATH|-",
                       help="a manifest file or folder, - for standard input, or a namespace of the cluster")
    audit.add_argument("--format", choices=("table", "json", "sarif"), default="table",
                       help="output format (default table)")
    audit.add_argument("--prove", nargs="?", const="all", metavar="RULES",
                       help="run, against the live namespace, the experiment that proves each finding (all rules "
                            "with one, or those listed: RT201,RT204) and report it confirmed or not")
    for flag, dest, help_text, kwargs in OPTIONS:
        if flag in ("--kubeconfig", "--context", "--local-cluster-name", "--allow-context", "--allow-any-context",
                    "--dry-run", "--yes", "--seed", "--no-progress"):
            audit.add_argument(flag, dest=dest, help=help_text + (" (with --prove)" if flag in (
                "--allow-context", "--allow-any-context", "--dry-run", "--yes", "--seed", "--no-progress") else ""),
                **kwargs)
    audit.add_argument("--reports", default="reports", metavar="DIR",
                       help="with --prove: the proofs' experiments and results go to DIR/<run id>/ (default reports)")


def audit_command(args: argparse.Namespace) -> int:
    from resilience_tests.audit import prove, report, rules, sources
    from resilience_tests.audit_items import read_targets

    namespaces = [t for t in args.targets if not sources.is_path(t)]
    wanted = prove.selected_rules(args.prove) if args.prove else None
    if args.prove and len(namespaces) != len(args.targets):
        raise UsageError("--prove runs experiments against a live namespace, not manifest files",
                         hint="apply the manifests, then `resilience audit NAMESPACE --prove`")
    run = reading_session(args)
    try:
        kube = None
        if namespaces:  # reading only: any context may be audited, no --allow-context needed
            try:
                kube = run.reader()
            except UsageError:
                raise UsageError(f"{', '.join(namespaces)}: no such file, and no cluster to read a namespace from",
                                 hint="give manifest paths, or --kubeconfig to audit a live namespace") from None
        inventory, problems = read_targets(args.targets, kube)
        findings = rules.audit(inventory)
        placements = prove.read_placements(kube, inventory.objects) if args.prove and kube else {}
    finally:
        run.close()
    results: list[prove.Result] = []
    unproved: list[prove.Unproved] = []
    if args.prove:
        out = sys.stderr if args.format != "table" else sys.stdout
        with contextlib.redirect_stdout(out):  # JSON and SARIF keep standard output to themselves
            results, unproved = run_proofs(args, findings, placements, wanted)
    if args.format == "json":
        sys.stdout.write(report.as_json(findings, problems, len(inventory.objects), rules.RULES,
                                        proofs=results if args.prove else None))
    elif args.format == "sarif":
        sys.stdout.write(report.as_sarif(findings, problems, rules.RULES))
    else:
        sys.stdout.write(printable(report.table(findings, problems, len(inventory.objects))))
        if args.prove:
            sys.stdout.write(printable(report.proof_table(results, unproved)))
    return 1 if problems or any(not f.skipped for f in findings) else 0


def run_proofs(args: argparse.Namespace, findings: list[Finding], placements: dict[str, Placement],
               wanted: set[str] | None) -> tuple[list[ProofResult], list[Unproved]]:
    """Write the proofs' experiments under ``--reports``, run them like ``resilience run``, judge each."""
    from resilience_tests import strictyaml
    from resilience_tests.audit import prove
    from resilience_tests.reporting import summary
    from resilience_tests.reporting.results import SUMMARY_FILE, journal_records, new_results_id

    proofs, unproved = prove.plan(findings, placements, rules=wanted)
    if not proofs:
        return [], unproved
    results = Path(args.reports) / new_results_id()
    args.resilience_run_id = results.name  # one id: the proofs' results folder and their experiments
    folder = results / "proofs"
    folder.mkdir(parents=True, exist_ok=True)
    for number, proof in enumerate(proofs, 1):
        header = (f"# Written by `resilience audit --prove`: {proof.kind.shows} confirms {proof.rules} of "
                  f"{proof.namespace}/{proof.workload}.\n# Run it again with `resilience run {folder}/"
                  f"{number:02d}-{proof.name}.yaml`.\n")
        (folder / f"{number:02d}-{proof.name}.yaml").write_text(header + strictyaml.dump(
            proof.experiment, sort_keys=False))
    argv = [str(folder), "--experiments", str(folder), *option_args(args)]
    say(f"proving {len(proofs)} experiment(s) written to {folder}/")
    code = run_pytest(argv, results, add_results_dir=True, dry_run=bool(args.resilience_dry_run), no_report=False)
    entries: dict[str, dict[str, object]] = {}
    if (results / SUMMARY_FILE).is_file():
        entries = {str(e["name"]): e for e in summary.read(results / SUMMARY_FILE)["experiments"]}
    elif code not in (0, 1):
        raise ResilienceError(f"the proofs did not run (pytest exit code {code}); see the output above")
    records = {p.name: journal_records(results, summary.experiment_id(entries[p.name])) for p in proofs
               if p.kind in prove.DRAINS and p.name in entries}  # a drain's proof reads its journal too
    return [prove.judge(p, entries.get(p.name), records.get(p.name, ())) for p in proofs], unproved
