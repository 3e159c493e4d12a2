"""STARTTLS in the lab, held against the ground truth with Python's smtplib and openssl.

For every SMTP address of every MX host with TLSA records: the TLSA records come from the lab's
resolver over DNS, the chain from `openssl s_client -starttls smtp`, the match from a few lines
of RFC 6698 matching written here, independent of the lab's code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import smtplib
import ssl
import subprocess

import dns.exception
import dns.message
import dns.query
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from survey_assets_tests.conftest import tiny_lab

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed")
DATE = dt.date(2026, 11, 9)  # the botched rollover's day


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with tiny_lab(tmp_path_factory.mktemp("lab"), DATE, tarpit_seconds=3) as running:
        yield running


def tlsa_records(lab, host: str) -> list[tuple[int, int, int, bytes]] | None:
    """The TLSA RRset over DNS; None when a record is malformed (dnspython refuses the message)."""
    query = dns.message.make_query(f"_25._tcp.{host}", "TLSA", want_dnssec=True)
    try:
        response = dns.query.tcp(query, lab.info.resolver, port=lab.info.dns_port, timeout=5)
    except dns.exception.FormError:
        return None
    return [(r.usage, r.selector, r.mtype, r.cert) for rrset in response.answer
            if rrset.rdtype == 52 for r in rrset]  # fmt: skip


def smtp_outcome(address: str, port: int, host: str) -> str:
    """What the SMTP dialogue shows: ok, no_starttls, starttls_454, handshake_fail, tarpit, refused."""
    try:
        client = smtplib.SMTP(timeout=2)
        client.connect(address, port)
    except ConnectionRefusedError:
        return "refused"
    except (TimeoutError, smtplib.SMTPServerDisconnected):
        return "tarpit"
    with client:
        client.ehlo("survey-test.lab-net")
        if not client.has_extn("starttls"):
            return "no_starttls"
        code, _ = client.docmd("STARTTLS")
        if code == 454:
            return "starttls_454"
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        try:
            client.sock = context.wrap_socket(client.sock, server_hostname=host)
        except (ssl.SSLError, ConnectionError):
            return "handshake_fail"
        return "ok"


def chain(address: str, port: int, host: str) -> list[x509.Certificate]:
    target = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    out = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect", target, "-servername", host, "-showcerts"],
        input="", capture_output=True, text=True, timeout=10,
    ).stdout  # fmt: skip
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", out, re.S)
    return [x509.load_pem_x509_certificate(p.encode()) for p in pems]


def associated(cert: x509.Certificate, selector: int, mtype: int) -> bytes:
    if selector == 0:
        data = cert.public_bytes(serialization.Encoding.DER)
    else:
        data = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return {
        0: lambda d: d,
        1: lambda d: hashlib.sha256(d).digest(),
        2: lambda d: hashlib.sha512(d).digest(),
    }[mtype](data)


def dane_match(records, certs: list[x509.Certificate], host: str) -> tuple[bool, str | None]:
    leaf = certs[0]
    for usage, selector, mtype, data in records:
        if usage == 3 and associated(leaf, selector, mtype) == data:
            return True, None
    for usage, selector, mtype, data in records:
        if usage != 2:
            continue
        for ca in certs[1:]:
            if associated(ca, selector, mtype) == data:
                leaf.verify_directly_issued_by(ca)
                names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                if host.rstrip(".") in names.get_values_for_type(x509.DNSName):
                    return True, None
                return False, "dane_ta_name_mismatch"
    return False, "tlsa_no_match"


def test_every_address_behaves_as_the_truth_says(lab):
    rows = [json.loads(line) for line in lab.info.truth.read_text().splitlines()]
    addresses = [r for r in rows if r["kind"] == "address"]
    assert len(addresses) >= 30
    observed = []
    for row in addresses:
        host, address = row["name"], row["address"]
        outcome = smtp_outcome(address, lab.info.smtp_port, host.rstrip("."))
        assert outcome == row["smtp"], (host, address, outcome, row)
        if outcome != "ok":
            assert row["dane"] == "fail"
            continue
        records = tlsa_records(lab, host)
        certs = chain(address, lab.info.smtp_port, host.rstrip("."))
        assert len(certs) == 2, (host, address)  # leaf and issuing CA, never the root
        if records is None:  # a malformed TLSA record is not usable: nothing can match
            ok, why = False, "tlsa_no_match"
        else:
            ok, why = dane_match(records, certs, host)
        assert ("pass" if ok else "fail") == row["dane"], (host, address, why, row)
        assert row["reasons"] == ([] if ok else [why])
        observed.append(row["dane"])
    assert {"pass", "fail"} <= set(observed)  # healthy and mismatching chains both seen


def test_botched_rollover_host_no_longer_matches(lab):
    """On the botch day rollbad's new key is served while only the old key's TLSA is published."""
    records = tlsa_records(lab, "mx1.rollbad.lab-net.")
    certs = chain("127.25.4.1", lab.info.smtp_port, "mx1.rollbad.lab-net")
    assert records and len(records) == 1
    assert dane_match(records, certs, "mx1.rollbad.lab-net.") == (False, "tlsa_no_match")
