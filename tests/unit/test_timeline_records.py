"""The timeline's pod records: typed from the API object to the journal."""

from __future__ import annotations

import json

from resilience_tests.cluster.timeline import ContainerState, PodState, Record, pod_records, pod_state

POD = {
    "metadata": {"name": "web-1", "namespace": "demo", "labels": {"app": "web", "pod-template-hash": "a=b,c"},
                 "deletionTimestamp": "2026-12-03T10:00:00Z"},
    "spec": {"nodeName": "node-a1", "terminationGracePeriodSeconds": 20},
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
               "containerStatuses": [
                   {"name": "web", "restartCount": 2, "state": {"terminated": {"exitCode": 137, "reason": "Error"}},
                    "lastState": {"terminated": {"exitCode": 1}}},
                   {"name": "sidecar", "restartCount": 0, "state": {"running": {}}}]},
}


def test_a_pod_becomes_a_typed_state_with_labels_as_a_mapping_and_exits_per_container() -> None:
    state = pod_state(POD)
    assert state == PodState(phase="Running", ready=False, node="node-a1", terminating=True, grace=20,
                             labels={"app": "web", "pod-template-hash": "a=b,c"},
                             containers={"web": ContainerState(restarts=2, exit_code=137, reason="Error",
                                                               last_exit_code=1),
                                         "sidecar": ContainerState()})
    assert state.exits == {"web": 137}, "a running container has no exit"
    assert state.labels["pod-template-hash"] == "a=b,c", "a label value with '=' and ',' survives whole"


def test_a_changed_container_makes_a_different_state_and_an_equal_one_does_not() -> None:
    assert pod_state(POD) == pod_state(json.loads(json.dumps(POD)))
    running = json.loads(json.dumps(POD))
    running["status"]["containerStatuses"][0]["state"] = {"running": {}}
    assert pod_state(running) != pod_state(POD) and pod_state(running).exits == {}


def test_the_journal_writes_a_pod_record_structured_and_other_records_flat() -> None:
    pod = Record(5.0, "pod", "demo/web-1", "updated", pod=pod_state(POD))
    assert pod.to_json()["pod"]["labels"] == {"app": "web", "pod-template-hash": "a=b,c"}
    assert pod.to_json()["pod"]["containers"]["web"] == {"restarts": 2, "exit_code": 137, "reason": "Error",
                                                         "last_exit_code": 1}
    assert "details" not in pod.to_json()
    node = Record(4.0, "node", "node-a1", "updated", (("ready", "False"),))
    assert node.to_json() == {"t": 4.0, "kind": "node", "name": "node-a1", "change": "updated",
                              "details": {"ready": "False"}}
    json.dumps([pod.to_json(), node.to_json()])
    assert [(r.pod, r.t) for r in pod_records([pod, node, Record(1.0, "pod", "demo/web-0", "added",
                                                                  pod=PodState())])] == [("web-0", 1.0),
                                                                                         ("web-1", 5.0)]
    assert pod.pod is not None and pod.pod.shown() == {"node": "node-a1", "exit.web": 137, "reason.web": "Error"}
