"""Reading why a pod's containers cannot start (pure, from raw pod JSON)."""

from __future__ import annotations

from resilience_tests.cluster.kube import stuck_reasons


def _pod(reason: str, message: str = "") -> dict[str, object]:
    return {"metadata": {"name": "web-1"}, "spec": {"nodeName": "real-a1"},
            "status": {"containerStatuses": [{"image": "registry.local/demo:404",
                                              "state": {"waiting": {"reason": reason, "message": message}}}]}}


def test_an_image_pull_error_names_pod_node_and_image() -> None:
    (line,) = stuck_reasons(_pod("ErrImagePull", "failed to resolve: dial tcp 127.0.0.1:1: connect: refused\nmore"))
    assert line.startswith("pod web-1 on real-a1: image registry.local/demo:404 cannot be pulled (ErrImagePull")
    assert "127.0.0.1:1" in line and "more" not in line


def test_a_container_that_is_merely_creating_is_not_stuck() -> None:
    assert stuck_reasons(_pod("ContainerCreating")) == []
    assert stuck_reasons({"metadata": {"name": "x"}, "status": {}}) == []
