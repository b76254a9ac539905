"""The pytest plugin through pytester: options, collection, errors. No cluster needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resilience_tests.reporting.html import cache_root as report_cache_root
from tests.tools import console_script

pytest_plugins = ["pytester"]
RESILIENCE = console_script("resilience") or "resilience"  # this environment's console script

GOOD = """
name: kill-one
target: {namespace: demo, workload: deployment/web}
faults:
  - {type: pod-kill, count: 1}
"""


@pytest.fixture
def experiments(pytester: pytest.Pytester) -> Path:
    folder = pytester.mkdir("experiments")
    (folder / "kill.yaml").write_text(GOOD)
    return folder


def test_yaml_experiments_are_collected_as_items(pytester: pytest.Pytester, experiments: Path) -> None:
    result = pytester.runpytest_subprocess("--experiments", str(experiments), "--co", "-q", "-p", "no:randomly")
    result.stdout.fnmatch_lines(["experiments/kill.yaml::kill-one", "1 test collected*"])
    assert result.ret == 0


def test_yaml_outside_the_experiments_directories_is_ignored(pytester: pytest.Pytester, experiments: Path) -> None:
    pytester.makefile(".yaml", other="name: not-an-experiment\n")
    result = pytester.runpytest_subprocess("--co", "-q")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_ini_option_selects_experiments(pytester: pytest.Pytester, experiments: Path) -> None:
    pytester.makeini("[pytest]\nresilience_experiments = experiments\n")
    result = pytester.runpytest_subprocess("--co", "-q")
    result.stdout.fnmatch_lines(["experiments/kill.yaml::kill-one"])


@pytest.mark.parametrize(("content", "expected"), [
    ("name: x\nfaults: [\n", "*kill.yaml: malformed YAML at line *"),
    ("name: x\ntarget: {namespace: d}\nfaults: [{type: node-melt}]\n",
     "*faults[[]0[]].type: unknown fault type 'node-melt'; known types: backup, disaster, node-drain, *"),
    ("name: x\ntarget: {namespace: d, wrkload: deployment/x}\nfaults: [{type: scale, replicas: 1}]\n",
     "*target.wrkload: unknown key; allowed keys: namespace, selector, url, workload*"),
    ("name: x\ntarget: {namespace: d, workload: deployment/web}\nfaults: [{type: rollout, action: restart}]\n"
     "slas: [{type: recovery-time, max: 10s, window: 'fault:rollot'}]\n",
     "*slas[[]0[]] (recovery-time (from start)).window: window 'fault:rollot' matches no fault of the experiment; "
     "faults: fault:0 (rollout)*"),
])
def test_bad_experiments_fail_collection_with_one_clear_line(pytester: pytest.Pytester, experiments: Path,
                                                            content: str, expected: str) -> None:
    (experiments / "kill.yaml").write_text(content)
    result = pytester.runpytest_subprocess("--experiments", str(experiments), "--co")
    result.stdout.fnmatch_lines([expected])
    result.stdout.no_fnmatch_line("*Traceback*")
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_header_shows_the_seed_and_the_cluster(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess("--seed", "4242")
    result.stdout.fnmatch_lines(["resilience-tests: the local cluster 'resilience' (started on first use), seed 4242"])


def test_header_shows_the_run_id_once_and_a_bad_one_is_refused_in_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    given = pytester.runpytest_subprocess("--run-id", "nightly-7", "--results-dir", "out")
    given.stdout.fnmatch_lines(["resilience-tests: run nightly-7, results in out"])
    fresh = pytester.runpytest_subprocess()
    assert len([line for line in fresh.outlines if line.startswith("resilience-tests: run ")]) == 1
    refused = pytester.runpytest_subprocess("--run-id", "a/b")
    refused.stderr.fnmatch_lines(["ERROR: run id 'a/b' is not usable*"])
    assert refused.ret == pytest.ExitCode.USAGE_ERROR


@pytest.mark.parametrize("pattern", ["*", "**", "*?*"])
def test_an_allow_context_pattern_matching_everything_needs_its_own_flag(pytester: pytest.Pytester,
                                                                          pattern: str) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    refused = pytester.runpytest_subprocess("--allow-context", pattern)
    refused.stderr.fnmatch_lines([f"ERROR: --allow-context '{pattern}' matches every context, production clusters "
                                  "included; name the contexts*--allow-any-context*"])
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    accepted = pytester.runpytest_subprocess("--allow-context", pattern, "--allow-any-context")
    accepted.stdout.fnmatch_lines([f"resilience-tests: experiments also allowed on contexts {pattern} (every context)"])
    assert accepted.ret == 0
    narrow = pytester.runpytest_subprocess("--allow-context", "staging-*")
    narrow.stdout.fnmatch_lines(["resilience-tests: experiments also allowed on contexts staging-*"])


def test_missing_kubeconfig_is_one_line_and_touches_nothing(pytester: pytest.Pytester, experiments: Path) -> None:
    result = pytester.runpytest_subprocess("--experiments", str(experiments), "--kubeconfig", "/nonexistent/kubeconfig")
    result.stdout.fnmatch_lines(["resilience-tests: kubeconfig /nonexistent/kubeconfig does not exist*",
                                 "*kubeconfig /nonexistent/kubeconfig does not exist; pass --kubeconfig PATH*"])
    result.assert_outcomes(failed=1)
    result.stdout.no_fnmatch_line("*Traceback*")


def test_experiments_outside_the_working_directory_show_their_own_path(
        pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "kill.yaml").write_text(GOOD)
    path = str(elsewhere / "kill.yaml")
    result = pytester.runpytest_subprocess(path, "--experiments", path, "--rootdir", str(elsewhere),
                                           "--kubeconfig", "/nonexistent/kubeconfig")
    result.stdout.fnmatch_lines([f"rootdir: {elsewhere}", "kill.yaml F*"])
    result.stdout.no_fnmatch_line("*../*kill.yaml*")


def test_broken_kubeconfig(pytester: pytest.Pytester, experiments: Path) -> None:
    broken = pytester.makefile(".yaml", kc="apiVersion: v1\nkind: Config\nclusters: [\n")
    result = pytester.runpytest_subprocess("--experiments", str(experiments), "--kubeconfig", str(broken))
    result.stdout.fnmatch_lines([f"*kubeconfig {broken} cannot be used*"])
    result.assert_outcomes(failed=1)


def _kubeconfig(pytester: pytest.Pytester, context: str, server: str) -> Path:
    return pytester.makefile(".yaml", **{context: f"""
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{server}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: {context}, context: {{cluster: c, user: u}}}}]
current-context: {context}
"""})


def test_unreachable_api_server_and_the_local_cluster_is_never_started(pytester: pytest.Pytester,
                                                                        experiments: Path) -> None:
    from resilience_tests.testbed.cluster import LocalCluster

    kubeconfig = _kubeconfig(pytester, "kind-gone", "https://127.0.0.1:1")
    result = pytester.runpytest_subprocess("--experiments", str(experiments), "--kubeconfig", str(kubeconfig),
                                "--local-cluster-name", "rt-never")
    result.stdout.fnmatch_lines(["*API server https://127.0.0.1:1 is unreachable*check that the cluster runs*"])
    result.assert_outcomes(failed=1)
    assert LocalCluster("rt-never").state() == "absent"


def test_context_not_allowed_is_refused_before_connecting(pytester: pytest.Pytester, experiments: Path) -> None:
    kubeconfig = _kubeconfig(pytester, "prod-eu", "https://127.0.0.1:1")
    result = pytester.runpytest_subprocess("--experiments", str(experiments), "--kubeconfig", str(kubeconfig))
    result.stdout.fnmatch_lines(["*context 'prod-eu' is not allowed for experiments; "
                                 "pass --allow-context prod-eu if you mean to run against it*"])
    result.assert_outcomes(failed=1)
    allowed = pytester.runpytest_subprocess("--experiments", str(experiments), "--kubeconfig", str(kubeconfig),
                                 "--allow-context", "prod-*", "--yes")
    allowed.stdout.fnmatch_lines(["*API server https://127.0.0.1:1 is unreachable*"])


def test_kubeconfig_from_the_environment_is_used_as_kubectl_uses_it(
        pytester: pytest.Pytester, experiments: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prod = _kubeconfig(pytester, "prod-eu", "https://127.0.0.1:1")
    monkeypatch.setenv("KUBECONFIG", str(prod))
    result = pytester.runpytest_subprocess("--experiments", str(experiments))
    result.stdout.fnmatch_lines(["*context 'prod-eu' is not allowed for experiments*"])
    kind = _kubeconfig(pytester, "kind-gone", "https://127.0.0.1:2")
    monkeypatch.setenv("KUBECONFIG", f"/nonexistent/one:{kind}")  # missing files in a list are skipped
    listed = pytester.runpytest_subprocess("--experiments", str(experiments), "--local-cluster-name", "rt-never")
    listed.stdout.fnmatch_lines(["resilience-tests: API server https://127.0.0.1:2 is unreachable*"])
    explicit = pytester.runpytest_subprocess("--experiments", str(experiments), "--kubeconfig", str(prod),
                                             "--allow-context", "prod-*", "--yes")
    explicit.stdout.fnmatch_lines(["resilience-tests: API server https://127.0.0.1:1 is unreachable*"])
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    flag_wins = pytester.runpytest_subprocess("--experiments", str(experiments), "--kubeconfig", str(prod))
    flag_wins.stdout.fnmatch_lines(["*context 'prod-eu' is not allowed*"])  # --kubeconfig wins over KUBECONFIG


def test_kubeconfig_in_the_environment_naming_no_file_is_one_line(
        pytester: pytest.Pytester, experiments: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    result = pytester.runpytest_subprocess("--experiments", str(experiments))
    result.stderr.fnmatch_lines(["ERROR: KUBECONFIG names /nonexistent/kubeconfig, which does not exist; fix "
                                 "KUBECONFIG, unset it to use the local cluster, or pass --kubeconfig FILE"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.no_fnmatch_line("*Traceback*")


def _pytest_in_own_session(pytester: pytest.Pytester, *args: str, answer: str | None = None) -> str:
    """Run pytest in a new session: without a terminal, or (``answer``) with a pseudo-terminal typing it."""
    import fcntl
    import os
    import subprocess
    import sys
    import termios

    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    if answer is None:
        proc = subprocess.run(argv, cwd=pytester.path, capture_output=True, text=True, timeout=120,
                              start_new_session=True, check=False)
        return proc.stdout + proc.stderr
    controller, terminal = os.openpty()

    def take_terminal() -> None:
        os.setsid()
        fcntl.ioctl(terminal, termios.TIOCSCTTY, 0)

    with subprocess.Popen(argv, cwd=pytester.path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, preexec_fn=take_terminal,
                          pass_fds=(terminal,)) as proc:
        os.close(terminal)
        asked = b""
        while b"Type the context name" not in asked:
            try:
                asked += os.read(controller, 1024)
            except OSError:  # the terminal closed: it never asked
                return asked.decode() + proc.communicate(timeout=120)[0]
        os.write(controller, answer.encode() + b"\n")
        out = proc.communicate(timeout=120)[0]
    os.close(controller)
    return asked.decode() + out


def test_faults_into_a_context_that_is_not_local_need_a_person_to_type_its_name(
        pytester: pytest.Pytester, experiments: Path) -> None:
    prod = _kubeconfig(pytester, "prod-eu", "https://127.0.0.1:1")
    args = ("--experiments", str(experiments), "--kubeconfig", str(prod), "--allow-context", "prod-*")
    no_terminal = _pytest_in_own_session(pytester, *args)
    assert ("context 'prod-eu' is not a local or kind cluster, and there is no terminal to confirm faults on it; "
            "pass --yes to inject faults without asking") in no_terminal
    assert "FAILED experiments/kill.yaml::kill-one - context 'prod-eu' is not a local" in no_terminal
    assert "Traceback" not in no_terminal
    wrong = _pytest_in_own_session(pytester, *args, answer="prod")
    assert "faults are about to go into context 'prod-eu'" in wrong
    assert "not confirmed (typed 'prod'): nothing was injected into 'prod-eu'" in wrong
    typed = _pytest_in_own_session(pytester, *args, answer="prod-eu")
    assert "FAILED experiments/kill.yaml::kill-one - API server https://127.0.0.1:1" in typed  # it went on
    dry = _pytest_in_own_session(pytester, *args, "--dry-run")
    assert "no terminal to confirm" not in dry  # a dry run changes nothing, so it asks nothing


def test_cli_run_passes_options_through_to_pytest(pytester: pytest.Pytester, experiments: Path) -> None:
    result = pytester.run(RESILIENCE, "run", str(experiments), "--seed", "7", "--pytest-args", "--co -q")
    result.stdout.fnmatch_lines(["*kill.yaml::kill-one*"])
    assert result.ret == 0
    missing = pytester.run(RESILIENCE, "run", "no/such/dir")
    assert missing.ret == 2
    missing.stderr.fnmatch_lines(["error: experiment path no/such/dir does not exist; give a YAML file or a directory"])


JOURNAL_TESTS = """
    import pytest
    from resilience_tests.experiment.journal import ClusterFacts, Journal, Phase
    from resilience_tests.experiment.model import parse_experiment
    from resilience_tests.faults.base import load_registry
    from resilience_tests.sla.checks import Verdict

    EXP = parse_experiment({"name": "kill", "target": {"namespace": "demo"},
                            "faults": [{"type": "pod-kill", "at": "1s"}]}, load_registry())
    OK = Verdict("latency", True, "p99 12 ms", "<= 500 ms", "whole", key="latency")
    BAD = Verdict("zone-spread", False, "1 zone", ">= 2 zones", "snapshot", ("detail",), key="zone-spread")

    def report(request, **kw):
        journal = Journal(experiment=EXP, run_id="kill-" + request.node.name, plan=("[0] at 1 s: pod-kill",),
                          facts=ClusterFacts("kwok-x", "https://u:hunter2@127.0.0.1:1", "v1.36.0", 3, 3, 1),
                          started=100.0, ended=110.0, zero=101.0, phases=(Phase("preflight", 99.0, 100.0),), **kw)
        request.config.hook.pytest_resilience_journal(config=request.config, item=request.node, journal=journal)

    def test_good(request):
        report(request, steady=(OK,), verdicts=(OK,))

    def test_bad(request):
        report(request, verdicts=(OK, BAD))
        assert False

    def test_plain():
        pass
"""


def test_sla_verdicts_are_summarised_from_journals_one_line_each(pytester: pytest.Pytester) -> None:
    """The terminal section reads typed verdicts from each journal (the plugin's own hook), never text."""
    pytester.makepyfile(JOURNAL_TESTS)
    result = pytester.runpytest_subprocess()
    result.stdout.fnmatch_lines([
        "*= SLA verdicts =*",
        "test_sla_verdicts_are_summarised_from_journals_one_line_each.py::test_bad: sla-violated",
        "  latency passed: measured p99 12 ms, required <= 500 ms, window whole",
        "  zone-spread FAILED: measured 1 zone, required >= 2 zones, window snapshot",
        "test_sla_verdicts_are_summarised_from_journals_one_line_each.py::test_good: passed",
        "  steady state: latency passed: measured p99 12 ms, required <= 500 ms, window whole",
    ])
    section = result.stdout.str().split("SLA verdicts")[1]
    assert "test_plain" not in section and "  - detail" not in section
    assert list(pytester.path.rglob("*.json")) == []  # no --results-dir, no --alluredir: no file written


def test_results_dir_and_alluredir_get_journal_summary_and_allure_results(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(JOURNAL_TESTS)
    result = pytester.runpytest_subprocess("--results-dir", "out", "--alluredir", "out/allure-results",
                                           "--junitxml", "out/junit.xml")
    result.assert_outcomes(passed=2, failed=1)
    out = pytester.path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["version"] == 2 and summary["outcomes"] == {"passed": 1, "sla-violated": 1}
    assert sorted(p.parent.name for p in out.glob("experiments/*/journal.json")) == ["kill-test_bad", "kill-test_good"]
    assert len(list(out.glob("experiments/*/timeline.png"))) == 2
    results = [json.loads(p.read_text()) for p in (out / "allure-results").glob("*-result.json")]
    bad = next(r for r in results if r["name"] == "test_bad")
    assert {"name": "outcome", "value": "sla-violated"} in bad["labels"]
    assert bad["steps"][0]["name"] == "preflight (at -2.0 s, 1.0 s)"
    assert bad["steps"][0]["start"] == 99000 and bad["steps"][0]["stop"] == 100000  # the phase's real times
    assert {"timeline", "journal", "verdicts"} <= {a["name"] for a in bad["attachments"]}
    props = (out / "allure-results" / "environment.properties").read_text()
    assert "context=kwok-x" in props and "kubernetes.version=v1.36.0" in props and "zones=3" in props
    junit = (out / "junit.xml").read_text()
    assert 'name="verdict zone-spread"' in junit and 'name="outcome" value="sla-violated"' in junit
    for path in out.rglob("*"):  # the server URL's password is in no file
        if path.is_file():
            assert b"hunter2" not in path.read_bytes(), path
    # what may hold cluster data is the owner's only: folders 0700, files 0600
    assert {oct(p.stat().st_mode & 0o777) for p in (out, out / "experiments", out / "allure-results")} == {"0o700"}
    private = [out / "summary.json", *out.glob("experiments/*/*"), *(out / "allure-results").iterdir()]
    assert {oct(p.stat().st_mode & 0o777) for p in private if p.is_file()} == {"0o600"}


def test_a_results_folder_that_cannot_be_written_leaves_the_verdicts_standing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(JOURNAL_TESTS)
    (pytester.path / "taken").write_text("a file where the results folder should go")
    result = pytester.runpytest_subprocess("--results-dir", "taken")
    result.assert_outcomes(passed=2, failed=1)  # as without a results folder
    result.stdout.fnmatch_lines(["*PytestWarning: the report of kill is incomplete: *Error*", "*= SLA verdicts =*",
                                 "resilience-tests: the run's summary could not be written: *"])
    assert "hunter2" not in result.stdout.str()


REPORT_TOOL_CACHE = str(report_cache_root())  # read before pytester points HOME elsewhere


def test_report_builds_one_html_file_and_carries_history_between_runs(pytester: pytest.Pytester,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`resilience report` on results of two runs: one self-contained HTML file each, and the second knows the
    first (reports/history.jsonl), so a nightly job shows trends."""
    monkeypatch.setenv("RESILIENCE_CACHE", REPORT_TOOL_CACHE)
    pytester.makepyfile(JOURNAL_TESTS)
    for run in ("reports/run-1", "reports/run-2"):
        pytester.runpytest_subprocess("--results-dir", run, "--alluredir", f"{run}/allure-results")
        result = pytester.run(RESILIENCE, "report", run)
        assert result.ret == 0, result.stderr.str()
        index = pytester.path / run / "html" / "index.html"
        result.stdout.fnmatch_lines([f"report: {index} (3 experiment(s), * MB, * s)"])
        assert index.stat().st_size > 500_000 and not list(index.parent.glob("*.js"))  # scripts inline
    history = (pytester.path / "reports" / "history.jsonl").read_text().splitlines()
    assert len(history) == 2
    newest = pytester.run(RESILIENCE, "report")  # no folder: the newest run
    newest.stdout.fnmatch_lines(["report: */reports/run-2/html/index.html *"])


def test_a_dry_run_never_starts_the_local_cluster(pytester: pytest.Pytester, experiments: Path) -> None:
    from resilience_tests.testbed.cluster import LocalCluster

    name = "dry-run-never-started"
    result = pytester.runpytest_subprocess("--experiments", str(experiments), "--dry-run",
                                           "--local-cluster-name", name)
    result.stdout.fnmatch_lines([f"*--dry-run plans against a running cluster, and the local cluster '{name}' is "
                                 "not running (a dry run never starts one); start it with `resilience cluster up`*"])
    result.stdout.no_fnmatch_line("*Traceback*")
    result.assert_outcomes(failed=1)
    assert LocalCluster(name).state() == "absent"


AUDITED = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  annotations: {resilience-tests.io/skip-rt808: "images are pinned by the deploy pipeline"}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "shop/web:latest"}]
"""


def test_audit_findings_are_tests_one_per_object_and_rule(pytester: pytest.Pytester) -> None:
    from resilience_tests.audit.rules import RULES, subjects
    from resilience_tests.audit.sources import Inventory, parse

    (pytester.path / "web.yaml").write_text(AUDITED)
    objects, _ = parse(AUDITED, "web.yaml")
    expected = sum(len(s.rules) for s in subjects(Inventory(objects)))
    result = pytester.runpytest_subprocess("--audit", "web.yaml", "--junitxml", "junit.xml", "-rfs")
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] + outcomes["failed"] + outcomes["skipped"] == expected
    result.stdout.fnmatch_lines([
        "FAILED *Deployment shop/web::RT201 replicas - *",
        "*RT808 skipped: images are pinned by the deploy pipeline*",
    ])
    junit = (pytester.path / "junit.xml").read_text()
    assert 'classname=".audit.Deployment shop/web" name="RT201 replicas"' in junit
    assert "web.yaml:6: " in junit and "(proved by experiment kill-two-pods)" in junit
    selected = pytester.runpytest_subprocess("--audit", "web.yaml", "-k", "RT101")
    selected.assert_outcomes(failed=1)
    assert len(RULES) > 30
