"""``resilience cleanup``: undo what dead runs (or one named run) left behind; the plan is listed first."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from resilience_tests.commands.common import Parser, changing_session, say
from resilience_tests.errors import UsageError
from resilience_tests.plugin import OPTIONS

if TYPE_CHECKING:
    from resilience_tests.cluster.cleanup import CleanupAction
    from resilience_tests.cluster.kube import Kube
    from resilience_tests.platform import Platform


def add_parser(sub: argparse._SubParsersAction[Parser]) -> None:
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



def cleaned(kube: Kube, given: str | None, *, dry_run: bool, force: bool,
            platform: Platform | None = None) -> list[CleanupAction]:
    """Clean up every dead run (``given`` None), one experiment (its id), or every experiment of a run (the run
    id: its experiments are found among what runs left behind). What a run changed outside the API is given back
    by the cluster's platform (a frozen node, a paused container, a load generator left running); detected here
    unless the caller detected it once for its plan and its acts."""
    from functools import partial

    from resilience_tests.backup import pending
    from resilience_tests.cluster.cleanup import cleanup
    from resilience_tests.platform import detect, host_restore
    from resilience_tests.runids import belongs

    platform = platform or detect(kube)
    undo = partial(cleanup, kube, host_restore=host_restore(platform, kube), stop_load=platform.stop_load)
    ids: list[str | None] = [given]
    if given:
        seen = [a.run_id for a in (*undo(dry_run=True), *pending.cleanup(kube, dry_run=True))]
        ids = list(dict.fromkeys(r for r in seen if belongs(r, given))) or [given]
    return [action for one in ids for action in (*undo(run_id=one, dry_run=dry_run, force=force),
                                                 *pending.cleanup(kube, run_id=one, dry_run=dry_run, force=force))]


def cleanup_command(args: argparse.Namespace) -> int:
    from resilience_tests.cluster.cleanup import DONE, OUTCOMES

    run = changing_session(args)
    if args.force and not args.run_id:
        raise UsageError("--force acts on one run only", hint="name it: resilience cleanup --run RUN_ID --force")
    dry = bool(args.resilience_dry_run)
    try:
        kube = run.kube()
        from resilience_tests.platform import detect

        platform = detect(kube)  # once, for the plan and the acts
        plan = cleaned(kube, args.run_id, dry_run=True, force=args.force, platform=platform)
        todo = [a for a in plan if a.outcome == DONE]
        for action in todo:  # what it will do, first
            say(f"plan: {action.target} ({action.run_id}): {action.action}")
        if not plan:
            say("cleanup: nothing left behind")
            return 0
        actions = plan if dry or not todo else cleaned(kube, args.run_id, dry_run=False, force=args.force,
                                                          platform=platform)
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
