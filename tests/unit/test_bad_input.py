"""Bad input ends as one line saying what to do, never a traceback: a table of hostile inputs to the CLI, the
audit and experiment files, each beside a good input the same check accepts."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from resilience_tests import cli, strictyaml
from resilience_tests.audit import sources
from resilience_tests.backup.hooks import HttpHook, path_problem
from resilience_tests.cli import main
from resilience_tests.commands import backup as backup_commands
from resilience_tests.commands import run as run_commands
from resilience_tests.experiment.model import ExperimentError, load_experiment
from resilience_tests.faults.base import load_registry

REGISTRY = load_registry()
ROOT = Path(__file__).parents[2]

# 9 lists of 9, each made of the one before: 378 bytes that expand to 9**9 strings.
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
MANIFEST = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec: {replicas: %s}\n"
EXPERIMENT = """\
name: hooks
target: {namespace: demo, workload: deployment/web}
guardrails: {max_pods: %s}
faults:
  - {type: backup, at: 0s, export: {port: 8080, path: "%s"}}
"""


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert "Traceback" not in text and len(lines) == 1, text[-2000:]
    return lines[0]


# -- the command line: usage errors and what escapes from below ----------------------------------------------

USAGE = [
    (["backup", ""], "'' is not a namespace name"),
    (["backup", "../kube-system"], "not a namespace name"),
    (["backup", "Demo"], "not a namespace name"),
    (["run", "--pytest-args", "'x"], "--pytest-args \"'x\": no closing quotation; quote it as a shell would"),
    (["cluster", "fail", "--zone", ""], "--zone needs a name, not an empty string"),
    (["cluster", "restore", "--node", " "], "--node needs a name, not an empty string"),
]


@pytest.mark.parametrize(("argv", "expected"), USAGE, ids=[" ".join(a) or "empty" for a, _ in USAGE])
def test_bad_arguments_are_one_usage_line(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert line.startswith("error: ") and expected in line and "; " in line  # what, then what to do


def test_the_same_arguments_written_well_are_accepted() -> None:
    parser = cli.make_parser()
    assert parser.parse_args(["backup", "demo"]).namespace == "demo"
    assert parser.parse_args(["cluster", "fail", "--zone", "zone-a"]).zone == "zone-a"
    args = parser.parse_args(cli._joined(["run", "experiments", "--pytest-args", "-k 'drain and not zone'"]))
    assert run_commands.pytest_args(args)[-2:] == ["-k", "drain and not zone"]


def _api_error(status: int) -> BaseException:
    from kubernetes.client.exceptions import ApiException

    error = ApiException(status=status, reason="Forbidden" if status == 403 else "Internal Server Error")
    error.body = '{"kind": "Status", "message": "configmaps is forbidden: User \\"x\\" cannot list"}'
    return error


def _urllib3_timeout() -> BaseException:
    from urllib3.exceptions import ReadTimeoutError

    return ReadTimeoutError(None, "/api/v1/namespaces/demo/configmaps", "Read timed out. (read timeout=60)")


def _urllib3_no_connection() -> BaseException:
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    return MaxRetryError(None, "/api", NewConnectionError(None, "Failed to establish a new connection"))  # type: ignore[arg-type]


def _api_error_without_status() -> BaseException:
    from kubernetes.client.exceptions import ApiException

    return ApiException(reason="Handshake status 500 Internal Server Error")


def _yaml_error() -> BaseException:
    try:
        yaml.safe_load("a: [")
    except yaml.YAMLError as exc:
        return exc
    raise AssertionError


def _huge_int() -> BaseException:
    try:
        int("9" * 5000)
    except ValueError as exc:
        return exc
    raise AssertionError


def _recursion() -> BaseException:
    return RecursionError("maximum recursion depth exceeded while calling a Python object")


ESCAPING: list[tuple[str, Callable[[], BaseException], str]] = [
    ("403 from the API", lambda: _api_error(403), "the cluster answered HTTP 403 (configmaps is forbidden"),
    ("500 from the API", lambda: _api_error(500), "the cluster answered HTTP 500"),
    ("read timeout", _urllib3_timeout, "the API server did not answer (ReadTimeoutError"),
    ("TimeoutError", lambda: TimeoutError("timed out"), "the API server did not answer (TimeoutError: timed out)"),
    ("connection refused", lambda: ConnectionRefusedError(111, "Connection refused"),
     "the API server did not answer (ConnectionRefusedError"),
    ("no connection", _urllib3_no_connection, "the API server did not answer (MaxRetryError"),
    ("API error without a status", _api_error_without_status, "the API server did not answer (ApiException"),
    ("yaml error", _yaml_error, "malformed YAML"),
    ("not UTF-8", lambda: b"\xff".decode(), "input is not UTF-8 text"),
    ("nested too deep", _recursion, "input nested too deeply to be read; flatten it"),
    ("huge integer", _huge_int, "a number with too many digits"),
    ("file cannot be written", lambda: PermissionError(13, "Permission denied", "/root/x.tar.gz"),
     "/root/x.tar.gz: Permission denied; check the path and its permissions"),
    ("output closed", lambda: BrokenPipeError(32, "Broken pipe"), "its output was closed before the end"),
    ("out of memory", MemoryError, "input too large to hold in memory"),
]


@pytest.mark.parametrize(("raised", "expected"), [(r, e) for _, r, e in ESCAPING], ids=[i for i, _, _ in ESCAPING])
def test_what_escapes_from_below_is_one_line_naming_the_command(
        raised: Callable[[], BaseException], expected: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def backup(_: object) -> int:
        raise raised()

    monkeypatch.setattr(backup_commands, "backup_command", backup)
    assert main(["backup", "demo"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("error: resilience backup: ") and expected in line, line


def test_an_interrupt_says_what_it_left(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from resilience_tests.interrupts import RevertsAborted

    def backup(_: object) -> int:
        raise RevertsAborted("SIGINT: reverts aborted; what is still changed is listed by `resilience cleanup`")

    monkeypatch.setattr(backup_commands, "backup_command", backup)
    assert main(["backup", "demo"]) == 130
    assert _one_line(capsys.readouterr().err) == ("error: SIGINT: reverts aborted; what is still changed is listed "
                                                  "by `resilience cleanup`")


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def backup(_: object) -> int:
        raise KeyError("spec")

    monkeypatch.setattr(backup_commands, "backup_command", backup)
    with pytest.raises(KeyError):
        main(["backup", "demo"])


# -- the audit: one problem line per input it cannot read, the others still audited -----------------------

AUDIT_FILES: list[tuple[str, bytes, str]] = [
    ("alias bomb", ALIAS_BOMB.encode(), "aliases (*name) are not allowed"),
    ("binary", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)), "binary data (a NUL byte at offset 7)"),
    ("not UTF-8", "kind: Deployment\nmetadata: {name: caf\xe9}\n".encode("latin-1"), "not UTF-8 text (byte 0xe9"),
    ("deep nesting", b"kind: Deployment\nspec: " + b"[" * 10_000 + b"]" * 10_000, "nested more than 100 levels"),
    ("huge integer", (MANIFEST % ("9" * 5000)).encode(), "a number of 5,000 characters"),
    ("duplicate key", (MANIFEST % 2 + "kind: Service\n").encode(), "duplicate key 'kind'"),
    ("python tag", b"kind: !!python/object/apply:os.system [id]\n", "the tag 'tag:yaml.org,2002:python/object"),
    ("escape in a tag", b"kind: !%1b%5d0 Deployment\n", "the tag '!\\x1b]0' is not allowed"),
    ("control character", b"kind: Deployment\nmetadata: {name: \x1b]0;x\x07}\n", "control characters are not"),
]


@pytest.mark.parametrize(("data", "expected"), [(d, e) for _, d, e in AUDIT_FILES], ids=[i for i, _, _ in AUDIT_FILES])
def test_an_audit_input_it_cannot_read_is_one_problem_line_and_the_rest_is_audited(
        data: bytes, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_bytes(data)
    (tmp_path / "good.yaml").write_text(MANIFEST % 3)
    assert main(["audit", str(tmp_path / "bad.yaml"), str(tmp_path / "good.yaml")]) == 1
    captured = capsys.readouterr()
    assert captured.err == "" and "Traceback" not in captured.out
    problems = [line for line in captured.out.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and expected in problems[0] and "bad.yaml" in problems[0], captured.out
    assert "audit: 1 object(s)" in captured.out  # good.yaml was read


def _stdin(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))


@pytest.mark.parametrize(("data", "expected"), [
    (ALIAS_BOMB.encode(), "<stdin>:2: invalid YAML: aliases (*name) are not allowed"),
    (b"#" * (sources.MAX_BYTES + 1), "<stdin>: more than 20,971,520 bytes; manifests are at most 20,971,520 bytes"),
    (b"\xff\xfe" + "kind: Pod".encode("utf-16-le"), "<stdin>: binary data (a NUL byte at offset 3)"),
    ("kind: caf\xe9\n".encode("latin-1"), "<stdin>: not UTF-8 text (byte 0xe9 at offset 9)"),
], ids=["alias bomb", "over the cap", "UTF-16", "Latin-1"])
def test_standard_input_is_read_as_strictly_and_no_further_than_the_cap(
        data: bytes, expected: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _stdin(data, monkeypatch)
    assert main(["audit", "-"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "" and "Traceback" not in captured.out
    problems = [line for line in captured.out.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and expected in problems[0], captured.out


def test_a_file_over_the_cap_is_refused_without_reading_it_all(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as out:
        out.truncate(50 * 2**20)  # sparse: costs nothing on disk
    assert main(["audit", str(big)]) == 1
    assert "more than 20,971,520 bytes; manifests are at most 20,971,520 bytes" in capsys.readouterr().out


def test_multi_document_streams_still_audit_and_keep_their_lines(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _stdin(("---\n# Source: chart/templates/web.yaml\n" + MANIFEST % 3 + "---\n" + MANIFEST.replace(
        "web", "api") % 3 + "---\n").encode(), monkeypatch)
    assert main(["audit", "-", "--format", "json"]) in (0, 1)
    out = capsys.readouterr().out
    assert '"objects": 2' in out or '"objects":2' in out.replace(" ", ""), out[:500]


# -- experiment files: one line from the loader, one line under pytest's header ----------------------------

EXPERIMENT_FILES: list[tuple[str, bytes, str]] = [
    ("binary", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)), "binary data (a NUL byte at offset 7), not YAML text"),
    ("not UTF-8", "name: caf\xe9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 9); save it as UTF-8"),
    ("deep nesting", b"name: x\nfaults: " + b"[" * 10_000 + b"]" * 10_000, "nested more than 100 levels deep"),
    ("huge integer", (EXPERIMENT % ("9" * 5000, "/export")).encode(), "a number of 5,000 characters"),
    ("alias bomb", ALIAS_BOMB.encode(), "aliases (*name) are not allowed"),
    ("over 1 MB", b"name: x\n" + b"# pad\n" * 200_000, "more than 1,000,000 bytes; experiments are at most"),
    ("control character", b"name: a\x1b]0;x\x07\n", "control characters are not allowed"),
    ("merge key", b"name: x\n<<: {target: {namespace: demo}}\n", "merge keys (<<) are not allowed"),
    ("two documents", b"name: x\n---\nname: y\n", "a second document; one file holds one experiment"),
    ("hook ..", (EXPERIMENT % (10, "/../../../../secrets")).encode(), "'/../../../../secrets' is not normalised"),
    ("hook %2e%2e", (EXPERIMENT % (10, "/x/%2e%2E/%2E%2e/secrets")).encode(), "is not normalised"),
    ("hook encoded /", (EXPERIMENT % (10, "/x/..%2f..%2fsecrets")).encode(), "an encoded / or \\ is not allowed"),
    ("hook backslash", (EXPERIMENT % (10, "/x\\\\..\\\\secrets")).encode(), "'\\\\' is not allowed in a path"),
    ("hook fragment", (EXPERIMENT % (10, "/export#x")).encode(), "'#' is not allowed in a path"),
    ("hook not rooted", (EXPERIMENT % (10, "export")).encode(), "a path starts with /"),
]


@pytest.mark.parametrize(("data", "expected"), [(d, e) for _, d, e in EXPERIMENT_FILES],
                         ids=[i for i, _, _ in EXPERIMENT_FILES])
def test_a_bad_experiment_file_is_one_line(data: bytes, expected: str, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(data)
    with pytest.raises(ExperimentError) as info:
        load_experiment(tmp_path / "bad.yaml", REGISTRY)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400 and expected in message, message
    assert message.startswith(str(tmp_path / "bad.yaml"))


def test_resilience_run_shows_each_bad_experiment_in_one_line_under_its_header(tmp_path: Path) -> None:
    for number, (_, data, _) in enumerate(EXPERIMENT_FILES):
        (tmp_path / f"e{number:02d}.yaml").write_bytes(data)
    run = subprocess.run([sys.executable, "-m", "resilience_tests.cli", "run", str(tmp_path), "--dry-run",
                          "--reports", str(tmp_path / "reports"), "--pytest-args", "-p no:randomly"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode != 0 and "Traceback" not in run.stdout + run.stderr, run.stdout[-3000:]
    lines = run.stdout.splitlines()
    for number, (_, _, expected) in enumerate(EXPERIMENT_FILES):
        # The file is named relative to pytest's rootdir, which depends on where the run's folders are.
        found = [i for i, line in enumerate(lines) if re.search(rf"ERROR collecting (\S*/)?e{number:02d}\.yaml ", line)]
        assert found, (number, run.returncode, run.stdout[-3000:], run.stderr[-2000:])
        header = found[0]
        assert expected in lines[header + 1] and lines[header + 2].startswith(("_", "=")), lines[header:header + 3]


def test_the_same_experiment_with_a_good_hook_path_and_number_loads(tmp_path: Path) -> None:
    for path in ("/records/export", "/records/export/", "/export?since=0&format=json", "/a%20b", "/"):
        (tmp_path / "good.yaml").write_text(EXPERIMENT % (10, path))
        experiment = load_experiment(tmp_path / "good.yaml", REGISTRY)
        assert experiment.guardrails.max_pods == 10


# -- the checks themselves ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/..", "/a/../b", "/a/./b", "//host/x", "/a//b", "/%2e%2e/x", "/%2E./x",
                                  "/a%2Fb", "/a%5cb", "/a\\b", "/a#b", "/a b", "/a\tb", "/é", "/%zz", "/a?b#c",
                                  "relative", "", "/" + "a" * 3000])
def test_a_hook_path_that_could_leave_the_pod_proxy_is_refused(path: str) -> None:
    assert path_problem(path)
    with pytest.raises(ValueError, match="path"):
        HttpHook.model_validate({"port": 8080, "path": path})


@pytest.mark.parametrize(("data", "expected"), [
    ({"port": 8080, "path": "/../../../../api/v1/secrets"}, "a recorded HTTP hook is not valid: path: Value error, "),
    ({"port": 0, "path": "/x"}, "port: Input should be greater than or equal to 1"),
    ("sh -c 'rm -rf /'", "a recorded hook is a str, not a command"),
    (["x"] * 1001, "a recorded hook is a list"),
])
def test_a_recorded_hook_that_is_not_valid_is_one_line(data: object, expected: str) -> None:
    from resilience_tests.backup import hooks

    with pytest.raises(hooks.HookError) as info:
        hooks.from_json(data)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert hooks.from_json({"port": 8080, "path": "/import?x=1"}) == HttpHook(port=8080, path="/import?x=1")
    assert hooks.from_json(["/app", "import"]) == ("/app", "import") and hooks.from_json(None) == ()


def test_the_pure_python_parser_refuses_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strictyaml, "_Parser", strictyaml._PyParser)
    for text, expected in ((ALIAS_BOMB, "line 2, column 8: aliases"), ("a: 1\na: 2\n", "duplicate key 'a'"),
                           ("x: " + "[" * 200 + "]" * 200, "nested more than 100"), ("a: \x01", "character 3")):
        with pytest.raises(strictyaml.YamlProblem, match=expected.replace("[", r"\[")):
            strictyaml.load(text)
    assert list(strictyaml.load_all("a: 1\n---\nb: [2]\n")) == [(1, {"a": 1}), (3, {"b": [2]})]


@pytest.mark.parametrize(("pod", "namespace", "path"), [
    ("../../kube-system/pods/x", "demo", "/export"), ("web-0", "demo/../kube-system", "/export"),
    ("web-0", "demo", "/../../../../secrets"),
])
def test_a_hook_is_never_sent_to_a_url_that_leaves_the_pod(pod: str, namespace: str, path: str) -> None:
    from resilience_tests.backup import hooks

    class Kube:
        def proxy(self, *args: object, **kwargs: object) -> tuple[int, str]:
            raise AssertionError(f"sent: {args}")

    hook = HttpHook.model_construct(port=8080, path=path, method=None)  # built without validation
    with pytest.raises(hooks.HookError) as info:
        hooks.call(Kube(), pod, namespace, hook)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_strict_yaml_reads_what_kubernetes_manifests_hold() -> None:
    text = "a: &anchor-without-alias 1\nb: [1, 2.5, true, null, '007', 2026-01-02]\nc: {d: !!str 5}\n"
    assert strictyaml.load(text) == {"a": 1, "b": [1, 2.5, True, None, "007", strictyaml.load("2026-01-02")],
                                     "c": {"d": "5"}}
    assert [line for line, _ in strictyaml.load_all("# c\n---\na: 1\n---\n\nb: 2\n")] == [3, 6]
    nested = "x: " + "[" * (strictyaml.MAX_DEPTH - 1) + "]" * (strictyaml.MAX_DEPTH - 1)  # the mapping is one
    assert strictyaml.load(nested)["x"] == strictyaml.load(nested)["x"]  # exactly at the limit: accepted
    assert strictyaml.load("n: " + "9" * strictyaml.MAX_INT_CHARS)["n"] > 0


# -- one exception tree ---------------------------------------------------------------------------------------

NOT_RAISED_OUT = {"resilience_tests.waiting._NotYet",  # a retry signal, caught where it is raised
                  "resilience_tests.interrupts.RevertsAborted"}  # a KeyboardInterrupt: no `except Exception` stops it
CHANGING_ELSEWHERE = {"resilience_tests.cluster.resources.ResourceError"}


def test_every_exception_the_package_defines_is_a_resilience_error() -> None:
    import importlib
    import inspect
    import pkgutil

    import resilience_tests
    from resilience_tests.errors import ResilienceError

    outside = []
    for module_info in pkgutil.walk_packages(resilience_tests.__path__, "resilience_tests."):
        source = Path(resilience_tests.__path__[0], *module_info.name.split(".")[1:]).with_suffix(".py")
        if source.is_file() and ("import locust" in source.read_text() or "from locust" in source.read_text()):
            continue  # Locust is never imported in the pytest process; such modules define no errors
        module = importlib.import_module(module_info.name)
        for name, value in inspect.getmembers(module, inspect.isclass):
            qualified = f"{value.__module__}.{name}"
            if value.__module__ == module.__name__ and issubclass(value, BaseException) and \
                    not issubclass(value, ResilienceError) and qualified not in NOT_RAISED_OUT | CHANGING_ELSEWHERE:
                outside.append(qualified)
    assert outside == []


def test_what_the_project_writes_as_yaml_it_reads_back_strictly() -> None:
    from resilience_tests import strictyaml

    shared = {"users": 10, "shape": "constant"}
    doc = {"name": "x", "load": shared, "again": shared}
    assert "*id" in __import__("yaml").safe_dump(doc)  # what PyYAML alone would write, and the reader refuses
    assert strictyaml.load(strictyaml.dump(doc)) == doc
    assert [d for _, d in strictyaml.load_all(strictyaml.dump_all([doc, doc]))] == [doc, doc]


@pytest.mark.parametrize(("path", "said"), [("/dev/zero", "is not a regular file"), ("/", "is not a regular file")])
def test_a_kubeconfig_that_is_no_regular_file_is_one_line_without_reading_it(path: str, said: str) -> None:
    from resilience_tests.cluster.client import ClusterRef, api_client
    from resilience_tests.errors import ResilienceError

    with pytest.raises(ResilienceError, match=said):
        api_client(ClusterRef(path, None))


def test_a_huge_kubeconfig_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from resilience_tests.cluster.client import MAX_KUBECONFIG, ClusterRef, api_client
    from resilience_tests.errors import ResilienceError

    big = tmp_path / "kubeconfig"
    with big.open("wb") as handle:
        handle.truncate(MAX_KUBECONFIG + 1)  # sparse: nothing written
    with pytest.raises(ResilienceError, match="larger than 16 MiB"):
        api_client(ClusterRef(str(big), None))
