"""The lab's SMTP servers, checked from outside: openssl s_client, smtplib and raw sockets.

Expected certificates and TLSA digests are computed here from the world's specs and the lab's
keys, never from the server's own code.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import re
import smtplib
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from survey_assets.lab import keys, pki
from survey_assets.lab.smtpserver import SmtpLab
from survey_assets.lab.world import SELF_MX_POOL, TLDS, MxHost, TlsaSpec, World

SEED = 1
WORLD = World(SEED, "tiny", dt.date(2026, 11, 9))  # day 8
OPENSSL = "/usr/bin/openssl"
TIMEOUT = 5.0
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


# --- running a lab in a thread of its own ----------------------------------------------------------
class LabThread:
    """A lab on its own event loop in a background thread (no pytest-asyncio here)."""

    def __init__(self, lab: SmtpLab, new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
        self.lab = lab
        self.loop = new_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def call(self, coro) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT * 2)

    def __enter__(self) -> SmtpLab:
        self.thread.start()
        try:
            self.call(self.lab.start())
        except BaseException:
            self._stop()
            raise
        return self.lab

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.lab.close())
        finally:
            self._stop()

    def _stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.25.1.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_lab(
    world: World = WORLD, loop: str = "asyncio", tarpit_seconds: float = 2.0, port: int = 0
) -> Iterator[SmtpLab]:
    for attempt in range(5):  # a free port on 127.25.1.1 may still be taken on another address
        lab = SmtpLab(world, port or free_port(), tarpit_seconds=tarpit_seconds)
        try:
            runner = LabThread(lab, LOOPS[loop])
            runner.__enter__()
        except OSError:
            if port or attempt == 4:
                raise
            continue
        try:
            yield lab
        finally:
            runner.__exit__()
        return


@pytest.fixture(scope="module", params=list(LOOPS))
def lab(request: pytest.FixtureRequest) -> Iterator[SmtpLab]:
    with running_lab(loop=request.param) as lab:
        yield lab


# --- expectations, computed independently ------------------------------------------------------------
def host(name: str) -> MxHost:
    found = WORLD.host(name)
    assert found is not None, name
    return found


def faulty(label: str) -> MxHost:
    return next(h for h in WORLD.provider_hosts("faultymail") if h.name.startswith(f"{label}."))


def cert_names(h: MxHost) -> tuple[str, ...]:
    return tuple(n.rstrip(".") for n in h.cert_names)


def expected_leaf(h: MxHost, key: str | None = None) -> bytes:
    return pki.leaf(SEED, key or h.key, cert_names(h), h.issuer).der


def key_spki(key_label: str) -> bytes:
    return keys.ec_key(SEED, "tls-" + key_label).public_key().public_bytes(DER, SPKI)


def tlsa_hash(mtype: int, data: bytes) -> bytes:
    return {0: lambda d: d, 1: lambda d: hashlib.sha256(d).digest()}.get(
        mtype, lambda d: hashlib.sha512(d).digest()
    )(data)


def spki_of(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(DER, SPKI)


def spec_matches(spec: TlsaSpec, h: MxHost, chain: list[x509.Certificate]) -> bool:
    """Does a DANE-EE (3) or DANE-TA (2) record made from the spec match the presented chain?"""
    if spec.malformed:
        return False
    if spec.usage == 3:
        assert spec.key is not None
        wanted = (
            key_spki(spec.key) if spec.selector == 1 else expected_leaf(h, key=spec.key)
        )  # the record's data, before hashing
        candidates = chain[:1]
    elif spec.usage == 2:
        assert spec.ca is not None
        ca = pki.issuing_ca(SEED, spec.ca)
        wanted = ca.spki_der if spec.selector == 1 else ca.der
        candidates = chain[1:]
    else:
        return False
    for cert in candidates:
        presented = spki_of(cert) if spec.selector == 1 else cert.public_bytes(DER)
        if tlsa_hash(spec.mtype, presented) == tlsa_hash(spec.mtype, wanted):
            return True
    return False


# --- clients ---------------------------------------------------------------------------------------
def unverified() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def openssl_chain(address: str, port: int, servername: str) -> list[x509.Certificate]:
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    out = subprocess.run(
        [OPENSSL, "s_client", "-starttls", "smtp", "-connect", where]
        + ["-servername", servername, "-showcerts"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT * 2,
    ).stdout.decode()
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", out, re.S)
    return [x509.load_pem_x509_certificate(p.encode()) for p in pems]


def connect(address: str, port: int) -> smtplib.SMTP:
    return smtplib.SMTP(address, port, local_hostname="survey.test", timeout=TIMEOUT)


def starttls_leaf(address: str, port: int, sni: str | None = None) -> bytes:
    """The leaf DER after STARTTLS, sending `sni` (smtplib sends none for an IP address)."""
    with connect(address, port) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert smtp.docmd("STARTTLS")[0] == 220
        tls = unverified().wrap_socket(smtp.sock, server_hostname=sni)
        smtp.sock, smtp.file = tls, None
        leaf = tls.getpeercert(binary_form=True)
        assert smtp.ehlo()[0] == 250
        assert not smtp.has_extn("starttls")
        assert smtp.quit()[0] == 221
    assert leaf is not None
    return leaf


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def san(cert: x509.Certificate) -> list[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return ext.value.get_values_for_type(x509.DNSName)


# --- 1. healthy hosts, seen by openssl ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "address"),
    [("mx1.bigdane.lab-net.", "127.25.1.1"), ("mx1.mailnova.lab-net.", "127.25.2.1")],
)
def test_healthy_chain_by_openssl(lab: SmtpLab, name: str, address: str) -> None:
    h = host(name)
    assert address in h.addresses and h.behaviour[address] == "ok"
    chain = openssl_chain(address, lab.port, name.rstrip("."))
    assert len(chain) == 2  # leaf and issuing CA, not the root
    leaf, ca = chain
    assert leaf.public_bytes(DER) == expected_leaf(h)
    assert hashlib.sha256(spki_of(leaf)).digest() == hashlib.sha256(key_spki(h.key)).digest()
    assert leaf.issuer == ca.subject and ca.issuer != ca.subject
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    ca_key.verify(
        leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm)
    )
    assert ca.public_bytes(DER) == pki.issuing_ca(SEED, h.issuer).der
    assert h.tlsa and any(spec_matches(s, h, chain) for s in h.tlsa)
    if "mailnova" in name:  # 3 1 2: SHA-512 of the key
        assert {(s.usage, s.selector, s.mtype) for s in h.tlsa} == {(3, 1, 2)}


# --- 2. smtplib, and SNI on the shared ::1 -----------------------------------------------------------
def test_healthy_leaf_by_smtplib(lab: SmtpLab) -> None:
    h = host("mx1.bigdane.lab-net.")
    with connect("127.25.1.1", lab.port) as smtp:
        code, _ = smtp.ehlo()
        assert code == 250 and smtp.has_extn("starttls")
        assert smtp.starttls(context=unverified())[0] == 220
        assert smtp.sock.getpeercert(binary_form=True) == expected_leaf(h)
        smtp.ehlo()
        assert not smtp.has_extn("starttls")
        assert smtp.noop()[0] == 250 and smtp.rset()[0] == 250
        assert smtp.mail("a@survey.test")[0] == 250
        assert smtp.rcpt("b@bigdane.lab-net")[0] == 250
        assert smtp.data(b"Subject: x\r\n\r\nhello\r\n")[0] == 250
        assert smtp.docmd("FOO")[0] == 502
        assert smtp.quit()[0] == 221


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_shared_v6_address_selects_by_sni(lab: SmtpLab) -> None:
    mx1, mx2 = host("mx1.bigdane.lab-net."), host("mx2.bigdane.lab-net.")
    assert "::1" in mx1.addresses and "::1" in mx2.addresses and "::1" in lab.addresses
    assert starttls_leaf("::1", lab.port, "mx1.bigdane.lab-net") == expected_leaf(mx1)
    got = starttls_leaf("::1", lab.port, "mx2.bigdane.lab-net")
    assert got == expected_leaf(mx2) != expected_leaf(mx1)
    # mx2 publishes 3 0 1: the SHA-256 of the whole certificate
    spec = next(s for s in mx2.tlsa if s.selector == 0)
    assert hashlib.sha256(got).digest() == hashlib.sha256(expected_leaf(mx2, spec.key)).digest()
    assert starttls_leaf("::1", lab.port) == expected_leaf(mx1)  # no SNI: the first host


def a_self_host() -> MxHost:
    for tld in TLDS:
        for index, label in WORLD.domain_names(tld):
            domain = WORLD.domain(tld.label, index)
            if domain.mail in ("self", "self_dane") and label.isalnum():
                return WORLD.self_host(domain)
    raise AssertionError("no self-hosted domain in the tiny world")


def test_pool_address_selects_by_sni(lab: SmtpLab) -> None:
    h = a_self_host()
    (address,) = h.addresses
    assert address in SELF_MX_POOL and address in lab.addresses
    name = h.name.rstrip(".")
    assert starttls_leaf(address, lab.port, name) == expected_leaf(h)
    generic = x509.load_der_x509_certificate(starttls_leaf(address, lab.port))
    assert name not in san(generic)  # no SNI: a certificate for no customer
    # a provider's name on a pool address: that certificate does not live here
    other = starttls_leaf(address, lab.port, "mx1.bigdane.lab-net")
    assert other == generic.public_bytes(DER) != expected_leaf(host("mx1.bigdane.lab-net."))


# --- 3. faultymail ---------------------------------------------------------------------------------
def test_no_starttls(lab: SmtpLab) -> None:
    (address,) = faulty("notls").addresses
    with connect(address, lab.port) as smtp:
        assert smtp.ehlo()[0] == 250
        assert not smtp.has_extn("starttls")
        assert 500 <= smtp.docmd("STARTTLS")[0] < 600


def test_starttls_454(lab: SmtpLab) -> None:
    (address,) = faulty("tls454").addresses
    with connect(address, lab.port) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert smtp.docmd("STARTTLS")[0] == 454


def test_handshake_fails(lab: SmtpLab) -> None:
    (address,) = faulty("badhs").addresses
    smtp = connect(address, lab.port)
    try:
        smtp.ehlo()
        with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
            smtp.starttls(context=unverified())
    finally:
        smtp.close()


def test_tarpit(lab: SmtpLab) -> None:
    (address,) = faulty("tarpit").addresses
    with socket.create_connection((address, lab.port), timeout=1.0) as s:
        with pytest.raises(TimeoutError):
            s.recv(100)  # no banner
        s.settimeout(3.0)
        assert s.recv(100) == b""  # closed after tarpit_seconds=2


def test_refused(lab: SmtpLab) -> None:
    (address,) = faulty("down").addresses
    assert address not in lab.addresses
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, lab.port), timeout=TIMEOUT).close()


def test_halfbad(lab: SmtpLab) -> None:
    h = faulty("halfbad")
    first, second = h.addresses
    assert starttls_leaf(first, lab.port) == expected_leaf(h)
    with connect(second, lab.port) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("starttls")


def test_mismatch(lab: SmtpLab) -> None:
    h = faulty("mismatch")
    chain = openssl_chain(h.addresses[0], lab.port, h.name.rstrip("."))
    assert len(chain) == 2
    assert spki_of(chain[0]) == key_spki(h.key)
    assert h.key not in {s.key for s in h.tlsa}
    assert not any(spec_matches(s, h, chain) for s in h.tlsa)


def test_taname(lab: SmtpLab) -> None:
    h = faulty("taname")
    chain = openssl_chain(h.addresses[0], lab.port, h.name.rstrip("."))
    assert san(chain[0]) == ["mail.elsewhere.lab-net"]
    assert h.name.rstrip(".") not in san(chain[0])
    assert [(s.usage, s.selector, s.mtype) for s in h.tlsa] == [(2, 1, 1)]
    assert spec_matches(h.tlsa[0], h, chain)  # the TA matches; only the name is wrong


# --- switching dates ---------------------------------------------------------------------------------
def test_set_world_switches_keys_in_place(lab: SmtpLab) -> None:
    early = World(SEED, "tiny", dt.date(2026, 11, 4))  # day 3: before rollgood's switch
    h_now, h_early = host("mx1.rollgood.lab-net."), early.host("mx1.rollgood.lab-net.")
    assert h_early is not None and h_now.key != h_early.key
    address, before = h_now.addresses[0], list(lab.addresses)
    with connect(address, lab.port) as held:  # a session open across the switch
        held.ehlo()
        lab.set_world(early)
        try:
            assert lab.addresses == before
            leaf = x509.load_der_x509_certificate(starttls_leaf(address, lab.port))
            assert spki_of(leaf) == key_spki(h_early.key)
        finally:
            lab.set_world(WORLD)
        assert held.noop()[0] == 250
    leaf = x509.load_der_x509_certificate(starttls_leaf(address, lab.port))
    assert spki_of(leaf) == key_spki(h_now.key)


class _WithoutPlainmailMx1(World):
    """A world where one address disappears, to exercise a rebind."""

    def mx_hosts(self) -> list[MxHost]:
        return [h for h in super().mx_hosts() if h.name != "mx1.plainmail.lab-net."]


def test_set_world_rebinds_when_addresses_change() -> None:
    (address,) = host("mx1.plainmail.lab-net.").addresses
    with running_lab() as lab:
        lab.set_world(_WithoutPlainmailMx1(SEED, "tiny", WORLD.date))
        assert address not in lab.addresses
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, lab.port), timeout=TIMEOUT).close()
        lab.set_world(WORLD)
        assert address in lab.addresses
        with connect(address, lab.port) as smtp:
            assert smtp.ehlo()[0] == 250


# --- 4. determinism --------------------------------------------------------------------------------
def test_two_labs_present_identical_leaves() -> None:
    leaves = []
    for _ in range(2):
        for cached in (pki.leaf, pki.issuing_ca, pki.root_ca, keys.ec_key):
            cached.cache_clear()  # make the second lab derive everything afresh
        with running_lab() as lab:
            leaves.append(starttls_leaf("127.25.1.1", lab.port))
    assert leaves[0] == leaves[1] == expected_leaf(host("mx1.bigdane.lab-net."))


# --- 5. binding ----------------------------------------------------------------------------------
def test_second_lab_on_same_addresses_fails(lab: SmtpLab) -> None:
    second = SmtpLab(WORLD, lab.port)
    with pytest.raises(OSError) as caught:
        asyncio.run(second.start())
    assert f"{lab.addresses[0]}:{lab.port}" in str(caught.value)
    assert "\n" not in str(caught.value)
    with connect("127.25.1.1", lab.port) as smtp:  # the first lab still serves
        assert smtp.ehlo()[0] == 250


def test_failed_start_closes_what_it_opened() -> None:
    port = free_port()
    with socket.socket() as blocker:
        blocker.bind((SELF_MX_POOL[-1], port))
        blocker.listen()
        lab = SmtpLab(WORLD, port)
        with pytest.raises(OSError, match=re.escape(f"{SELF_MX_POOL[-1]}:{port}")):
            asyncio.run(lab.start())
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.25.1.1", port), timeout=TIMEOUT).close()
    with running_lab(port=port) as again, connect("127.25.1.1", again.port) as smtp:
        assert smtp.ehlo()[0] == 250
