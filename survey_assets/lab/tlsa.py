"""TLSA records of the lab's MX hosts, computed from the real certificates they present."""

from __future__ import annotations

import hashlib

from survey_assets.lab import pki
from survey_assets.lab.world import MxHost, TlsaSpec


def cert_names(host: MxHost) -> tuple[str, ...]:
    """The DNS names of a host's certificate, without the trailing dot."""
    return tuple(n.rstrip(".") for n in host.cert_names)


def host_chain(seed: int, host: MxHost, key: str | None = None) -> list[pki.Issued]:
    """The chain a host presents: its leaf, then its issuing CA (never the root)."""
    leaf = pki.leaf(seed, key or host.key, cert_names(host), host.issuer)
    return [leaf, pki.issuing_ca(seed, host.issuer)]


def tlsa_data(seed: int, host: MxHost, spec: TlsaSpec) -> bytes:
    """The certificate association data of a TLSA spec (RFC 6698 §2.1)."""
    if spec.ca is not None:
        cert = pki.issuing_ca(seed, spec.ca)
    else:
        cert = pki.leaf(seed, spec.key, cert_names(host), host.issuer)
    selected = cert.der if spec.selector == 0 else cert.spki_der
    if spec.mtype == 0:
        data = selected
    elif spec.mtype == 1:
        data = hashlib.sha256(selected).digest()
    else:
        data = hashlib.sha512(selected).digest()
    return data[:-1] if spec.malformed else data


def tlsa_text(seed: int, host: MxHost, spec: TlsaSpec) -> str:
    return f"{spec.usage} {spec.selector} {spec.mtype} {tlsa_data(seed, host, spec).hex()}"
