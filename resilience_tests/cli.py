"""The ``resilience`` command line.

Thin: it parses options, calls the package and turns errors into one line on
stderr and an exit code (0 ok, 1 failed, 2 bad usage).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from resilience_tests.errors import ResilienceError, UsageError, from_input
from resilience_tests.namespaces import is_namespace_name
from resilience_tests.plugin import OPTIONS
from resilience_tests.testbed import build
from resilience_tests.testbed.cluster import DEFAULT_NAME, ClusterStatus, LocalCluster
from resilience_tests.testbed.topology import Topology
from resilience_tests.text import printable


def say(*parts: object, file: TextIO | None = None) -> None:
    """``print`` for everything this command shows: names, messages and errors from the cluster, an archive or
    an experiment may hold control characters, which are written out instead of reaching the terminal."""
    print(*(printable(str(part)) for part in parts), file=file or sys.stdout)


if TYPE_CHECKING:
    from resilience_tests.audit.model import Finding
    from resilience_tests.audit.prove import Placement, Unproved
    from resilience_tests.audit.prove import Result as ProofResult
    from resilience_tests.cluster.cleanup import CleanupAction
    from resilience_tests.cluster.kube import Kube
    from resilience_tests.reporting.html import Built
    from resilience_tests.session import RunSession


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")


def _non_empty(flag: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError(f"{flag} needs a name, not an empty string")
        return value
    return check


def _namespace_name(value: str) -> str:
    if not is_namespace_name(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a namespace name (a lower-case DNS label of at most 63 "
                                         "characters, e.g. demo)")
    return value


def _cluster_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    cluster = sub.add_parser("cluster", help="the local cluster built from real Kubernetes components")
    actions = cluster.add_subparsers(dest="action", required=True, parser_class=_Parser)

    def named(name: str, help_text: str) -> _Parser:
        parser: _Parser = actions.add_parser(name, help=help_text)
        parser.add_argument("--name", default=DEFAULT_NAME, help=f"cluster name (default {DEFAULT_NAME})")
        return parser

    actions.add_parser("build", help="build the cluster binaries into the cache (idempotent)")
    up = named("up", "start the cluster (idempotent); prints the kubeconfig path")
    up.add_argument("--zones", type=int, default=3, help="number of zones (default 3)")
    up.add_argument("--nodes-per-zone", type=int, default=2, help="simulated nodes per zone (default 2)")
    up.add_argument("--real-nodes", type=int, default=3,
                    help="real kubelet+containerd nodes, one per zone (default 3; 0 for none)")
    up.add_argument("--port", type=int, default=0, help="API server port (default: a free one)")
    up.add_argument("--timeout", type=float, default=120, help="seconds to wait for readiness (default 120)")
    up.add_argument("--velero", action="store_true",
                    help="also run Velero and an S3 object store as host processes (docs/backup.md)")
    named("down", "stop every process of the cluster and remove its state")
    named("status", "show processes and nodes")
    named("kubeconfig", "print the kubeconfig path")
    load = named("load-image", "import image archives (docker save / OCI layout) into every real node")
    load.add_argument("archives", nargs="+", help="image archive files")
    for verb, text in (("fail", "fail nodes or a zone (heartbeat stops; real nodes freeze)"),
                       ("restore", "bring failed nodes back")):
        parser = named(verb, text)
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--zone", type=_non_empty("--zone"), help="every node of this zone")
        target.add_argument("--node", action="append", type=_non_empty("--node"), help="this node (repeatable)")


def _run_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    run = sub.add_parser("run", help="run experiments through pytest (exit code is pytest's)")
    run.add_argument("paths", nargs="*", default=["experiments"], help="experiment files or directories")
    for flag, dest, help_text, kwargs in OPTIONS:
        run.add_argument(flag, dest=dest, help=help_text, **kwargs)
    run.add_argument("--pytest-args", default="", help="extra pytest arguments, quoted as one string")
    run.add_argument("--reports", default="reports", metavar="DIR",
                     help="results go to DIR/<run id>/ (default reports); ignored with --results-dir")
    run.add_argument("--no-report", action="store_true",
                     help="keep the results but do not build the HTML report at the end")
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
    backup = sub.add_parser("backup", help="back up a namespace's objects into one checked archive",
                            description="Back up every namespaced object the account can read (custom resources "
                                        "too), cleaned of server-set fields, into one archive with a manifest and "
                                        "checksums. Secret values only go in encrypted, with --key-file "
                                        "(docs/backup.md).")
    backup.add_argument("namespace", type=_namespace_name, help="the namespace to back up")
    backup.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="archive to write (default <namespace>-<time>.tar.gz here)")
    backup.add_argument("--key-file", metavar="FILE", help="encrypt Secrets with the key in FILE (else they are "
                                                           "left out, named in the manifest)")
    backup.add_argument("--skip-unreadable", action="store_true",
                        help="back up what can be read when the account may not read some kinds (they are named)")
    restore = sub.add_parser("restore", help="restore a backup archive into a namespace",
                             description="Check an archive, then apply it in dependency order with server-side "
                                         "apply and wait for its workloads to be ready. Nothing is applied when "
                                         "the archive is corrupted or newer, a kind is not served, or the target "
                                         "holds conflicting objects (unless --overwrite).")
    restore.add_argument("archive", type=Path, help="the file `resilience backup` wrote")
    restore.add_argument("--into", metavar="NAMESPACE", help="restore into this namespace (default: the original)")
    restore.add_argument("--overwrite", action="store_true", help="replace objects that differ from the backup")
    restore.add_argument("--key-file", metavar="FILE", help="the key the backup's Secrets were encrypted with")
    restore.add_argument("--without-secrets", action="store_true",
                         help="restore an archive whose Secrets were left out (create them yourself)")
    restore.add_argument("--timeout", type=float, default=300, metavar="SECONDS",
                         help="how long to wait for the workloads to be ready (default 300; 0: do not wait)")
    restore.add_argument("--allow-system-namespace", action="store_true",
                         help="allow restoring into kube-system, kube-public, kube-node-lease, default or velero "
                              "(resilience-tests never)")
    restore.add_argument("--unauthenticated", action="store_true",
                         help="restore an archive with no MAC checked (made or read without --key-file): its "
                              "contents are still checked, but anyone who could write the file could have chosen them")
    for parser in (backup, restore):
        for flag, dest, help_text, kwargs in OPTIONS:
            if flag in ("--kubeconfig", "--context", "--local-cluster-name") or (
                    parser is restore and flag in ("--allow-context", "--allow-any-context")):
                parser.add_argument(flag, dest=dest, help=help_text, **kwargs)
    report = sub.add_parser("report", help="build the HTML report of a run's results (Allure 3)",
                            description="Build one self-contained HTML file from a run's Allure results, with the "
                                        "history of earlier runs (reports/history.jsonl); print its path.")
    report.add_argument("results", nargs="?", type=Path, metavar="RESULTS_DIR",
                        help="a folder `resilience run` wrote (default: the newest under reports/)")
    report.add_argument("--reports", default="reports", type=Path, metavar="DIR",
                        help="where to look for the newest run (default reports)")
    clean = sub.add_parser("cleanup", help="undo what dead runs left behind (live runs are left alone)",
                           description="Undo the changes of runs whose lease has expired, as recorded on the objects "
                                       "they changed; the plan is listed first.")
    own_help = {"--dry-run": "list what cleanup would undo and change nothing",
                "--kubeconfig": "kubeconfig of the cluster to clean (default: the running local cluster)",
                "--local-cluster-name": "name of the local cluster to clean (default: resilience)"}
    for flag, dest, help_text, kwargs in OPTIONS:
        if flag in ("--kubeconfig", "--context", "--allow-context", "--allow-any-context", "--dry-run",
                    "--local-cluster-name"):
            clean.add_argument(flag, dest=dest, help=own_help.get(flag, help_text), **kwargs)
    clean.add_argument("--run", dest="run_id", metavar="ID",
                       help="only this run (its run id: all its experiments) or one experiment (its id, "
                            "<run id>-<n>); ids are shown by `resilience cleanup --dry-run`; default: every dead run")
    clean.add_argument("--force", action="store_true",
                       help="with --run: undo that run's changes even though its lease says it is alive")


def make_parser() -> _Parser:
    """Build the argument parser of the ``resilience`` command."""
    parser = _Parser(prog="resilience", description="Chaos and resilience experiments for Kubernetes.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _cluster_parser(sub)
    _run_parser(sub)
    _platform_parser(sub)
    return parser


def _platform_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    platform = sub.add_parser("platform", help="what the cluster can do beyond the API (read only)",
                              description="Detect the cluster's platform (local, kind, generic or a plug-in's) and "
                                          "print its capabilities: how nodes fail, real and simulated nodes, netem, "
                                          "network cut, where load generators can run. Changes nothing.")
    for flag, dest, help_text, kwargs in OPTIONS:
        if flag in ("--kubeconfig", "--context", "--local-cluster-name"):
            platform.add_argument(flag, dest=dest, help=help_text, **kwargs)


def _platform(args: argparse.Namespace) -> int:
    from resilience_tests.platform import detect
    from resilience_tests.session import RunSession, kubeconfig_from_env

    run = RunSession(seed=0, kubeconfig=args.resilience_kubeconfig or kubeconfig_from_env(),
                     context=args.resilience_context, local_cluster_name=args.resilience_local_cluster or DEFAULT_NAME)
    try:
        capabilities = detect(run.reader()).capabilities()
    finally:
        run.close()
    print("\n".join(capabilities.lines()))
    return 0


def _pytest_args(args: argparse.Namespace) -> list[str]:
    argv: list[str] = []
    for path in args.paths:
        if not Path(path).exists():
            raise UsageError(f"experiment path {path} does not exist", hint="give a YAML file or a directory")
        argv += [path, "--experiments", path]
    try:
        extra = shlex.split(args.pytest_args)
    except ValueError as exc:  # No closing quotation
        raise UsageError(f"--pytest-args {args.pytest_args!r}: {str(exc).lower()}",
                         hint="quote it as a shell would, e.g. --pytest-args \"-k 'drain and not zone'\"") from None
    return argv + _option_args(args) + extra


def _option_args(args: argparse.Namespace) -> list[str]:
    """The plugin's options given on the command line, as pytest arguments."""
    argv: list[str] = []
    for flag, dest, _, kwargs in OPTIONS:
        value = getattr(args, dest, None)
        if value in (None, False, []) or flag == "--experiments":
            continue
        if kwargs.get("action") == "store_true":
            argv.append(flag)
        elif kwargs.get("action") == "append":
            argv += [part for item in value for part in (flag, str(item))]
        else:
            argv += [flag, str(value)]
    return argv


def _run(args: argparse.Namespace) -> int:
    args.resilience_run_id = _run_id(args)  # handed to pytest as --run-id: one id for the whole run
    argv = _pytest_args(args)
    given = bool(args.resilience_results_dir)
    results = Path(args.resilience_results_dir) if given else Path(args.reports) / args.resilience_run_id
    return _session(argv, results, add_results_dir=not given, dry_run=bool(args.resilience_dry_run),
                    no_report=args.no_report)


def _run_id(args: argparse.Namespace) -> str:
    """The run's id: ``--run-id`` (checked, and never one whose results folder exists already), else a new one."""
    from resilience_tests.runids import check_run_id, new_run_id

    if not args.resilience_run_id:
        return new_run_id()
    run_id = check_run_id(args.resilience_run_id)
    if not args.resilience_results_dir and (Path(args.reports) / run_id).exists():
        raise UsageError(f"run id {run_id} was used already: {Path(args.reports) / run_id} exists",
                         hint="give another --run-id, or leave it out for a new one")
    return run_id


def alluredir_of(argv: Sequence[str]) -> Path | None:
    """The ``--alluredir`` among pytest arguments (``--alluredir X`` or ``--alluredir=X``; the last one wins)."""
    found: Path | None = None
    for i, arg in enumerate(argv):
        if arg == "--alluredir" and i + 1 < len(argv):
            found = Path(argv[i + 1])
        elif arg.startswith("--alluredir="):
            found = Path(arg.split("=", 1)[1])
    return found


def _session(argv: list[str], results: Path, *, add_results_dir: bool, dry_run: bool, no_report: bool) -> int:
    """Run experiments through pytest with their results under ``results`` (Allure's in ``results/allure-results``
    unless the pytest arguments name an ``--alluredir``); build the HTML report from them at the end."""
    import pytest

    from resilience_tests.reporting.results import ALLURE_RESULTS

    if add_results_dir:
        argv = [*argv, "--results-dir", str(results)]
    alluredir = alluredir_of(argv)
    if alluredir is None:
        alluredir = results / ALLURE_RESULTS
        argv = [*argv, "--alluredir", str(alluredir)]
    code = int(pytest.main(["-p", "no:cacheprovider", *argv]))
    if not alluredir.is_dir() or dry_run:
        return code
    folder = results if results.is_dir() else alluredir  # where html/ goes
    if no_report:
        where = results if alluredir == results / ALLURE_RESULTS else alluredir
        say(f"results: {results} (build the report with `resilience report {where}`)")
        return code
    try:
        say(f"report: {_report(folder, alluredir).index}")
    except ResilienceError as exc:
        say(f"results: {results}; the HTML report was not built: {str(exc).splitlines()[0]}", file=sys.stderr)
    return code


def _report(results: Path, alluredir: Path | None = None) -> Built:
    from resilience_tests.reporting import html

    return html.build(results, allure=alluredir)


def _report_command(args: argparse.Namespace) -> int:
    from resilience_tests.reporting import html

    results = html.find_results(args.results, args.reports)
    built = html.build(results)
    say(f"report: {built.index} ({built.tests} experiment(s), {built.size / 1e6:.1f} MB, {built.seconds:.1f} s)")
    return 0


def _changing_session(args: argparse.Namespace) -> RunSession:
    """A session for a command that changes an existing cluster: its context must be allowed, and the local
    cluster is used only if it already runs (never started)."""
    from resilience_tests.session import RunSession, check_allow_patterns, kubeconfig_from_env

    check_allow_patterns(args.resilience_allow_context or [], bool(args.resilience_allow_any_context))
    run = RunSession(seed=0, allow_contexts=args.resilience_allow_context or [],
                     kubeconfig=args.resilience_kubeconfig or kubeconfig_from_env(), context=args.resilience_context,
                     local_cluster_name=args.resilience_local_cluster or DEFAULT_NAME)
    if run.kubeconfig is None:
        local = LocalCluster(run.local_cluster_name)
        if local.state() != "running":
            raise UsageError(f"local cluster {local.name!r} is not running", hint="pass --kubeconfig")
        run.kubeconfig, run.context = str(local.kubeconfig), local.context
    return run


def _backup(args: argparse.Namespace) -> int:
    import time

    from resilience_tests.backup import archive as archives
    from resilience_tests.backup.run import backup
    from resilience_tests.namespaces import is_namespace_name
    from resilience_tests.session import RunSession, kubeconfig_from_env

    if not is_namespace_name(args.namespace):
        raise UsageError(f"backup {args.namespace[:80]!r}: not a namespace name",
                         hint="give the namespace to back up, e.g. resilience backup demo")
    key = archives.read_key(args.key_file)
    output = args.output or Path(f"{args.namespace}-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz")
    archives.check_output(output)
    run = RunSession(seed=0, kubeconfig=args.resilience_kubeconfig or kubeconfig_from_env(),
                     context=args.resilience_context, local_cluster_name=args.resilience_local_cluster or DEFAULT_NAME)
    started = time.monotonic()
    try:
        taken = backup(run.reader(), args.namespace, key=key, skip_unreadable=args.skip_unreadable)
    finally:
        run.close()
    size = archives.write(taken, output, key)
    kinds = taken.kinds()
    if key is None:
        say("archive: unauthenticated (no --key-file): restoring it will need --unauthenticated")
    say(f"backup: {sum(kinds.values())} object(s) of {len(kinds)} kind(s) from {args.namespace} in "
          f"{time.monotonic() - started:.1f} s: {output} ({size / 1e3:.0f} kB)")
    if taken.secrets:
        say(f"secrets: {len(taken.secrets)} encrypted")
    if taken.omitted_secrets:
        say(f"secrets: {len(taken.omitted_secrets)} left out (no --key-file): "
              f"{', '.join(sorted(taken.omitted_secrets))}")
    if taken.unreadable:
        say(f"not backed up (not readable by this account): {', '.join(sorted(taken.unreadable))}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from resilience_tests.backup import archive as archives
    from resilience_tests.backup.run import plan, restore

    key = archives.read_key(args.key_file)
    taken = archives.read(args.archive, key, skip_encrypted=args.without_secrets)
    plan(taken, args.into, allow_system=args.allow_system_namespace)  # a bad target is refused before connecting
    if taken.authenticated:
        say("archive: authenticated (its manifest's HMAC-SHA256 matches under the key; every member matches "
              "the manifest)")
    elif args.unauthenticated:
        say(f"archive: {archives.UNAUTHENTICATED}")
    run = _changing_session(args)
    try:
        done = restore(run.kube(), taken, into=args.into, overwrite=args.overwrite,
                       without_secrets=args.without_secrets, timeout=args.timeout,
                       allow_system=args.allow_system_namespace, unauthenticated=args.unauthenticated)
    finally:
        run.close()
    if done.weakened:
        say(f"warning: Pod Security of {done.namespace} weakened by the restore: {', '.join(done.weakened)}")
    say(f"restore: {len(done.applied)} object(s) applied into {done.namespace} in {done.applied_s:.1f} s")
    if done.dropped_node_ports:
        say(f"nodePorts dropped (restored beside the original): {', '.join(done.dropped_node_ports)}")
    if done.ready_s is not None:
        say(f"workloads ready {done.ready_s:.1f} s after the first apply")
    if done.not_ready:
        say(f"error: not ready after {args.timeout:.0f} s: {', '.join(done.not_ready)}", file=sys.stderr)
        return 1
    return 0


def _cleaned(kube: Kube, given: str | None, *, dry_run: bool, force: bool) -> list[CleanupAction]:
    """Clean up every dead run (``given`` None), one experiment (its id), or every experiment of a run (the run
    id: its experiments are found among what runs left behind). What a run changed outside the API is given back
    by the cluster's platform (a frozen node, a paused container, a load generator left running)."""
    from functools import partial

    from resilience_tests.backup import pending
    from resilience_tests.cluster.cleanup import cleanup
    from resilience_tests.platform import detect, host_restore
    from resilience_tests.runids import belongs

    platform = detect(kube)
    undo = partial(cleanup, kube, host_restore=host_restore(platform, kube), stop_load=platform.stop_load)
    ids: list[str | None] = [given]
    if given:
        seen = [a.run_id for a in (*undo(dry_run=True), *pending.cleanup(kube, dry_run=True))]
        ids = list(dict.fromkeys(r for r in seen if belongs(r, given))) or [given]
    return [action for one in ids for action in (*undo(run_id=one, dry_run=dry_run, force=force),
                                                 *pending.cleanup(kube, run_id=one, dry_run=dry_run, force=force))]


def _cleanup(args: argparse.Namespace) -> int:
    from resilience_tests.cluster.cleanup import DONE, OUTCOMES

    run = _changing_session(args)
    if args.force and not args.run_id:
        raise UsageError("--force acts on one run only", hint="name it: resilience cleanup --run RUN_ID --force")
    dry = bool(args.resilience_dry_run)
    try:
        kube = run.kube()
        plan = _cleaned(kube, args.run_id, dry_run=True, force=args.force)
        todo = [a for a in plan if a.outcome == DONE]
        for action in todo:  # what it will do, first
            say(f"plan: {action.target} ({action.run_id}): {action.action}")
        if not plan:
            say("cleanup: nothing left behind")
            return 0
        actions = plan if dry or not todo else _cleaned(kube, args.run_id, dry_run=False, force=args.force)
    finally:
        run.close()
    for action in actions:  # what became of each: done, left alone, refused, failed (and why a run is dead)
        if action.outcome == DONE and actions is plan:
            continue  # not done: printed as the plan above
        say(f"{action.outcome}: {action.target} ({action.run_id}): {action.action}")
    counts = {outcome: sum(a.outcome == outcome for a in actions) for outcome in OUTCOMES}
    if actions is plan:
        counts[DONE] = 0
    summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    say(f"cleanup: {len(todo)} planned; {summary}" + (" (dry run: nothing done)" if dry else ""))
    return 1 if counts["failed"] else 0


def _audit(args: argparse.Namespace) -> int:
    from resilience_tests.audit import prove, report, rules, sources
    from resilience_tests.audit_items import read_targets
    from resilience_tests.session import RunSession, kubeconfig_from_env

    namespaces = [t for t in args.targets if not sources.is_path(t)]
    wanted = prove.selected_rules(args.prove) if args.prove else None
    if args.prove and len(namespaces) != len(args.targets):
        raise UsageError("--prove runs experiments against a live namespace, not manifest files",
                         hint="apply the manifests, then `resilience audit NAMESPACE --prove`")
    run = RunSession(seed=0, kubeconfig=args.resilience_kubeconfig or kubeconfig_from_env(),
                     context=args.resilience_context, local_cluster_name=args.resilience_local_cluster or DEFAULT_NAME)
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
            results, unproved = _prove(args, findings, placements, wanted)
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


def _prove(args: argparse.Namespace, findings: list[Finding], placements: dict[str, Placement],
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
    argv = [str(folder), "--experiments", str(folder), *_option_args(args)]
    say(f"proving {len(proofs)} experiment(s) written to {folder}/")
    code = _session(argv, results, add_results_dir=True, dry_run=bool(args.resilience_dry_run), no_report=False)
    entries: dict[str, dict[str, object]] = {}
    if (results / SUMMARY_FILE).is_file():
        entries = {str(e["name"]): e for e in summary.read(results / SUMMARY_FILE)["experiments"]}
    elif code not in (0, 1):
        raise ResilienceError(f"the proofs did not run (pytest exit code {code}); see the output above")
    records = {p.name: journal_records(results, summary.experiment_id(entries[p.name])) for p in proofs
               if p.kind in prove.DRAINS and p.name in entries}  # a drain's proof reads its journal too
    return [prove.judge(p, entries.get(p.name), records.get(p.name, ())) for p in proofs], unproved


def _print_status(status: ClusterStatus) -> None:
    say(f"cluster {status.name}: {status.state}")
    if status.state == "absent":
        return
    say(f"kubeconfig: {status.kubeconfig}")
    if status.topology:
        say(f"topology: {status.topology.describe()}")
    if status.problem:
        say(f"problem: {status.problem}")
    for name, pid in sorted(status.processes.items()):
        say(f"  process {name:<26} pid {pid}")
    for node in status.nodes:
        taints = ",".join(node.taints) or "-"
        say(f"  node {node.name:<12} {node.zone:<8} {node.kind:<10} Ready={node.ready:<8} "
              f"heartbeat={node.heartbeat or '-':<4} taints={taints}")


def _run_cluster(args: argparse.Namespace) -> int:
    if args.action == "build":
        build.build()
        return 0
    cluster = LocalCluster(args.name)
    handlers: dict[str, Callable[[], int]] = {
        "up": lambda: _up(cluster, args),
        "down": lambda: (cluster.down(), 0)[1],
        "status": lambda: _status(cluster),
        "kubeconfig": lambda: _kubeconfig(cluster),
        "load-image": lambda: _load_image(cluster, args),
        "fail": lambda: _heartbeat(cluster, args, fail=True),
        "restore": lambda: _heartbeat(cluster, args, fail=False),
    }
    return handlers[args.action]()


def _up(cluster: LocalCluster, args: argparse.Namespace) -> int:
    topology = Topology(args.zones, args.nodes_per_zone, args.real_nodes)
    kubeconfig = cluster.up(topology, port=args.port, timeout=args.timeout)
    if args.velero:
        cluster.start_velero()
    say(kubeconfig)
    return 0


def _status(cluster: LocalCluster) -> int:
    status = cluster.status()
    _print_status(status)
    return 0 if status.state == "running" else 1


def _kubeconfig(cluster: LocalCluster) -> int:
    if cluster.state() != "running":
        raise UsageError(f"cluster {cluster.name!r} is not running", hint="run `resilience cluster up` first")
    say(cluster.kubeconfig)
    return 0


def _load_image(cluster: LocalCluster, args: argparse.Namespace) -> int:
    for archive in args.archives:
        for node in cluster.load_image(Path(archive)):
            say(f"imported {archive} into {node}")
    return 0


def _heartbeat(cluster: LocalCluster, args: argparse.Namespace, *, fail: bool) -> int:
    names = cluster.zone_nodes(args.zone) if args.zone else list(args.node)
    (cluster.fail_nodes if fail else cluster.restore_nodes)(names)
    say(f"{'failed' if fail else 'restored'}: {', '.join(names)}")
    return 0


def _joined(argv: Sequence[str]) -> list[str]:
    """``--pytest-args -v`` as written: the value after ``--pytest-args`` is its value even if it starts with
    a dash (argparse would take it for an option of its own)."""
    out: list[str] = []
    items = list(argv)
    while items:
        item = items.pop(0)
        if item == "--pytest-args" and items:
            item = f"--pytest-args={items.pop(0)}"
        out.append(item)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``resilience`` console script.

    Errors raised on purpose, and what bad input or an unreachable or unwilling cluster raises from the
    libraries below (see :func:`~resilience_tests.errors.from_input`), end as one line on stderr; anything else
    is a bug and keeps its traceback.
    """
    args: argparse.Namespace | None = None
    try:
        args = make_parser().parse_args(_joined(sys.argv[1:] if argv is None else argv))
        return _dispatch(args)
    except UsageError as exc:
        say(f"error: {exc}", file=sys.stderr)
        return 2
    except ResilienceError as exc:
        first, _, rest = str(exc).partition("\n")
        say(f"error: {first}", file=sys.stderr)
        if rest:
            say(rest, file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # RevertsAborted says what it left behind
        say(f"error: {str(exc).splitlines()[0] if str(exc) else 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as exc:
        command = " ".join(p for p in (getattr(args, "command", None), getattr(args, "action", None)) if p)
        line = from_input(exc, f"resilience {command}".strip())
        if line is None:
            raise  # a bug: its traceback is what a report needs
        say(f"error: {line}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "cluster": _run_cluster, "run": _run, "cleanup": _cleanup, "platform": _platform,
        "report": _report_command, "audit": _audit, "backup": _backup, "restore": _restore}
    if args.command not in commands:
        raise UsageError(f"unknown command {args.command!r}")
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
