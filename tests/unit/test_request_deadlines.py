"""Every API request has a deadline: a hung API server (it accepts connections and never answers) makes a call
fail within its timeout instead of blocking an inject or a revert forever."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from kubernetes import client

from resilience_tests.cluster.client import ClusterRef, api_client


@pytest.fixture
def hung_server() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_hung_api_server_fails_the_call_within_its_deadline(hung_server: int, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: hung\n"
        f"clusters: [{{name: hung, cluster: {{server: 'http://127.0.0.1:{hung_server}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: hung, context: {cluster: hung, user: u}}]\n")
    api = api_client(ClusterRef(str(kubeconfig), "hung"), request_timeout=urllib3.Timeout(connect=1, read=1))
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.HTTPError):
        client.CoreV1Api(api).list_namespace()
    took = time.monotonic() - started
    api.close()
    assert took < 5, f"the call waited {took:.1f} s for a 1 s deadline"
