"""OPC UA message security for clients: application certificates, trusted server certificates, users.

Shared by the collector and ``plantstream browse``. The application certificate and key are
generated on first use into a PKI folder and kept; the server's certificate must be pinned by
SHA-256 or be in a trusted folder, and a refusal names the fingerprint to pin.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto import security_policies
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from plantstream.plant.schema import OpcUaSecurity
from plantstream.private import private_dir

__all__ = ["UntrustedServer", "fingerprint", "secure_client"]

_POLICIES = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
_MODES = {"Sign": ua.MessageSecurityMode.Sign, "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt}


class UntrustedServer(Exception):
    """The server's certificate is not pinned nor trusted, or no endpoint has the security asked for."""


async def secure_client(client: Client, security: OpcUaSecurity, name: str, pki: Path) -> str | None:
    """Set up ``client`` for ``security``; return the application certificate's SHA-256, if any.

    Args:
        client: a client not yet connected.
        security: the source's security settings.
        name: the source's id, used in the application URI.
        pki: the folder that holds (or will hold) the application certificate and key.

    Raises:
        UntrustedServer: the server's certificate is not trusted, or it offers no such endpoint.
    """
    if security.username:
        client.set_user(security.username)
    if security.password:
        client.set_password(security.password)
    if security.mode == "None":
        return None
    key, cert = await _application_certificate(pki, name)
    server_der = await _trusted_server_certificate(client, security)
    client.application_uri = _application_uri(name)
    await client.set_security(
        _POLICIES[security.policy],
        certificate=str(cert),
        private_key=str(key),
        server_certificate=server_der,
        mode=_MODES[security.mode],
    )
    return fingerprint(cert.read_bytes())


async def _application_certificate(pki: Path, name: str) -> tuple[Path, Path]:
    key, cert = pki / "client.key.pem", pki / "client.cert.der"
    if not (key.exists() and cert.exists()):
        # Owner-only before the key is written: the generator leaves its mode to the umask.
        private_dir(pki, tighten=True)
        await setup_self_signed_certificate(
            key,
            cert,
            _application_uri(name),
            socket.gethostname(),
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": f"plantstream {name}", "organizationName": "plantstream"},
        )
        key.chmod(0o600)
    return key, cert


async def _trusted_server_certificate(client: Client, security: OpcUaSecurity) -> bytes:
    endpoints = await client.connect_and_get_server_endpoints()
    wanted = _POLICIES[security.policy].URI
    mode = _MODES[security.mode]
    matching = [e for e in endpoints if e.SecurityPolicyUri == wanted and e.SecurityMode == mode]
    if not matching:
        offered = ", ".join(
            sorted({f"{e.SecurityMode.name}/{e.SecurityPolicyUri.rsplit('#', 1)[-1]}" for e in endpoints})
        )
        asked = f"{security.mode}/{security.policy}"
        raise UntrustedServer(f"the server offers no endpoint with {asked} (it offers {offered})")
    der = bytes(matching[0].ServerCertificate)
    actual = fingerprint(der)
    pinned = security.server_certificate_sha256
    if pinned is not None:
        if _normalise(pinned) != _normalise(actual):
            raise UntrustedServer(
                f"the server's certificate has SHA-256 {actual}, not the pinned {pinned}: refusing it"
            )
        return der
    folder = security.trusted_certificates_dir
    if folder is not None and any(_certificate_der(p) == der for p in Path(folder).glob("*") if p.is_file()):
        return der
    where = f" or put it in {folder}" if folder else " or trust it with trusted_certificates_dir"
    raise UntrustedServer(
        f"the server's certificate (SHA-256 {actual}) is not trusted: pin it with "
        f"server_certificate_sha256: {actual}{where}"
    )


def _application_uri(name: str) -> str:
    return f"urn:plantstream:client:{name}"


def fingerprint(der: bytes) -> str:
    """The SHA-256 of a DER certificate as colon-separated hex, as certificate tools print it."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _normalise(value: str) -> str:
    return value.replace(":", "").replace(" ", "").upper()


def _certificate_der(path: Path) -> bytes | None:
    """A certificate file's DER bytes (PEM or DER), or None when it is not a certificate."""
    data = path.read_bytes()
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
        return x509.load_der_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    except ValueError:
        return None
