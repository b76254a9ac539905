"""The pytest plugin: options, experiment collection, fixtures and the run header.

Thin on purpose: the work is done by the package. State lives on ``config.stash``.
"""

from __future__ import annotations

import contextlib
import random
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from resilience_tests.errors import ResilienceError
from resilience_tests.interrupts import interrupt_on
from resilience_tests.runids import ExperimentIds
from resilience_tests.session import (
    DEFAULT_LOCAL_CLUSTER,
    SESSION_KEY,
    RunSession,
    check_allow_patterns,
    get_session,
    kubeconfig_from_env,
    matches_any_context,
)

if TYPE_CHECKING:  # heavy imports (kubernetes client, pydantic) wait until a test needs them
    from resilience_tests.chaos import Chaos
    from resilience_tests.cluster.kube import Kube
    from resilience_tests.testbed.cluster import LocalCluster

OPTIONS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("--kubeconfig", "resilience_kubeconfig",
     "kubeconfig of a live or kind cluster (default: the project's local cluster, started if needed)",
     {"metavar": "FILE"}),
    ("--context", "resilience_context", "kube context to use (default: the kubeconfig's current one)",
     {"metavar": "NAME"}),
    ("--namespace", "resilience_namespace", "namespace for experiments that name none", {"metavar": "NAME"}),
    ("--experiments", "resilience_experiments", "experiment YAML file or directory to collect (repeatable)",
     {"action": "append", "metavar": "PATH"}),
    ("--allow-context", "resilience_allow_context",
     "also allow experiments against this context (glob; repeatable). kwok-* and kind-* are always allowed",
     {"action": "append", "metavar": "PATTERN"}),
    ("--allow-any-context", "resilience_allow_any_context",
     "accept an --allow-context pattern that matches every context (such as '*')", {"action": "store_true"}),
    ("--dry-run", "resilience_dry_run", "print each experiment's plan and change nothing",
     {"action": "store_true"}),
    ("--yes", "resilience_yes",
     "inject faults into a context that is not a local or kind cluster without asking first (CI)",
     {"action": "store_true"}),
    ("--no-progress", "resilience_no_progress", "no status line while an experiment runs (event lines stay)",
     {"action": "store_true"}),
    ("--seed", "resilience_seed", "seed of random choices (default: random, shown in the header)",
     {"type": int, "metavar": "N"}),
    ("--local-cluster-name", "resilience_local_cluster", "name of the local cluster to start or reuse",
     {"metavar": "NAME"}),
    ("--real-nodes", "resilience_real_nodes",
     "real kubelet nodes of the local cluster when this run starts it (default 3; 0 for none)",
     {"type": int, "metavar": "N"}),
    ("--run-id", "resilience_run_id",
     "id of this run (default: a new one, shown at start): `resilience run` keeps its results in reports/<run id>/, "
     "each experiment's id is <run id>-<n>", {"metavar": "ID"}),
    ("--results-dir", "resilience_results_dir",
     "keep each experiment's journal, timeline plot and load files, and summary.json, under DIR "
     "(`resilience run` uses reports/<run id>/)", {"metavar": "DIR"}),
    ("--audit", "resilience_audit",
     "also audit these manifests (file, folder, -) or live namespaces: a test per object and rule (repeatable)",
     {"action": "append", "metavar": "TARGET"}),
    ("--keep-cluster", "resilience_keep_cluster",
     "leave the local cluster running at the end if this run started it", {"action": "store_true"}),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    """One option group; each option has an ini equivalent of the same name."""
    group = parser.getgroup("resilience", "resilience-tests")
    for flag, ini, help_text, kwargs in OPTIONS:
        default: list[str] | None = [] if kwargs.get("action") == "append" else None
        group.addoption(flag, dest=ini, default=default, help=help_text, **kwargs)
        ini_type = "args" if kwargs.get("action") == "append" else "bool" if kwargs.get(
            "action") == "store_true" else "string"
        parser.addini(ini, help_text, type=ini_type)  # type: ignore[arg-type]


def option(config: pytest.Config, ini: str) -> Any:
    """Value of an option: command line first, then the ini file."""
    value = config.getoption(ini)
    if value in (None, [], False):
        ini_value = config.getini(ini)
        value = ini_value if ini_value not in ("", []) else value
    return value


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """The plugin's own hooks (``pytest_resilience_journal``)."""
    from resilience_tests import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    """Register markers, build the run session, start reporting and make SIGTERM and SIGHUP revert like Ctrl-C."""
    config.addinivalue_line("markers", "experiment(faults): a collected resilience experiment")
    config.addinivalue_line("markers", "cluster: needs a Kubernetes cluster")
    config.addinivalue_line("markers", "audit(rule, severity): a rule of the resilience audit on one object")
    seed = option(config, "resilience_seed")
    allowed = list(option(config, "resilience_allow_context") or [])
    try:
        check_allow_patterns(allowed, bool(option(config, "resilience_allow_any_context")))
        kubeconfig = option(config, "resilience_kubeconfig") or kubeconfig_from_env()
        ids = ExperimentIds(option(config, "resilience_run_id") or None)
    except ResilienceError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = RunSession(
        seed=int(seed) if seed not in (None, "") else random.randrange(1, 10**6),
        allow_contexts=allowed,
        kubeconfig=kubeconfig,
        context=option(config, "resilience_context"),
        namespace=option(config, "resilience_namespace"),
        dry_run=bool(option(config, "resilience_dry_run")),
        confirm_faults=not option(config, "resilience_yes"),
        local_cluster_name=option(config, "resilience_local_cluster") or DEFAULT_LOCAL_CLUSTER,
        real_nodes=int(real) if (real := option(config, "resilience_real_nodes")) not in (None, "") else 3,
        ids=ids,
    )
    from resilience_tests.reporting.plugin import ReportingPlugin

    config.pluginmanager.register(ReportingPlugin(config, cluster=config.stash[SESSION_KEY]), "resilience-reporting")
    with contextlib.suppress(ValueError):  # not in the main thread
        for sig in (signal.SIGTERM, signal.SIGHUP):  # a cancelled CI job, a closed SSH session
            if signal.getsignal(sig) is signal.SIG_DFL:
                signal.signal(sig, interrupt_on)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Experiments outside the directory pytest runs in are shown by their path under the rootdir (which the
    header names), not as ``../../tmp/exp/x.yaml``."""
    config = session.config
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and not config.rootpath.is_relative_to(config.invocation_params.dir):
        reporter.startpath = config.rootpath
        config.cwd_relative_nodeid = lambda nodeid: nodeid  # type: ignore[method-assign] # rootdir-relative


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close the client; stop the local cluster if this run started it."""
    run = config.stash.get(SESSION_KEY, None)
    if run is None:
        return
    run.close()
    if run.started_local is not None and not option(config, "resilience_keep_cluster"):
        run.started_local.down(log=False)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Run id, cluster, context, server version and seed."""
    run = get_session(config)
    allowed = [f"resilience-tests: experiments also allowed on contexts {', '.join(run.allow_contexts)}"
               + (" (every context)" if any(matches_any_context(p) for p in run.allow_contexts) else "")
               ] if run.allow_contexts else []
    results = option(config, "resilience_results_dir")
    allowed.insert(0, f"resilience-tests: run {run.run_id}" + (f", results in {results}" if results else ""))
    if not run.kubeconfig:
        where = f"the local cluster '{run.local_cluster_name}' (started on first use)"
        return [f"resilience-tests: {where}, seed {run.seed}", *allowed]
    from resilience_tests.cluster.kube import Kube
    from resilience_tests.reporting.redact import redact
    from resilience_tests.text import printable

    def shown(line: str) -> str:  # the server's version and URL come from the cluster and the kubeconfig
        return printable(redact(line))

    try:
        ref = run.ref()
        kube = Kube.connect(ref, timeout=3)
        try:
            server = f"{kube.server}, server {kube.server_version()}"
        finally:
            kube.close()
        return [shown(f"resilience-tests: context {ref.context}, {server}, seed {run.seed}"), *allowed]
    except ResilienceError as exc:
        return [shown(f"resilience-tests: {exc} (seed {run.seed})"), *allowed]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect YAML experiments under the ``--experiments`` files and directories."""
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    roots = [Path(d).resolve() for d in option(parent.config, "resilience_experiments") or []]
    path = file_path.resolve()
    if not any(root == path or root in path.parents for root in roots):
        return None
    from resilience_tests.items import ExperimentFile

    return ExperimentFile.from_parent(parent, path=file_path)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add the audit's tests (``--audit``) before selection (-k, -m) sees the items."""
    targets = list(option(config, "resilience_audit") or [])
    if not targets:
        return
    from resilience_tests.audit.sources import is_path
    from resilience_tests.audit_items import AuditTarget

    kube = None
    if not all(is_path(t) for t in targets):
        try:
            kube = get_session(config).reader()
        except ResilienceError as exc:
            raise pytest.UsageError(f"--audit of a namespace needs a cluster: {exc}") from None
    collector = AuditTarget.from_parent(session, name="audit", targets=targets, kube=kube)
    added = list(collector.collect())
    items.extend(added)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and isinstance(getattr(reporter, "_numcollected", None), int):
        reporter._numcollected += len(added)  # so "collected N items" counts them


@pytest.fixture(scope="session")
def local_cluster(request: pytest.FixtureRequest) -> LocalCluster:
    """The project's local cluster (3 zones x 2 simulated nodes + ``--real-nodes`` real ones), started once per run.

    Stopped at the end only if this run started it (unless ``--keep-cluster``).
    Skips when ``--kubeconfig`` names another cluster.
    """
    run = get_session(request.config)
    if run.kubeconfig and not run.is_local_cluster():
        pytest.skip("needs the local cluster; --kubeconfig (or KUBECONFIG) points at another cluster")
    try:
        return run.use_local_cluster()
    except ResilienceError as exc:
        pytest.fail(f"local cluster could not start: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Kube:
    """A connected client of the selected cluster (after the context guardrail)."""
    try:
        return get_session(request.config).kube()
    except ResilienceError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def chaos(cluster: Kube, request: pytest.FixtureRequest) -> Iterator[Chaos]:
    """Inject faults from Python; everything injected is reverted at teardown."""
    from resilience_tests.chaos import Chaos

    run = get_session(request.config)
    try:
        platform = run.platform()
    except ResilienceError as exc:
        pytest.fail(str(exc), pytrace=False)
    helper = Chaos(cluster, run.registry, seed=run.seed, namespace=run.namespace, platform=platform,
                   ids=run.ids)
    try:
        yield helper
    finally:
        helper.revert_all()

