"""The local cluster lets no one in: TLS and client certificates everywhere, kubelets closed to pods and strangers,
private keys private, and the host given back as it was."""

from __future__ import annotations

import datetime
import re
import socket
import ssl
import stat
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client

from resilience_tests.testbed.cluster import LocalCluster
from resilience_tests.testbed.hostnet import HOST_GUARD_CHAIN
from resilience_tests.testbed.nodeconfigs import NODE_IP_PREFIX
from resilience_tests.testbed.pki import is_secret_file
from resilience_tests.testbed.topology import Topology
from resilience_tests.waiting import wait_until
from tests.cluster import conftest
from tests.cluster.helpers import AuditLog, answers, delete_namespace, deploy_demo, ready, running_pods
from tests.cluster.host import host_state


@pytest.fixture(scope="module")
def demo(local_cluster: LocalCluster, real_nodes: list[str]) -> Iterator[tuple[client.CoreV1Api, str]]:
    """The demo app (2 pods on the real nodes, quick to stop) in a namespace shared by this module's tests."""
    from resilience_tests.cluster.client import ClusterRef, api_client

    core = client.CoreV1Api(api_client(ClusterRef(str(local_cluster.kubeconfig), local_cluster.context)))
    name = f"t-security-{uuid.uuid4().hex[:5]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        deploy_demo(local_cluster, core, name, replicas=2, prestop=False, grace=1)
        yield core, name
    finally:
        delete_namespace(core, name, timeout=90)


def listening(pids: set[int]) -> dict[str, list[str]]:
    """Listening TCP addresses of ``pids``, by process name."""
    found: dict[str, list[str]] = {}
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, timeout=30, check=True).stdout
    for line in out.splitlines():
        fields = line.split()
        for name, pid in re.findall(r'\("([^"]+)",pid=(\d+)', line):
            if int(pid) in pids:
                found.setdefault(name, []).append(fields[3])
    return found


def cluster_pids(local_cluster: LocalCluster) -> set[int]:
    return {*local_cluster.status().processes.values(), *local_cluster.real.pids()}


def tls(pki: Path, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context


def get(url: str, context: ssl.SSLContext | None = None) -> int:
    """HTTP status of a GET (the error's status for 4xx/5xx)."""
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def stranger(tmp_path: Path) -> tuple[Path, Path]:
    """A client certificate that claims to be an admin but comes from a CA the cluster never heard of."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kwok-admin"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=1))
            .sign(key, hashes.SHA256()))
    paths = (tmp_path / "stranger.crt", tmp_path / "stranger.key")
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_every_component_listens_on_loopback_or_a_node_ip_only(local_cluster: LocalCluster) -> None:
    found = listening(cluster_pids(local_cluster))
    assert {"etcd", "kube-apiserver", "kwok"} <= set(found), found
    for name, addresses in found.items():
        for address in addresses:
            host = address.rsplit(":", 1)[0]
            assert host == "127.0.0.1" or host.startswith(NODE_IP_PREFIX), f"{name} listens on {address}"
            if host.startswith(NODE_IP_PREFIX):
                assert name == "kubelet", f"{name} listens on {address}"


def test_etcd_answers_only_tls_clients_with_a_certificate_of_the_cluster_ca(
        local_cluster: LocalCluster, tmp_path: Path) -> None:
    pki = local_cluster.kubeconfig.parent / "pki"
    ports = [a.rsplit(":", 1)[1] for a in listening(cluster_pids(local_cluster))["etcd"]]
    admin = (pki / "admin.crt", pki / "admin.key")
    client_port = next(p for p in ports if _answers_tls(f"https://127.0.0.1:{p}/version", tls(pki, admin)))
    url = f"127.0.0.1:{client_port}/version"
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        get(f"http://{url}")
    for context in (tls(pki), tls(pki, stranger(tmp_path))):
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            get(f"https://{url}", context)
    assert get(f"https://{url}", tls(pki, admin)) == 200


def _answers_tls(url: str, context: ssl.SSLContext) -> bool:
    try:
        return get(url, context) == 200
    except (urllib.error.URLError, OSError):
        return False


def test_a_kubelet_refuses_anonymous_and_foreign_clients_and_serves_a_certificate_of_the_ca(
        local_cluster: LocalCluster, real_nodes: list[str], tmp_path: Path) -> None:
    pki = local_cluster.kubeconfig.parent / "pki"
    node = local_cluster.real.recorded()[0]
    url = f"https://{node.ip}:10250/pods"
    assert get(url, tls(pki)) == 401  # verified the kubelet's certificate for its IP, then was refused
    assert get(url, tls(pki, stranger(tmp_path))) == 401  # its claim to be an admin counts for nothing
    assert get(url, tls(pki, (pki / "admin.crt", pki / "admin.key"))) == 200
    # A kubelet's own identity reaches only what the Node authorizer grants it: not another node's pods.
    other = local_cluster.real.recorded()[1]
    folder = local_cluster.real.node_dir(node) / "pki"
    assert get(f"https://{other.ip}:10250/pods",
               tls(pki, (folder / "kubelet-client.crt", folder / "kubelet-client.key"))) == 403


def test_logs_still_flow_from_the_kubelet_through_the_api_server(demo: tuple[client.CoreV1Api, str]) -> None:
    core, namespace = demo
    pod = running_pods(core, namespace, "web")[0]
    assert "serving on :8080" in core.read_namespaced_pod_log(pod.metadata.name, namespace)


def _connect_from(netns: str, address: str, port: int) -> str:
    code = (f"import socket; s=socket.socket(); s.settimeout(3)\n"
            f"try:\n s.connect(('{address}', {port})); print('open')\n"
            f"except OSError as e:\n print(type(e).__name__)")
    return subprocess.run(["ip", "netns", "exec", netns, "python3", "-c", code], capture_output=True, text=True,
                          timeout=15, check=False).stdout.strip()


def _rejected() -> int:
    out = subprocess.run(["iptables", "-w", "5", "-L", HOST_GUARD_CHAIN, "-v", "-x", "-n"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return sum(int(line.split()[0]) for line in out.splitlines() if "REJECT" in line)


def test_pods_cannot_open_connections_to_the_kubelets_or_the_host(
        local_cluster: LocalCluster, demo: tuple[client.CoreV1Api, str]) -> None:
    core, namespace = demo
    pods = [p for p in running_pods(core, namespace, "web") if ready(p)]
    ips = {p.status.pod_ip for p in pods}
    netns = {}
    for entry in Path("/var/run/netns").glob("cni-*"):
        out = subprocess.run(["ip", "netns", "exec", entry.name, "ip", "-4", "-o", "addr", "show", "eth0"],
                             capture_output=True, text=True, timeout=15, check=False).stdout
        for ip in ips:
            if f" {ip}/" in out:
                netns[ip] = entry.name
    source, target = sorted(netns)[0], sorted(ips - {sorted(netns)[0]})[0]
    assert _connect_from(netns[source], target, 8080) == "open"  # pod to pod still works
    before = _rejected()
    gateway = source.rsplit(".", 1)[0] + ".1"  # the host's address on the pod's own bridge
    targets = [(n.ip, port) for n in local_cluster.real.recorded() for port in (10250, 10248)] + [(gateway, 10250)]
    for address, port in targets:
        assert _connect_from(netns[source], address, port) == "ConnectionRefusedError", (address, port)
    assert _rejected() >= before + len(targets)  # refused by the guard, not by chance


def test_keys_and_kubeconfigs_are_readable_by_their_owner_only(local_cluster: LocalCluster) -> None:
    folders = [local_cluster.kubeconfig.parent, local_cluster.run_dir]
    secrets = [p for folder in folders for p in folder.rglob("*") if p.is_file() and is_secret_file(p)]
    assert len(secrets) >= 3, secrets  # CA key, admin key, admin kubeconfig at least
    loose = [f"{p} {stat.filemode(p.stat().st_mode)}" for p in secrets if p.stat().st_mode & 0o077]
    assert not loose
    for folder in [local_cluster.kubeconfig.parent / "pki", *folders]:
        assert not folder.stat().st_mode & 0o077, folder


def test_the_api_server_logs_every_write_and_no_read(local_cluster: LocalCluster, core: client.CoreV1Api) -> None:
    log = AuditLog(local_cluster.audit_log)
    name = f"audited-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.list_namespaced_config_map(name)
    core.delete_namespace(name)

    def ours() -> list[dict[str, object]] | None:
        found = [e for e in log.writes() if e["objectRef"].get("name") == name  # type: ignore[union-attr]
                 and not e["objectRef"].get("subresource")]  # type: ignore[union-attr]
        found = [e for e in found if found and e["user"] == found[0]["user"]]  # ours, not the controllers'
        return found if [e["verb"] for e in found][-1:] == ["delete"] else None

    events = wait_until("our create and delete in the audit log", ours, timeout=10)
    assert [e["verb"] for e in events] == ["create", "delete"], AuditLog.describe(events)
    assert all("requestObject" not in e and "responseObject" not in e for e in events)  # no body, no Secret value
    raw = local_cluster.audit_log.read_text().splitlines()
    assert raw and not [line for line in raw if '"verb":"list"' in line or '"verb":"get"' in line]
    assert not local_cluster.audit_log.parent.stat().st_mode & 0o077


def test_a_connection_to_etcd_without_tls_gets_nothing(local_cluster: LocalCluster) -> None:
    for address in listening(cluster_pids(local_cluster))["etcd"]:
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"GET /v3/kv/range HTTP/1.0\r\n\r\n")
            sock.settimeout(5)
            try:
                reply = sock.recv(100)
            except (ConnectionResetError, TimeoutError):
                reply = b""
            assert not reply.startswith(b"HTTP/1.") or b" 400 " in reply[:20], reply


def test_tearing_down_the_real_nodes_gives_the_host_back_as_it_was(
        local_cluster: LocalCluster, demo: tuple[client.CoreV1Api, str], real_nodes: list[str]) -> None:
    """Last in this module: the real nodes restart empty (the demo's pods come back on them)."""
    core, namespace = demo
    if conftest.HOST_BEFORE is None:
        pytest.skip("the real nodes ran before this test run started: nothing to compare the host with")
    assert not local_cluster.real.teardown()
    try:
        assert conftest.HOST_BEFORE.diff(host_state()) == []
    finally:
        local_cluster.up(local_cluster._saved_topology() or Topology(), log=False)
    local_cluster.wait_nodes_ready(real_nodes, timeout=60)
    port = core.read_namespaced_service("web", namespace).spec.ports[0].node_port
    wait_until("demo serving again", lambda: answers(port) and sum(
        ready(p) for p in running_pods(core, namespace, "web")) == 2, timeout=120)
