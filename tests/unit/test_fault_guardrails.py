"""Guardrails that faults check before they touch anything (pure: no cluster is reached)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from resilience_tests.cluster.kube import Kube, Workload
from resilience_tests.faults.base import FaultContext, FaultError
from resilience_tests.faults.rollout import Rollout, RolloutParams
from resilience_tests.faults.scale import Scale, ScaleParams


def ctx(namespace: str, allow_kube_system: bool = False) -> FaultContext:
    return FaultContext(kube=cast(Kube, None), namespace=namespace, run_id="r", max_nodes=1, max_pods=10,
                        workload=Workload("deployment", namespace, "coredns"), allow_kube_system=allow_kube_system)


@pytest.mark.parametrize("fault, params", [
    (Scale, ScaleParams(type="scale", replicas=0)),
    (Rollout, RolloutParams(type="rollout", action="restart")),
])
def test_scale_and_rollout_refuse_kube_system_unless_allowed(fault: Any, params: Any) -> None:
    with pytest.raises(FaultError, match="deployment/coredns is in kube-system; set "
                                         "guardrails.allow_kube_system: true"):
        fault(params, ctx("kube-system"))
    assert fault(params, ctx("kube-system", allow_kube_system=True)).workload.name == "coredns"
    assert fault(params, ctx("demo")).workload.namespace == "demo"


def test_a_revert_tries_every_object_and_retries_transient_errors() -> None:
    from kubernetes.client.exceptions import ApiException

    from resilience_tests.faults.base import revert_each

    calls: list[str] = []
    flaky = iter([ApiException(status=503), ConnectionResetError("reset")])

    def undo(item: str) -> None:
        calls.append(item)
        if item == "node-a":
            error = next(flaky, None)
            if error is not None:
                raise error
        if item == "node-b":
            raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(FaultError, match=r"uncordon failed for 1 of 3: node-b \(ApiException: \(403\)"):
        revert_each("uncordon", ["node-a", "node-b", "node-c"], undo, deadline=10)
    assert calls == ["node-a", "node-a", "node-a", "node-b", "node-c"]  # a retried twice, b not retried, c tried
