"""The pytest plugin: options, the local cluster fixture and the run header.

Thin on purpose: options and fixtures only, the work is done by the package.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resilience_tests.errors import ResilienceError
from resilience_tests.testbed.cluster import DEFAULT_NAME, LocalCluster
from resilience_tests.testbed.topology import Topology

_started_key = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the resilience option group with ini fallbacks."""
    group = parser.getgroup("resilience", "resilience-tests")

    def add(flag: str, ini: str, help_text: str, default: str | None = None, **kwargs: object) -> None:
        group.addoption(flag, dest=ini, default=None, help=help_text, **kwargs)  # type: ignore[arg-type]
        parser.addini(ini, help_text, default=default)

    add("--kubeconfig", "resilience_kubeconfig",
        "kubeconfig of a live or kind cluster; the local cluster is not started")
    add("--context", "resilience_context", "kube context to use (default: the kubeconfig's current one)")
    add("--local-cluster-name", "resilience_local_cluster", "name of the local cluster to start or reuse",
        default=DEFAULT_NAME)
    group.addoption("--keep-cluster", action="store_true", default=False,
                    help="leave the local cluster running after the session if this session started it")


def option(config: pytest.Config, ini: str) -> str | None:
    """Value of an option: command line first, then the ini file."""
    value = config.getoption(ini)
    if value is None:
        value = config.getini(ini) or None
    return value  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def local_cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """The project's local cluster (3 zones x 2 simulated nodes), started once per session.

    Reused if it already runs; stopped at the end only if this session started
    it (unless ``--keep-cluster``). Skips when ``--kubeconfig`` names another cluster.
    """
    config = request.config
    if option(config, "resilience_kubeconfig"):
        pytest.skip("needs the local cluster; --kubeconfig points at another cluster")
    cluster = LocalCluster(option(config, "resilience_local_cluster") or DEFAULT_NAME)
    started = cluster.state() != "running"
    try:
        cluster.up(Topology(3, 2), log=False)
    except ResilienceError as exc:
        pytest.fail(f"local cluster could not start: {exc}", pytrace=False)
    config.stash[_started_key] = started
    yield cluster
    if started and not config.getoption("--keep-cluster"):
        cluster.down(log=False)
