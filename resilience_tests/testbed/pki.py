"""Certificates and kubeconfigs the local cluster issues from kwokctl's CA.

kwokctl writes one CA (``pki/ca.crt``, ``pki/ca.key``) and one admin certificate
(``system:masters``) that its control-plane components share. The real nodes get
their own, narrower identities from the same CA:

- a kubelet serving certificate per node (SANs: node IP and name), so the API
  server verifies the kubelet it talks to (``--kubelet-certificate-authority``);
- a kubelet client certificate per node (``system:node:<name>`` in
  ``system:nodes``): the Node authorizer lets it touch its own node, lease and
  pods only;
- one kube-proxy client certificate (``system:kube-proxy``, bound by default to
  ``system:node-proxier``).

Every private key and kubeconfig is written with mode 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from resilience_tests.errors import TestbedError

VALIDITY = datetime.timedelta(days=365)
SECRET_MODE = 0o600


@dataclass(frozen=True)
class Pair:
    """A certificate and its key on disk."""

    cert: Path
    key: Path


def write_secret(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (also when the file existed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_MODE)
    try:
        os.fchmod(fd, SECRET_MODE)
        os.write(fd, data)
    finally:
        os.close(fd)


def lock_down(folder: Path) -> list[Path]:
    """Make every key and kubeconfig under ``folder`` mode 0600; return the files changed."""
    changed = []
    for path in folder.rglob("*"):
        if path.is_file() and is_secret_file(path) and path.stat().st_mode & 0o077:
            path.chmod(SECRET_MODE)
            changed.append(path)
    return changed


def is_secret_file(path: Path) -> bool:
    """Private keys and kubeconfigs (they carry or point at credentials)."""
    return path.suffix == ".key" or path.name.startswith("kubeconfig") or path.name.endswith(".kubeconfig")


class Authority:
    """Issues certificates from the CA in ``pki`` (``ca.crt`` + ``ca.key``)."""

    def __init__(self, pki: Path) -> None:
        self.pki = pki
        self.ca_path = pki / "ca.crt"
        try:
            with warnings.catch_warnings():
                # kwokctl's CA may carry a negative serial number; cryptography warns but loads it.
                warnings.simplefilter("ignore")
                self._ca = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
            key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise TestbedError(f"cannot read the cluster CA in {pki}: {exc}",
                               hint="run `resilience cluster down` and `up` again") from None
        self._key = key

    def issue(self, folder: Path, name: str, *, common_name: str, groups: tuple[str, ...] = (),
              ips: tuple[str, ...] = (), dns: tuple[str, ...] = (), server: bool = False) -> Pair:
        """Write ``folder/name.crt`` and ``folder/name.key`` (0600) signed by the CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
                            + [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups])
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(self._ca.subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + VALIDITY)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                                content_commitment=False, data_encipherment=False,
                                                key_agreement=False, key_cert_sign=False, crl_sign=False,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        names += [x509.DNSName(d) for d in dns]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())  # type: ignore[arg-type]
        pair = Pair(folder / f"{name}.crt", folder / f"{name}.key")
        folder.mkdir(parents=True, exist_ok=True)
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_secret(pair.key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
        return pair

    @staticmethod
    def server_of(kubeconfig: Path) -> str:
        """The API server's URL as ``kubeconfig`` (kwokctl's admin one) names it."""
        import yaml

        try:
            document = yaml.safe_load(kubeconfig.read_text())
            return str(document["clusters"][0]["cluster"]["server"])
        except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
            raise TestbedError(f"cannot read the API server address from {kubeconfig}: {exc}") from None

    def kubeconfig(self, path: Path, server: str, user: str, pair: Pair) -> Path:
        """Write a kubeconfig (0600) that authenticates as ``pair`` and trusts the CA."""
        document = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(self.ca_path)}}],
            "users": [{"name": user, "user": {"client-certificate": str(pair.cert), "client-key": str(pair.key)}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
            "current-context": "local",
        }
        write_secret(path, json.dumps(document, indent=1).encode())
        return path
