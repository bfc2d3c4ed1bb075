"""Certificates and a Kind-shaped kubeconfig for the lab's fake API server.

Kind's kubeconfig authenticates with a client certificate (the kubeadm admin
cert) and pins the cluster CA, so the lab does the same: one CA signs a server
certificate for the loopback names and a client certificate, and the kubeconfig
carries all three inline as base64 data (docs/facts/kubernetes.md §9).
"""

from __future__ import annotations

import base64
import datetime
import functools
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; kubernetes depends on it
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Names the server certificate is valid for, as Kind's apiserver cert covers them.
DEFAULT_SERVER_NAMES: tuple[str, ...] = ("127.0.0.1", "localhost")


@dataclass(frozen=True, slots=True)
class LabCerts:
    """PEM bytes of the lab CA, the server pair and the client (admin) pair."""

    ca_cert: bytes
    server_cert: bytes
    server_key: bytes
    client_cert: bytes
    client_key: bytes


def _key() -> rsa.RSAPrivateKey:
    # kubeadm issues RSA 2048 keys; the clients do not care, but stay close to Kind.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = []
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: rsa.RSAPrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    *,
    ca: bool,
) -> x509.CertificateBuilder:
    """What the CA and the leaves share: serial, validity, and the key usage kubeadm
    gives them (only the CA may sign certificates)."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


@functools.lru_cache(maxsize=8)
def generate_certs(server_names: tuple[str, ...] = DEFAULT_SERVER_NAMES) -> LabCerts:
    """A fresh CA plus server and client certificates. Cached per process: RSA key
    generation costs tens of milliseconds, and every test server can share one CA."""
    now = datetime.datetime.now(datetime.UTC)
    # Back-dated so that a clock a little behind does not see "not yet valid".
    not_before = now - datetime.timedelta(hours=1)
    not_after = now + datetime.timedelta(days=365)

    ca_key = _key()
    ca_name = _name("kubernetes")
    ca_cert = (
        _builder(
            ca_name, ca_name, ca_key, not_before, not_after + datetime.timedelta(days=3650), ca=True
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        key: rsa.RSAPrivateKey,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        names: Sequence[str] = (),
    ) -> x509.Certificate:
        builder = (
            _builder(subject, ca_name, key, not_before, not_after, ca=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(_san(names), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    server_key = _key()
    server_cert = leaf(
        server_key, _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, server_names
    )
    client_key = _key()
    # kubeadm's admin identity since Kubernetes 1.29 (docs/facts/kubernetes.md §9.1).
    client_cert = leaf(
        client_key,
        _name("kubernetes-admin", "kubeadm:cluster-admins"),
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    pem = serialization.Encoding.PEM
    return LabCerts(
        ca_cert=ca_cert.public_bytes(pem),
        server_cert=server_cert.public_bytes(pem),
        server_key=_pem_key(server_key),
        client_cert=client_cert.public_bytes(pem),
        client_key=_pem_key(client_key),
    )


def server_ssl_context(certs: LabCerts, workdir: Path) -> ssl.SSLContext:
    """TLS for the fake apiserver: client certificates optional but verified
    against the CA, like kube-apiserver's --client-ca-file."""
    workdir.mkdir(parents=True, exist_ok=True)
    # ssl can only load a key pair from files.
    cert_path = workdir / "apiserver.crt"
    key_path = workdir / "apiserver.key"
    cert_path.write_bytes(certs.server_cert)
    key_path.write_bytes(certs.server_key)
    key_path.chmod(0o600)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_path, key_path)
    ctx.load_verify_locations(cadata=certs.ca_cert.decode("ascii"))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def kubeconfig_dict(
    server_url: str,
    *,
    cluster: str = "kind",
    certs: LabCerts | None = None,
    token: str | None = None,
    tls_server_name: str | None = None,
) -> dict[str, Any]:
    """A kubeconfig in the exact shape `kind create cluster` writes (docs/facts/kubernetes.md §9.1).

    With `certs`, mutual TLS as Kind does; without, a plain-http cluster entry and
    a user that is empty or carries `token`."""
    name = f"kind-{cluster}"
    cluster_entry: dict[str, Any] = {"server": server_url}
    user: dict[str, Any] = {}
    if certs is not None:
        cluster_entry = {"certificate-authority-data": _b64(certs.ca_cert), **cluster_entry}
        user = {
            "client-certificate-data": _b64(certs.client_cert),
            "client-key-data": _b64(certs.client_key),
        }
    if tls_server_name:
        cluster_entry["tls-server-name"] = tls_server_name
    if token is not None:
        user["token"] = token
    return {
        "apiVersion": "v1",
        "clusters": [{"cluster": cluster_entry, "name": name}],
        "contexts": [{"context": {"cluster": name, "user": name}, "name": name}],
        "current-context": name,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": name, "user": user}],
    }


def write_kubeconfig(path: Path, config: dict[str, Any]) -> Path:
    """Write a kubeconfig readable only by its owner, as kind and kubectl do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return path
