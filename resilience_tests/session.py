"""Per-run state of the plugin and the CLI: which cluster, which seed, allowed contexts.

Lives on ``config.stash``; nothing global.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from resilience_tests.errors import ResilienceError, UsageError
from resilience_tests.runids import ExperimentIds
from resilience_tests.testbed import DEFAULT_CLUSTER_NAME

if TYPE_CHECKING:  # the kubernetes client and pydantic load on first use, not at pytest start-up
    from resilience_tests.cluster.client import ClusterRef
    from resilience_tests.cluster.kube import Kube
    from resilience_tests.faults.base import FaultFactory
    from resilience_tests.platform import Platform
    from resilience_tests.testbed.cluster import LocalCluster

DEFAULT_LOCAL_CLUSTER = DEFAULT_CLUSTER_NAME

DEFAULT_ALLOWED = ("kwok-*", "kind-*")


class ContextNotAllowed(ResilienceError):
    """The kube context is not one experiments may run against."""


# Context names of very different shapes: a pattern matching all of them lets experiments run anywhere.
_PROBES = ("production", "prod-eu-1", "gke_acme_us-central1_main", "arn:aws:eks:us-east-1:1:cluster/x", "a")


def matches_any_context(pattern: str) -> bool:
    """Whether ``pattern`` matches (nearly) every context name, like ``*``."""
    return all(fnmatch.fnmatchcase(probe, pattern) for probe in _PROBES)


def check_allow_patterns(patterns: list[str], allow_any: bool) -> None:
    """Refuse an ``--allow-context`` pattern that matches every context unless ``--allow-any-context`` says so."""
    broad = [p for p in patterns if matches_any_context(p)]
    if broad and not allow_any:
        raise UsageError(f"--allow-context {broad[0]!r} matches every context, production clusters included",
                         hint="name the contexts (e.g. --allow-context 'staging-*'), or add --allow-any-context "
                              "if you mean every cluster this kubeconfig reaches")


def kubeconfig_from_env() -> str | None:
    """``KUBECONFIG`` as kubectl reads it: one file or a list joined by ``:`` (files that do not exist are
    skipped, as kubectl does); None when it is unset or empty. UsageError when it names no file that exists."""
    value = os.environ.get("KUBECONFIG", "")
    paths = [p for p in value.split(os.pathsep) if p.strip()]
    if not paths:
        return None
    existing = [p for p in paths if Path(p).expanduser().is_file()]
    if not existing:
        raise UsageError(f"KUBECONFIG names {', '.join(paths)}, which does not exist",
                         hint="fix KUBECONFIG, unset it to use the local cluster, or pass --kubeconfig FILE")
    return os.pathsep.join(existing)


def confirm_context(context: str, kubeconfig: str, *, tty: str = "/dev/tty") -> None:
    """Before faults go into a context that is not a local (kwok-*) or kind cluster, a person types its name
    on the terminal; without a terminal (CI) it is refused unless ``--yes``."""
    if any(fnmatch.fnmatchcase(context, p) for p in DEFAULT_ALLOWED):
        return
    try:
        fd = os.open(tty, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        raise UsageError(f"context {context!r} is not a local or kind cluster, and there is no terminal to "
                         "confirm faults on it", hint="pass --yes to inject faults without asking") from None
    # The terminal itself, not stdin: pytest holds stdin, and a person is what this asks for.
    with open(fd, "rb", buffering=0, closefd=True) as terminal:
        os.write(fd, f"resilience-tests: faults are about to go into context {context!r} (kubeconfig "
                     f"{kubeconfig}). Type the context name to go on: ".encode())
        answer = terminal.readline(1024).decode(errors="replace").strip()
    if answer != context:
        raise UsageError(f"not confirmed (typed {answer!r}): nothing was injected into {context!r}",
                         hint=f"type {context} at the prompt, or pass --yes")


def check_context_allowed(context: str, extra: list[str]) -> None:
    """Raise ContextNotAllowed unless ``context`` matches the defaults or ``--allow-context``."""
    patterns = [*DEFAULT_ALLOWED, *extra]
    if not any(fnmatch.fnmatchcase(context, p) for p in patterns):
        raise ContextNotAllowed(f"context {context!r} is not allowed for experiments",
                                hint=f"pass --allow-context {context} if you mean to run against it")


@dataclass
class RunSession:
    """Which cluster a run uses, its id, seed and options. One per pytest run or CLI call.

    ``ids`` holds the run id (shown at start, the name of ``resilience run``'s results folder) and mints each
    experiment's id from it.
    """

    seed: int
    allow_contexts: list[str] = field(default_factory=list)
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    dry_run: bool = False
    confirm_faults: bool = False  # ask on the terminal before faults go into a context not local or kind
    local_cluster_name: str = DEFAULT_LOCAL_CLUSTER
    real_nodes: int = 3
    started_local: LocalCluster | None = None
    ids: ExperimentIds = field(default_factory=ExperimentIds)
    _kube: Kube | None = None
    _reader: Kube | None = None
    _registry: dict[str, FaultFactory] | None = None
    _platform: Platform | None = None

    @property
    def run_id(self) -> str:
        """This run's id."""
        return self.ids.run_id

    def is_local_cluster(self) -> bool:
        """Whether the selected kubeconfig is the local cluster's own (e.g. KUBECONFIG exported from it)."""
        from resilience_tests.testbed.cluster import LocalCluster

        if not self.kubeconfig:
            return True
        mine = LocalCluster(self.local_cluster_name)
        return Path(self.kubeconfig).expanduser().resolve() == mine.kubeconfig.resolve() and \
            self.context in (None, mine.context)

    def use_local_cluster(self) -> LocalCluster:
        """Start (or reuse) the local cluster and point this session at it."""
        from resilience_tests.testbed.cluster import LocalCluster
        from resilience_tests.testbed.topology import Topology

        cluster = LocalCluster(self.local_cluster_name)
        was_running = cluster.state() == "running"
        cluster.up(Topology(3, 2, self.real_nodes), log=False)
        if not was_running:
            self.started_local = cluster
        if self.kubeconfig is None:
            self.kubeconfig, self.context = str(cluster.kubeconfig), cluster.context
        return cluster

    @property
    def registry(self) -> dict[str, FaultFactory]:
        """The fault registry (loaded once)."""
        if self._registry is None:
            from resilience_tests.faults.base import load_registry

            self._registry = load_registry()
        return self._registry

    def platform(self) -> Platform:
        """What the cluster can do beyond the API: detected once per run (on first use), handed to the runner and
        the ``chaos`` helper."""
        if self._platform is None:
            from resilience_tests.platform import detect

            self._platform = detect(self.kube())
        return self._platform

    def ref(self) -> ClusterRef:
        """The cluster reference, after checking its context is allowed."""
        if not self.kubeconfig:
            raise ResilienceError("no cluster selected", hint="pass --kubeconfig or use the local cluster")
        from resilience_tests.cluster.client import ClusterRef, current_context

        context = self.context or current_context(self.kubeconfig)
        check_context_allowed(context, self.allow_contexts)
        return ClusterRef(self.kubeconfig, context)

    def attach_local_cluster(self) -> None:
        """Point this session at the local cluster if it is running, without starting or changing it."""
        from resilience_tests.testbed.cluster import LocalCluster

        cluster = LocalCluster(self.local_cluster_name)
        if cluster.state() != "running":
            raise UsageError(f"--dry-run plans against a running cluster, and the local cluster "
                             f"{self.local_cluster_name!r} is not running (a dry run never starts one)",
                             hint="start it with `resilience cluster up`, or pass --kubeconfig")
        self.kubeconfig, self.context = str(cluster.kubeconfig), cluster.context

    def kube(self) -> Kube:
        """A connected client (built once); the local cluster unless --kubeconfig was given (a dry run only
        attaches to a running local cluster, it never starts one)."""
        if self.kubeconfig is None:
            if self.dry_run:
                self.attach_local_cluster()
            else:
                self.use_local_cluster()
        if self._kube is None:
            from resilience_tests.cluster.kube import Kube

            ref = self.ref()
            if self.confirm_faults and not self.dry_run:
                confirm_context(ref.context or "", ref.kubeconfig)
            self._kube = Kube.connect(ref)
        return self._kube

    def reader(self) -> Kube:
        """A client that only reads (the audit): no context guardrail, no question asked, and the local cluster
        only if it already runs (reading never starts one)."""
        if self._reader is None:
            from resilience_tests.cluster.client import ClusterRef, current_context
            from resilience_tests.cluster.kube import Kube
            from resilience_tests.testbed.cluster import LocalCluster

            kubeconfig, context = self.kubeconfig, self.context
            if kubeconfig is None:
                local = LocalCluster(self.local_cluster_name)
                if local.state() != "running":
                    raise UsageError(f"no cluster to read from: the local cluster {self.local_cluster_name!r} is "
                                     "not running", hint="pass --kubeconfig, or start it with `resilience cluster up`")
                kubeconfig, context = str(local.kubeconfig), local.context
            self._reader = Kube.connect(ClusterRef(kubeconfig, context or current_context(kubeconfig)))
        return self._reader

    def close(self) -> None:
        """Release the clients."""
        for client in (self._kube, self._reader):
            if client is not None:
                client.close()
        self._kube = self._reader = None


SESSION_KEY = pytest.StashKey[RunSession]()


def get_session(config: pytest.Config) -> RunSession:
    """The RunSession of a pytest run (created by the plugin at configure time)."""
    return config.stash[SESSION_KEY]
