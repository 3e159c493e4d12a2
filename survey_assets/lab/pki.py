"""The lab's certificate authorities and MX host certificates, all deterministic.

A lab root CA signs issuing CAs; issuing CAs sign the MX hosts' certificates. ECDSA signatures
use RFC 6979 deterministic nonces, so the same seed always yields byte-identical certificates.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from survey_assets.lab.keys import digest, ec_key

_UTC = dt.UTC
CA_NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=_UTC)
CA_NOT_AFTER = dt.datetime(2040, 1, 1, tzinfo=_UTC)
LEAF_NOT_BEFORE = dt.datetime(2026, 1, 1, tzinfo=_UTC)
LEAF_NOT_AFTER = dt.datetime(2028, 1, 1, tzinfo=_UTC)


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def spki_der(self) -> bytes:
        return self.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _serial(seed: int, *parts: object) -> int:
    return int.from_bytes(digest(seed, "serial", *parts, size=16), "big") >> 2 | 1


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DNSSEC Survey Lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ski(key: ec.EllipticCurvePrivateKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


@functools.lru_cache(maxsize=8)
def root_ca(seed: int) -> Issued:
    key = ec_key(seed, "pki-root")
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Lab Root CA"))
        .issuer_name(_name("Lab Root CA"))
        .public_key(key.public_key())
        .serial_number(_serial(seed, "root"))
        .not_valid_before(CA_NOT_BEFORE)
        .not_valid_after(CA_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(_ski(key), critical=False)
        .sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    return Issued(cert, key)


@functools.lru_cache(maxsize=32)
def issuing_ca(seed: int, name: str) -> Issued:
    """An intermediate CA signed by the lab root, e.g. "Lab Issuing CA R1"."""
    root = root_ca(seed)
    key = ec_key(seed, f"pki-ca-{name}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(_serial(seed, "ca", name))
        .not_valid_before(CA_NOT_BEFORE)
        .not_valid_after(CA_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(_ski(key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()),
            critical=False,
        )
        .sign(root.key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    return Issued(cert, key)


@functools.lru_cache(maxsize=4096)
def leaf(seed: int, key_label: str, dns_names: tuple[str, ...], issuer: str) -> Issued:
    """An MX host certificate: the key is named by `key_label`, so two certificates may share it."""
    ca = issuing_ca(seed, issuer)
    key = ec_key(seed, f"tls-{key_label}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(dns_names[0]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(_serial(seed, "leaf", key_label, dns_names, issuer))
        .not_valid_before(LEAF_NOT_BEFORE)
        .not_valid_after(LEAF_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    return Issued(cert, key)


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
