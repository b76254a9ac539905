"""Certificates the local cluster issues from its CA (pure: a CA made here, no cluster)."""

from __future__ import annotations

import datetime
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from resilience_tests.errors import TestbedError
from resilience_tests.testbed.kwokctl import Timings, config_document
from resilience_tests.testbed.pki import Authority, lock_down


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path / "pki"
    folder.mkdir()
    (folder / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "ca.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                                      serialization.NoEncryption()))
    return folder


def test_a_kubelet_serving_certificate_names_the_node_and_is_signed_by_the_ca(pki: Path, tmp_path: Path) -> None:
    pair = Authority(pki).issue(tmp_path / "n", "kubelet-server", common_name="system:node:real-a1",
                                groups=("system:nodes",), ips=("10.241.0.1",), dns=("real-a1",), server=True)
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.241.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["real-a1"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert stat.S_IMODE(pair.key.stat().st_mode) == 0o600


def test_a_client_identity_carries_user_and_groups_and_its_kubeconfig_is_private(pki: Path, tmp_path: Path) -> None:
    authority = Authority(pki)
    pair = authority.issue(tmp_path, "client", common_name="system:kube-proxy")
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:kube-proxy"
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    path = authority.kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:1", "system:kube-proxy", pair)
    document = json.loads(path.read_text())
    assert document["users"][0]["user"]["client-key"] == str(pair.key)
    assert document["clusters"][0]["cluster"]["certificate-authority"] == str(pki / "ca.crt")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_lock_down_makes_keys_and_kubeconfigs_private_and_leaves_certificates(tmp_path: Path) -> None:
    for name in ("a.key", "kubeconfig.yaml", "ca.crt"):
        (tmp_path / name).write_text("x")
        (tmp_path / name).chmod(0o644)
    changed = lock_down(tmp_path)
    assert sorted(p.name for p in changed) == ["a.key", "kubeconfig.yaml"]
    assert stat.S_IMODE((tmp_path / "ca.crt").stat().st_mode) == 0o644


def test_a_missing_ca_says_how_to_recover(tmp_path: Path) -> None:
    with pytest.raises(TestbedError, match="cannot read the cluster CA") as info:
        Authority(tmp_path)
    assert "cluster down" in (info.value.hint or "")


def test_etcd_serves_tls_only_and_the_api_server_verifies_kubelets(tmp_path: Path) -> None:
    document = config_document(tmp_path, 6443, Timings.for_nodes(6), tmp_path / "pki", (2379, 2380))
    patches = {p["name"]: {a["key"]: a for a in p["extraArgs"]} for p in document["componentsPatches"]}
    etcd = patches["etcd"]
    assert etcd["listen-client-urls"]["value"] == "https://127.0.0.1:2379" and etcd["listen-client-urls"]["override"]
    assert etcd["listen-peer-urls"]["value"] == "https://127.0.0.1:2380"
    assert etcd["client-cert-auth"]["value"] == etcd["peer-client-cert-auth"]["value"] == "true"
    api = patches["kube-apiserver"]
    assert api["etcd-servers"]["value"] == "https://127.0.0.1:2379" and api["etcd-servers"]["override"]
    assert api["kubelet-certificate-authority"]["value"] == str(tmp_path / "pki" / "ca.crt")
    assert document["options"]["bindAddress"] == "127.0.0.1"  # type: ignore[index]
