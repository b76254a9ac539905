"""Reports of real runs: `resilience run` against the local cluster writes results, the HTML report built by the
pinned Allure tool shows the experiments, their steps, a failed verdict's evidence and the plot in a real
browser, no file nor terminal line holds a planted secret, and an interrupted run still reports."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from resilience_tests.cluster.kube import Kube, Workload
from resilience_tests.reporting import html
from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.waiting import wait_until
from tests.cluster.helpers import ctrl_c_reaches_it

ROOT = Path(__file__).parents[2]
EVIDENCE = ROOT / "reports" / "test-evidence"  # screenshots kept for a person to look at (not in git)
PASSWORD = "pl4nted-Pa55word-Zq81"  # in the load URL
SECRET = "pl4nted-S3cret-Vx47Kw"  # in a Secret, and in a pod's environment, of the target namespace

HOLDER = f"""
apiVersion: v1
kind: Secret
metadata: {{name: planted, namespace: demo}}
stringData: {{password: {SECRET}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: holder, namespace: demo}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: holder}}}}
  template:
    metadata: {{labels: {{app: holder}}}}
    spec:
      nodeSelector: {{resilience-tests.io/node-kind: simulated}}
      containers:
        - name: app
          image: registry.local/holder:1
          env:
            - {{name: DB_PASSWORD, value: {SECRET}}}
            - name: FROM_SECRET
              valueFrom: {{secretKeyRef: {{name: planted, key: password}}}}
"""

KILL_HOLDER = f"""
name: kill-holder
description: A holder pod is killed while the app is under load given by a URL with credentials.
severity: minor
tags: [report-test]
target: {{namespace: demo, workload: deployment/holder}}
load:
  url: http://alice:{PASSWORD}@127.0.0.1:30080
  shape: {{type: constant, users: 4, duration: 8s}}
faults:
  - {{type: pod-kill, at: 1s, count: 1}}
settle: 3s
slas:
  - {{type: error-rate, max: 50%}}
  - {{type: recovery-time, window: "fault:pod-kill", max: 60s}}
"""

VIOLATED = """
name: throughput-violated
description: web scaled down briefly; the throughput floor is set where no cluster can reach it.
tags: [report-test]
target: {namespace: demo, workload: deployment/web}
load:
  shape: {type: constant, users: 4, duration: 8s}
faults:
  - {type: scale, at: 1s, replicas: 3, duration: 2s}
settle: 2s
slas:
  - {type: error-rate, max: 5%}
  - {type: throughput, min: 100000}
"""

SLOW = """
name: interrupted-scale
target: {namespace: demo, workload: deployment/web}
faults:
  - {type: scale, at: 1s, replicas: 2, duration: 60s}
settle: 1s
slas:
  - {type: recovery-time, window: "fault:scale", from: end, max: 30s}
"""


@dataclass
class Run:
    code: int
    output: str
    results: Path


def _cli(args: list[str], local_cluster: LocalCluster, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KUBECONFIG", None)
    return subprocess.Popen([sys.executable, "-m", "resilience_tests.cli", "run", *args, "--kubeconfig",
                             str(local_cluster.kubeconfig), "--context", local_cluster.context, "--no-progress",
                             "--reports", str(cwd / "reports")], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=ctrl_c_reaches_it)


def _results(cwd: Path) -> Path:
    (folder,) = [p for p in (cwd / "reports").iterdir() if p.is_dir()]
    return folder


@pytest.fixture(scope="module")
def reported(local_cluster: LocalCluster, cluster: Kube, demo: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    if not html.tool_path().exists():
        pytest.fail(f"the Allure tool is not installed: {html.INSTALL_HINT}", pytrace=False)
    local_cluster.kubectl("apply", "-f", "-", stdin=HOLDER)
    wait_until("holder available", lambda: (cluster.raw.apps.read_namespaced_deployment_status(
        "holder", demo).status.available_replicas or 0) == 2, timeout=60)
    cwd = tmp_path_factory.mktemp("report-run")
    (cwd / "experiments").mkdir()
    (cwd / "experiments" / "kill-holder.yaml").write_text(KILL_HOLDER)
    (cwd / "experiments" / "throughput-violated.yaml").write_text(VIOLATED)
    proc = _cli(["experiments"], local_cluster, cwd)
    output, _ = proc.communicate(timeout=300)
    yield Run(proc.returncode, output, _results(cwd))
    local_cluster.kubectl("-n", demo, "delete", "deployment/holder", "secret/planted", "--wait=true")


def test_a_run_leaves_results_a_summary_and_an_html_report(reported: Run) -> None:
    assert reported.code == 1, reported.output  # one SLA violated: pytest's "tests failed"
    index = reported.results / "html" / "index.html"
    assert f"report: {index}" in reported.output
    summary = json.loads((reported.results / "summary.json").read_text())
    assert summary["version"] == 2 and summary["run_id"] == reported.results.name  # the folder is named by the run
    assert summary["outcomes"] == {"passed": 1, "sla-violated": 1}
    violated = next(e for e in summary["experiments"] if e["name"] == "throughput-violated")
    floor = next(v for v in violated["slas"] if v["check"] == "throughput")
    assert floor["passed"] is False and floor["threshold"] == ">= 100000/s" and floor["measured"].endswith("requests/s")
    assert violated["faults"][0]["reverted"] is True
    for experiment in summary["experiments"]:
        assert experiment["run_id"] == reported.results.name and experiment["experiment_id"].startswith(
            reported.results.name + "-")
        folder = reported.results / "experiments" / experiment["experiment_id"]
        assert (folder / "journal.json").is_file() and (folder / "timeline.png").stat().st_size > 20_000
        assert (folder / "load" / "stats_stats.csv").is_file()  # Locust's own statistics kept
    allure = [json.loads(p.read_text()) for p in (reported.results / "allure-results").glob("*-result.json")]
    failed = next(r for r in allure if r["name"] == "throughput-violated")
    assert failed["status"] == "failed" and failed["statusDetails"]["message"].count("SLA violated:") == 1
    assert {"name": "outcome", "value": "sla-violated"} in failed["labels"]
    steps = [s["name"].split(" (at")[0] for s in failed["steps"]]
    assert steps == ["preflight", "load start", "inject 0:scale", "revert 0:scale", "settle",
                     "load to the end of its shape", "SLA checks"]
    assert all(s["start"] <= s["stop"] for s in failed["steps"])


def _secrets_in(data: bytes) -> list[str]:
    """Which planted values ``data`` holds, as written or base64-encoded at any alignment (the single-file
    report embeds its data encoded)."""
    found = []
    for value in (PASSWORD, SECRET):
        forms = [value.encode()]
        for shift in range(3):
            encoded = base64.b64encode(b"x" * shift + value.encode())
            forms.append(encoded[4 if shift else 0:-4])  # the part that does not depend on what surrounds it
        if any(form in data for form in forms):
            found.append(value)
    return found


def test_no_report_file_nor_terminal_line_holds_a_secret(reported: Run) -> None:
    assert _secrets_in(reported.output.encode()) == [], reported.output
    files = [p for p in reported.results.rglob("*") if p.is_file()]
    assert len(files) > 20
    leaks = {str(p): found for p in files if (found := _secrets_in(p.read_bytes()))}
    assert leaks == {}
    assert "alice:***@127.0.0.1:30080" in reported.output  # the plan shows where the load went, masked


def _browser() -> object:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("Debian's chromium and chromium-driver are needed: run scripts/setup", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1800"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_the_html_report_shows_experiments_steps_a_failed_verdicts_evidence_and_the_plot(reported: Run) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    index = reported.results / "html" / "index.html"
    ids = {v["name"]: k for k, v in json.loads((index.parent / "test-results.json").read_text())["byId"].items()}
    browser = _browser()
    try:
        browser.get(index.as_uri())  # type: ignore[attr-defined]
        wait = WebDriverWait(browser, 30)  # type: ignore[arg-type]

        def text(fragment: str) -> list[object]:
            return browser.find_elements(By.XPATH, f"//*[contains(text(), '{fragment}')]")  # type: ignore

        # Grouped by fault type; failed groups open, passed ones closed.
        wait.until(lambda _: text("pod-kill") and text("throughput-violated"))
        EVIDENCE.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(EVIDENCE / "report-overview.png"))  # type: ignore[attr-defined]
        text("Categories")[0].click()  # type: ignore[attr-defined]
        wait.until(lambda _: text("SLA violated"))
        browser.get(f"{index.as_uri()}#{ids['throughput-violated']}")  # type: ignore[attr-defined]
        wait.until(lambda _: text("SLA checks"))
        assert text("inject 0:scale") and text("revert 0:scale")
        text("SLA checks")[0].click()  # type: ignore[attr-defined]
        wait.until(lambda _: text("throughput FAILED"))
        verdict = text("throughput FAILED")[0]
        assert "required >= 100000/s" in verdict.text  # type: ignore[attr-defined]
        text("throughput FAILED")[0].click()  # type: ignore[attr-defined]
        wait.until(lambda _: browser.find_elements(By.XPATH, "//*[text()='evidence']"))  # type: ignore
        browser.find_element(By.XPATH, "//*[text()='timeline']").click()  # type: ignore[attr-defined]
        wait.until(lambda _: [i for i in browser.find_elements(By.TAG_NAME, "img")  # type: ignore
                              if i.size["width"] > 400])
        browser.save_screenshot(str(EVIDENCE / "report-failed-experiment.png"))  # type: ignore[attr-defined]
    finally:
        browser.quit()  # type: ignore[attr-defined]
    assert (EVIDENCE / "report-failed-experiment.png").stat().st_size > 50_000


def test_an_interrupted_run_still_reports_what_was_reverted(local_cluster: LocalCluster, cluster: Kube, demo: str,
                                                            tmp_path: Path) -> None:
    web = Workload("deployment", demo, "web")
    replicas = cluster.replicas(web)
    (tmp_path / "slow.yaml").write_text(SLOW)
    proc = _cli(["slow.yaml"], local_cluster, tmp_path)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "inject 0:scale" in line or not line:
            break
    wait_until("web scaled down", lambda: cluster.replicas(web) == 2, timeout=30)
    os.kill(proc.pid, signal.SIGINT)  # Ctrl-C, half-way through the fault
    output, _ = proc.communicate(timeout=180)
    output = "".join(lines) + output
    assert proc.returncode == 2, output  # pytest's "interrupted"
    assert cluster.replicas(web) == replicas  # reverted before it stopped
    results = _results(tmp_path)
    summary = json.loads((results / "summary.json").read_text())
    (experiment,) = summary["experiments"]
    assert experiment["outcome"] == "interrupted" and summary["interrupted"] is True
    assert experiment["faults"][0]["reverted"] is True
    (result,) = [json.loads(p.read_text()) for p in (results / "allure-results").glob("*-result.json")]
    assert result["status"] == "broken"
    assert result["statusDetails"]["message"].count("interrupted: interrupted-scale") == 1
    assert "reverted: 0:scale" in result["statusDetails"]["message"]
    assert f"report: {results / 'html' / 'index.html'}" in output  # the report was still built
