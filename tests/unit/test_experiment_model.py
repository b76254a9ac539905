from __future__ import annotations

from pathlib import Path

import pytest

from resilience_tests.experiment.model import ExperimentError, load_experiment, parse_experiment
from resilience_tests.faults.base import load_registry
from resilience_tests.faults.node_drain import NodeDrainParams

REGISTRY = load_registry()
EXPERIMENTS = sorted((Path(__file__).parents[2] / "experiments").glob("*.yaml"))


def _base(**faults: object) -> dict[str, object]:
    return {"name": "x", "target": {"namespace": "demo", "workload": "deployment/web"},
            "faults": [{"type": "node-drain", **faults}]}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.name for p in EXPERIMENTS])
def test_every_example_experiment_loads(path: Path) -> None:
    experiment = load_experiment(path, REGISTRY)
    assert (experiment.faults or experiment.load) and experiment.source == str(path)


def test_examples_exist() -> None:
    assert len(EXPERIMENTS) >= 5


def test_fault_keys_become_typed_values() -> None:
    exp = parse_experiment(_base(at="1m", timeout="2m", nodes={"zone": "zone-a", "count": 1}), REGISTRY)
    fault = exp.faults[0]
    assert isinstance(fault, NodeDrainParams)
    assert (fault.at, fault.timeout, fault.nodes.zone, fault.nodes.count) == (60, 120, "zone-a", 1)
    with pytest.raises(Exception, match="frozen"):
        fault.at = 3  # type: ignore[misc]


def test_unknown_key_names_the_path_and_allowed_keys() -> None:
    with pytest.raises(ExperimentError) as info:
        parse_experiment(_base(nodes={"zone": "zone-a", "cuont": 1}), REGISTRY, "drain.yaml")
    message = str(info.value)
    assert message.startswith("drain.yaml: faults[0].nodes.cuont: unknown key; allowed keys: count,")
    assert "zone" in message


def test_unknown_fault_type_lists_the_known_ones() -> None:
    data = _base()
    data["faults"] = [{"type": "node-melt"}]
    with pytest.raises(ExperimentError, match="unknown fault type 'node-melt'; known types: backup, disaster, "
                                              "node-drain, node-failure, pod-kill, restore, rollout, scale, "
                                              "zone-outage"):
        parse_experiment(data, REGISTRY)


@pytest.mark.parametrize(("change", "expected"), [
    ({"target": {"namespace": "demo", "workload": "pod/web"}}, "target.workload: workload must be KIND/NAME"),
    ({"target": "demo"}, "target: Input should be a valid dictionary"),
    ({"target": {"namespace": "demo"}, "name": None}, "name: Input should be a valid string"),
    ({"faults": []}, "neither faults nor load: an experiment needs something that disturbs the target; add a "
                     "`faults:` list or a `load:` section"),
    ({"guardrails": {"max_nodes": -1}}, "guardrails.max_nodes: Input should be greater than or equal to 0"),
    ({"settle": "soon"}, "settle: 'soon' is not a duration"),
    ({"colour": "red"},
     "colour: unknown key; allowed keys: description, faults, guardrails, load, name, settle, severity, slas"),
])
def test_bad_values_are_explained(change: dict[str, object], expected: str) -> None:
    with pytest.raises(ExperimentError, match=expected.replace("(", r"\(")):
        parse_experiment({**_base(), **change}, REGISTRY)


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfaults: [\n  {type: pod-kill\n")
    with pytest.raises(ExperimentError, match=r"bad.yaml: malformed YAML at line \d+, column \d+"):
        load_experiment(bad, REGISTRY)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="cannot read"):
        load_experiment(tmp_path / "nope.yaml", REGISTRY)


def test_duplicate_fault_names_are_an_error_naming_both_classes() -> None:
    from importlib import metadata

    eps = [metadata.EntryPoint("pod-kill", "resilience_tests.faults.pod_kill:PodKill", "g"),
           metadata.EntryPoint("pod-kill", "resilience_tests.faults.scale:Scale", "g")]
    with pytest.raises(Exception, match="registered twice: .*PodKill and .*Scale"):
        load_registry(eps)


def _with_checks(slas: list[object], steady: list[object] | None = None, load: bool = True) -> dict[str, object]:
    data = {**_base(), "faults": [{"type": "rollout", "action": "restart"}, {"type": "pod-kill", "count": 1}],
            "slas": slas, "steady_state": steady or []}
    if load:
        data["load"] = {"shape": {"type": "constant", "users": 2, "duration": "10s"}}
    return data


@pytest.mark.parametrize("window, problem", [
    ("fault:rollot", "window 'fault:rollot' matches no fault of the experiment; faults: fault:0 (rollout), "
                     "fault:1 (pod-kill)"),
    ("fault:7", "window 'fault:7' matches no fault"),
    ("durnig", "unknown window 'durnig'; use whole, before, faults, after, fault:N or fault:TYPE"),
])
def test_windows_are_checked_when_the_experiment_is_parsed(window: str, problem: str) -> None:
    with pytest.raises(ExperimentError, match="slas\\[0\\] \\(no-failed-requests\\).window: " + problem.replace(
            "(", "\\(").replace(")", "\\)").replace("[", "\\[")):
        parse_experiment(_with_checks([{"type": "no-failed-requests", "window": window}]), REGISTRY, "x.yaml")
    for good in ("whole", "before", "faults", "after", "fault:0", "fault:1", "fault:rollout", "fault:pod-kill"):
        parse_experiment(_with_checks([{"type": "no-failed-requests", "window": good}]), REGISTRY)


def test_checks_that_cannot_be_evaluated_are_schema_errors_all_listed() -> None:
    with pytest.raises(ExperimentError) as info:
        parse_experiment(_with_checks([{"type": "latency", "max": "1s"}, {"type": "recovery-time", "max": "5s",
                                                                           "window": "fault:9"}],
                                      steady=[{"type": "recovery-time", "max": "1s"},
                                              {"type": "error-rate", "max": "1%", "window": "after"}],
                                      load=False), REGISTRY, "x.yaml")
    message = str(info.value)
    assert message.startswith("x.yaml: 5 problems: "), message
    assert "steady_state[0] (recovery-time (from start)): judges faults" in message
    assert "steady_state[1] (error-rate).window: steady-state checks judge the steady window only" in message
    assert "slas[0] (latency): reads load samples, but the experiment has no `load:` section" in message
    assert "slas[1] (recovery-time (from start)).window: window 'fault:9' matches no fault" in message


def test_a_bad_fault_is_one_problem_not_two() -> None:
    with pytest.raises(ExperimentError) as info:
        parse_experiment(_base(nodes={"cuont": 1}), REGISTRY, "x.yaml")
    assert "problems" not in str(info.value) and "at least 1 item" not in str(info.value), str(info.value)


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    return path


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


def test_an_alias_bomb_is_refused_at_once_without_echoing_it(tmp_path: Path) -> None:
    assert len(BILLION_LAUGHS) < 1000
    with pytest.raises(ExperimentError) as info:
        load_experiment(_file(tmp_path, BILLION_LAUGHS), REGISTRY)
    assert "aliases (*name) are not allowed" in str(info.value) and "line 2" in str(info.value)
    assert len(str(info.value)) < 300


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    text = "name: x\ntarget: {namespace: d}\nfaults: [{type: pod-kill}]\nname: y\n"
    with pytest.raises(ExperimentError, match=r"line 4, column 1: duplicate key 'name'"):
        load_experiment(_file(tmp_path, text), REGISTRY)


def test_huge_files_and_fault_lists_are_refused(tmp_path: Path) -> None:
    many = "name: x\ntarget: {namespace: d}\nfaults:\n" + "  - {type: pod-kill}\n" * 1000
    with pytest.raises(ExperimentError, match="1,000 faults; an experiment has at most 200"):
        load_experiment(_file(tmp_path, many), REGISTRY)
    with pytest.raises(ExperimentError, match="bytes; experiments are at most 1,000,000 bytes"):
        load_experiment(_file(tmp_path, "name: x\n" + "# pad\n" * 200_000), REGISTRY)


def test_a_huge_bad_value_is_not_echoed_whole() -> None:
    with pytest.raises(ExperimentError) as info:
        parse_experiment({**_base(), "settle": "9" * 100_000}, REGISTRY, "x.yaml")
    assert len(str(info.value)) < 600 and "100,002 characters" in str(info.value), str(info.value)[:600]


LOAD = {"shape": {"type": "constant", "users": 2, "duration": "10s"}}


def test_a_load_ramp_alone_is_an_experiment() -> None:
    data = {"name": "ramp", "target": {"namespace": "demo", "workload": "deployment/web"}, "load": LOAD,
            "slas": [{"type": "no-failed-requests"}, {"type": "latency", "max": "1s", "window": "whole"},
                     {"type": "graceful-shutdown", "window": "whole"}]}
    exp = parse_experiment(data, REGISTRY)
    assert exp.faults == () and exp.load_only and exp.load is not None
    assert parse_experiment({**data, "faults": []}, REGISTRY).faults == ()
    assert not parse_experiment(_with_checks([]), REGISTRY).load_only


@pytest.mark.parametrize("faults", [{}, {"faults": []}, {"faults": None}])
def test_neither_faults_nor_load_is_refused_in_one_line(faults: dict[str, object]) -> None:
    data = {"name": "x", "target": {"namespace": "demo"}, **faults}
    with pytest.raises(ExperimentError) as info:
        parse_experiment(data, REGISTRY, "x.yaml")
    message = str(info.value)
    assert message == ("x.yaml: neither faults nor load: an experiment needs something that disturbs the target; "
                       "add a `faults:` list or a `load:` section (a load ramp alone is an experiment)"), message
    assert "\n" not in message


@pytest.mark.parametrize(("check", "problem"), [
    ({"type": "no-failed-requests", "window": "after"}, "window 'after' is relative to the faults, and the "
                                                        "experiment has no faults (its load is the disturbance); "
                                                        "use window: whole"),
    ({"type": "error-rate", "max": "1%", "window": "faults"}, "window 'faults' is relative to the faults"),
    ({"type": "error-rate", "max": "1%", "window": "before"}, "window 'before' is relative to the faults"),
    ({"type": "graceful-shutdown"}, "window 'faults' is relative to the faults"),
    ({"type": "no-failed-requests", "window": "fault:0"}, "window 'fault:0' matches no fault of the experiment; "
                                                          "faults: no faults"),
    ({"type": "recovery-time", "max": "5s"}, "recovery-time judges the recovery from a fault, and the experiment "
                                             "has no faults; add one"),
    ({"type": "scale-up-time", "to": 3, "max": "30s", "from": "fault:0"}, "matches no fault"),
])
def test_a_load_only_experiment_refuses_what_needs_a_fault(check: dict[str, object], problem: str) -> None:
    data = {"name": "x", "target": {"namespace": "demo", "workload": "deployment/web"}, "load": LOAD,
            "slas": [check]}
    with pytest.raises(ExperimentError) as info:
        parse_experiment(data, REGISTRY, "x.yaml")
    assert problem in str(info.value) and str(info.value).startswith("x.yaml: slas[0] "), str(info.value)
