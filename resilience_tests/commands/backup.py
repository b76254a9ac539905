"""``resilience backup`` (a namespace's objects into one checked archive) and ``resilience restore`` (an archive
into a namespace)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from resilience_tests.commands.common import Parser, changing_session, namespace_name, reading_session, say
from resilience_tests.plugin import OPTIONS


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    backup = sub.add_parser("backup", help="back up a namespace's objects into one checked archive",
                            description="Back up every namespaced object the account can read (custom resources "
                                        "too), cleaned of server-set fields, into one archive with a manifest and "
                                        "checksums. Secret values only go in encrypted, with --key-file "
                                        "(docs/backup.md).")
    backup.add_argument("namespace", type=namespace_name, help="the namespace to back up")
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


def backup_command(args: argparse.Namespace) -> int:
    import time

    from resilience_tests.backup import archive as archives
    from resilience_tests.backup.run import backup
    key = archives.read_key(args.key_file)
    output = args.output or Path(f"{args.namespace}-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz")
    archives.check_output(output)
    run = reading_session(args)
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


def restore_command(args: argparse.Namespace) -> int:
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
    run = changing_session(args)
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
