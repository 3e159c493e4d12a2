"""The STARTTLS capture client against real servers: hostile ones written here, and the lab.

Each hostile behaviour listens on its own loopback address (one port for all, as MX hosts share
port 25), served by a real asyncio server in a thread of its own; TLS where there is TLS is real
(certificates from the lab's PKI, checked byte for byte). Each hostile server must give one
classified row within the deadline, and a day's captures must not notice them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

from survey_assets import reasons as R
from survey_assets.lab import pki
from survey_assets.lab import tlsa as lab_tlsa
from survey_assets.lab import world as W
from survey_assets.smtp import client as C
from survey_assets.smtp.client import Capture, CaptureSettings, Target, capture, capture_all
from survey_assets_tests.conftest import free_port, tiny_lab

DEADLINE = 1.5
SLACK = 0.75  # scheduling on a busy 2-core machine
HOSTILE_NET = "127.66.0."
CERT_NAME = "mx.hostile.test"
HANDSHAKE_FAILURE_ALERT = bytes.fromhex("15030300020228")  # TLS alert: fatal, handshake_failure

Handler = Callable[["Hostile", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# --- the hostile servers ----------------------------------------------------------------------------
async def _line(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readline(), 10)


async def _say(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def _to_starttls(h: Hostile, reader, writer, starttls: bytes = b"220 2.0.0 go\r\n") -> None:
    """Greeting, EHLO with STARTTLS offered, and the given reply to STARTTLS."""
    await _say(writer, b"220 mx.hostile.test ESMTP\r\n")
    h.ehlo.append((await _line(reader)).decode().strip())
    await _say(writer, b"250-mx.hostile.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
    await _line(reader)
    await _say(writer, starttls)


async def healthy(h: Hostile, reader, writer) -> None:
    await _to_starttls(h, reader, writer)
    await writer.start_tls(h.tls)
    h.commands.append((await _line(reader)).decode().strip())
    await _say(writer, b"221 2.0.0 bye\r\n")


async def silent(h: Hostile, reader, writer) -> None:
    await asyncio.sleep(30)


async def endless(h: Hostile, reader, writer) -> None:
    await _say(writer, b"220 mx.hostile.test ESMTP\r\n")
    await _line(reader)
    while True:
        await _say(writer, b"250-" + b"x" * 60 + b"\r\n")


async def drip(h: Hostile, reader, writer) -> None:
    for byte in b"220 mx.hostile.test ESMTP, one byte a second\r\n":
        await _say(writer, bytes([byte]))
        await asyncio.sleep(1.0)


async def not_utf8(h: Hostile, reader, writer) -> None:
    await _say(writer, b"220 mx.hostile.test \xff\xfe\xc0 ESMTP\r\n")
    await asyncio.sleep(5)


async def not_smtp(h: Hostile, reader, writer) -> None:
    await _say(writer, b"HTTP/1.1 400 Bad Request\r\n\r\n")


async def busy(h: Hostile, reader, writer) -> None:
    await _say(writer, b"421 4.3.2 mx.hostile.test busy, try later\r\n")


async def tls454(h: Hostile, reader, writer) -> None:
    await _to_starttls(h, reader, writer, b"454 4.7.0 TLS not available now\r\n")
    await asyncio.sleep(5)


async def no_starttls(h: Hostile, reader, writer) -> None:
    await _say(writer, b"220 mx.hostile.test ESMTP\r\n")
    await _line(reader)
    await _say(writer, b"250-mx.hostile.test\r\n250 8BITMIME\r\n")
    h.commands.append((await _line(reader)).decode().strip())
    await _say(writer, b"221 bye\r\n")


async def alert(h: Hostile, reader, writer) -> None:
    await _to_starttls(h, reader, writer)
    await reader.read(65536)  # the ClientHello
    await _say(writer, HANDSHAKE_FAILURE_ALERT)
    await asyncio.sleep(2)


async def reset(h: Hostile, reader, writer) -> None:
    await _to_starttls(h, reader, writer)
    await reader.read(65536)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # RST, not FIN


def _record(content_type: int, body: bytes) -> bytes:
    return bytes([content_type]) + b"\x03\x03" + struct.pack(">H", len(body)) + body


def _handshake(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


async def bad_certificate(h: Hostile, reader, writer) -> None:
    """A TLS 1.2 ServerHello, then a Certificate message whose certificate is not X.509."""
    await _to_starttls(h, reader, writer)
    await reader.read(65536)
    renegotiation_info = b"\xff\x01\x00\x01\x00"  # OpenSSL 3 refuses a server without it
    hello = (b"\x03\x03" + os.urandom(32) + b"\x00" + b"\xc0\x2b" + b"\x00"
             + struct.pack(">H", len(renegotiation_info)) + renegotiation_info)  # fmt: skip
    junk = b"\x30\x03\x02\x01\x01"  # a SEQUENCE holding an INTEGER: DER, not a certificate
    certs = len(junk).to_bytes(3, "big") + junk
    certificate = len(certs).to_bytes(3, "big") + certs
    await _say(writer, _record(22, _handshake(2, hello) + _handshake(11, certificate)))
    await asyncio.sleep(2)


async def inject(h: Hostile, reader, writer) -> None:
    """Plaintext after the STARTTLS reply (the CVE-2011-0411 pattern): it must not be read as TLS."""
    await _to_starttls(h, reader, writer, b"220 2.0.0 go\r\n250 injected\r\n")
    await asyncio.sleep(2)


async def greylist(h: Hostile, reader, writer) -> None:
    """421 to the first session, a healthy one after."""
    h.greylisted += 1
    if h.greylisted == 1:
        await _say(writer, b"421 4.7.0 greylisted, come back later\r\n")
        return
    await healthy(h, reader, writer)


async def slow(h: Hostile, reader, writer) -> None:
    """A healthy server that takes its time: counts sessions open at once."""
    h.open_now += 1
    h.most_open = max(h.most_open, h.open_now)
    try:
        await asyncio.sleep(0.25)
        await healthy(h, reader, writer)
    finally:
        h.open_now -= 1


BEHAVIOURS: dict[str, Handler] = {
    "healthy": healthy, "silent": silent, "endless": endless, "drip": drip,
    "not_utf8": not_utf8, "not_smtp": not_smtp, "busy": busy, "tls454": tls454,
    "no_starttls": no_starttls, "alert": alert, "reset": reset,
    "bad_certificate": bad_certificate, "inject": inject, "greylist": greylist,
    "slow": slow, "slow2": slow, "slow3": slow, "slow4": slow,
}  # fmt: skip
ADDRESS = {name: f"{HOSTILE_NET}{i + 1}" for i, name in enumerate(BEHAVIOURS)}


class Hostile:
    """Every behaviour on its own loopback address, one port, in a thread with its own loop."""

    def __init__(self, certdir) -> None:
        self.port = free_port(ADDRESS["healthy"])
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers: list[asyncio.AbstractServer] = []
        self.tasks: set[asyncio.Task] = set()
        self.connections: dict[str, int] = dict.fromkeys(BEHAVIOURS, 0)
        self.ehlo: list[str] = []
        self.commands: list[str] = []
        self.greylisted = self.open_now = self.most_open = 0
        chain = [pki.leaf(1, "hostile", (CERT_NAME,), W.ISSUER_A), pki.issuing_ca(1, W.ISSUER_A)]
        self.chain_der = [c.der for c in chain]
        (certdir / "chain.pem").write_bytes(chain[0].pem() + chain[1].pem())
        (certdir / "key.pem").write_bytes(chain[0].key_pem())
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(certdir / "chain.pem", certdir / "key.pem")

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _start(self) -> None:
        for name, handler in BEHAVIOURS.items():
            self.servers.append(
                await asyncio.start_server(self._session(name, handler), ADDRESS[name], self.port)
            )

    def _session(self, name: str, handler: Handler):
        async def session(reader, writer) -> None:
            self.connections[name] += 1
            self.tasks.add(asyncio.current_task())
            try:
                await handler(self, reader, writer)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
                pass
            finally:
                self.tasks.discard(asyncio.current_task())
                writer.close()

        return session

    async def _stop(self) -> None:
        for server in self.servers:
            server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def __enter__(self) -> Hostile:
        self.thread.start()
        self._run(self._start())
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self._run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    with Hostile(tmp_path_factory.mktemp("hostile")) as servers:
        yield servers


def settings(port: int, **changes) -> CaptureSettings:
    base = dict(port=port, deadline=DEADLINE, retries_4xx=0, retry_delay=0.2,
                ehlo_name="survey-test.lab-net")  # fmt: skip
    return CaptureSettings(**{**base, **changes})


def run(target: Target, s: CaptureSettings) -> Capture:
    return asyncio.run(capture(target, s))


def at(behaviour: str) -> Target:
    return Target(CERT_NAME, ADDRESS[behaviour])


# --- one session, healthy ----------------------------------------------------------------------------
def test_healthy_session_captures_the_chain(hostile):
    before = len(hostile.commands)
    cap = run(at("healthy"), settings(hostile.port))
    assert cap.ok, cap
    assert cap.chain == hostile.chain_der  # leaf and issuing CA, byte for byte, in order
    assert cap.tls_version in ("TLSv1.2", "TLSv1.3") and cap.cipher
    assert cap.transcript == [("banner", 220), ("EHLO", 250), ("STARTTLS", 220), ("QUIT", 221)]
    assert cap.starttls_offered and cap.attempts == 1 and cap.stage == "quit"
    assert hostile.ehlo[-1] == "EHLO survey-test.lab-net"  # the identifying name
    assert hostile.commands[before:] == ["QUIT"]  # said over TLS
    assert 0 < cap.connect_seconds <= cap.total_seconds and cap.tls_seconds > 0
    assert cap.host == CERT_NAME + "."
    row = cap.as_row()
    assert row["transcript"][0] == {"command": "banner", "code": 220} and row["reason"] is None


# --- hostile servers: each its own classified row within the deadline --------------------------------
HOSTILE_CASES = {
    # behaviour: (reason, stage, detail fragment)
    "silent": ("timeout", "banner", "deadline"),  # a tarpit: no greeting ever
    "drip": ("timeout", "banner", "deadline"),
    "endless": ("smtp_bad_reply", "ehlo", ""),
    "not_utf8": ("smtp_bad_reply", "banner", "not UTF-8"),
    "not_smtp": ("smtp_bad_reply", "banner", "not an SMTP reply"),
    "busy": ("smtp_rejected", "banner", "421"),
    "tls454": ("starttls_refused", "starttls", "454"),
    "no_starttls": ("starttls_not_offered", "ehlo", "STARTTLS"),
    "alert": ("tls_handshake_failed", "tls", "HANDSHAKE_FAILURE"),
    "reset": ("tls_handshake_failed", "tls", ""),
    "bad_certificate": ("tls_handshake_failed", "tls", "ASN1"),
    "inject": ("smtp_bad_reply", "starttls", "after the STARTTLS reply"),
}


@pytest.mark.parametrize("behaviour", list(HOSTILE_CASES))
def test_hostile_server(hostile, behaviour):
    reason, stage, fragment = HOSTILE_CASES[behaviour]
    start = time.monotonic()
    cap = run(at(behaviour), settings(hostile.port))
    elapsed = time.monotonic() - start
    assert (cap.reason, cap.stage) == (reason, stage), cap
    assert fragment in cap.detail, cap.detail
    R.check([cap.reason])
    assert cap.chain == [] and cap.attempts == 1
    assert elapsed < DEADLINE + SLACK, elapsed
    assert cap.bytes_read <= C.CaptureSettings().max_bytes + 4096


def test_reset_is_named(hostile):
    cap = run(at("reset"), settings(hostile.port))
    assert "reset" in cap.detail or "closed" in cap.detail or "EOF" in cap.detail, cap.detail


def test_byte_cap(hostile):
    cap = run(at("endless"), settings(hostile.port, max_bytes=5000, max_reply_lines=10**6))
    assert cap.reason == "smtp_bad_reply" and "5000 bytes" in cap.detail
    assert 5000 < cap.bytes_read <= 5000 + 4096
    lines = run(at("endless"), settings(hostile.port, max_reply_lines=50))
    assert lines.reason == "smtp_bad_reply" and "50 lines" in lines.detail


def test_4xx_is_retried_later(hostile):
    s = settings(hostile.port, retries_4xx=1, retry_delay=0.3)
    cap = run(at("busy"), s)
    assert (cap.reason, cap.attempts, cap.temporary) == ("smtp_rejected", 2, True)
    assert cap.transcript == [("banner", 421), ("banner", 421)]
    assert cap.total_seconds >= 0.3
    cap = run(at("tls454"), s)
    assert (cap.reason, cap.attempts) == ("starttls_refused", 2)
    # 5xx-free greylisting: the second session succeeds.
    hostile.greylisted = 0
    cap = run(at("greylist"), s)
    assert cap.ok and cap.attempts == 2 and cap.chain == hostile.chain_der
    assert cap.transcript[0] == ("banner", 421) and cap.transcript[-1] == ("QUIT", 221)
    # No retry for what is not temporary.
    assert run(at("no_starttls"), s).attempts == 1


def test_connection_refused():
    port = free_port("127.66.1.1")  # nothing listens there
    cap = run(Target(CERT_NAME, "127.66.1.1"), settings(port))
    assert (cap.reason, cap.stage) == ("connect_failed", "connect")


# --- policy: never contacted --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "changes", "reason"),
    [
        (Target(CERT_NAME, ADDRESS["healthy"]), {"opt_out_names": frozenset({"hostile.test."})},
         "refused_by_policy"),
        (Target(CERT_NAME, ADDRESS["healthy"]), {"opt_out_addresses": frozenset({"127.66.0.0/24"})},
         "refused_by_policy"),
        (Target(CERT_NAME, ADDRESS["healthy"]), {"networks": "global"}, "address_not_allowed"),
        (Target(CERT_NAME, "10.0.0.1"), {}, "address_not_allowed"),
        (Target(CERT_NAME, "::ffff:10.0.0.1"), {}, "address_not_allowed"),
        (Target(CERT_NAME, "fe80::1%lo"), {}, "address_not_allowed"),
        (Target(CERT_NAME, "not-an-address"), {}, "address_not_allowed"),
        (Target("under_score..hostile.test", ADDRESS["healthy"]), {}, "bad_host_name"),
        (Target("-bad.hostile.test", ADDRESS["healthy"]), {}, "bad_host_name"),
        (Target("a" * 64 + ".hostile.test", ADDRESS["healthy"]), {}, "bad_host_name"),
        (Target("localhost", ADDRESS["healthy"]), {}, "bad_host_name"),
        (Target("mx.h\u00f6stile.test", ADDRESS["healthy"]), {}, "bad_host_name"),
    ],
)  # fmt: skip
def test_not_contacted(hostile, target, changes, reason):
    before = hostile.connections["healthy"]
    cap = run(target, settings(hostile.port, **changes))
    assert (cap.reason, cap.stage, cap.attempts) == (reason, "policy", 0), cap
    assert hostile.connections["healthy"] == before


@pytest.mark.parametrize(
    ("address", "networks", "allowed"),
    [
        ("127.0.0.1", "loopback", True), ("127.25.8.1", "loopback", True), ("::1", "loopback", True),
        ("::ffff:127.0.0.1", "loopback", True), ("192.0.2.1", "loopback", False),
        ("8.8.8.8", "loopback", False), ("8.8.8.8", "global", True),
        ("2001:4860:4860::8888", "global", True), ("127.0.0.1", "global", False),
        ("10.1.2.3", "global", False), ("172.16.0.1", "global", False),
        ("192.168.1.1", "global", False), ("100.64.0.1", "global", False),
        ("169.254.0.1", "global", False), ("192.0.2.1", "global", False),
        ("198.18.0.1", "global", False), ("224.0.0.1", "global", False),
        ("240.0.0.1", "global", False), ("0.0.0.0", "global", False), ("::", "global", False),
        ("fc00::1", "global", False), ("fe80::1", "global", False), ("2001:db8::1", "global", False),
        ("ff02::1", "global", False), ("::ffff:10.0.0.1", "global", False),
    ],
)  # fmt: skip
def test_address_policy(address, networks, allowed):
    assert C.address_allowed(address, networks) is allowed


def test_bad_settings_fail_loudly():
    with pytest.raises(ValueError, match="networks"):
        asyncio.run(capture_all([], CaptureSettings(networks="everything")))
    with pytest.raises(ValueError, match="opt-out"):
        asyncio.run(capture_all([], CaptureSettings(opt_out_addresses=frozenset({"nope"}))))


# --- concurrency limits ---------------------------------------------------------------------------------
def test_per_address_limit(hostile):
    targets = [Target(f"mx{i}.hostile.test", ADDRESS["slow"]) for i in range(4)]
    for limit in (1, 3):
        hostile.most_open = 0
        caps = asyncio.run(capture_all(targets, settings(hostile.port, per_address=limit)))
        assert all(c.ok for c in caps), caps
        assert hostile.most_open == limit


def test_per_provider_limit(hostile):
    slow = [ADDRESS[n] for n in ("slow", "slow2", "slow3", "slow4")]
    targets = [Target(f"mx{i}.hostile.test", a, provider="one") for i, a in enumerate(slow)]
    hostile.most_open = 0
    caps = asyncio.run(capture_all(targets, settings(hostile.port, per_provider=2, per_address=4)))
    assert all(c.ok for c in caps)
    assert hostile.most_open == 2
    hostile.most_open = 0
    asyncio.run(capture_all(targets, settings(hostile.port, per_provider=2, max_in_flight=1)))
    assert hostile.most_open == 1


def test_one_row_per_host_and_address(hostile):
    targets = [at("healthy"), Target(CERT_NAME.upper() + ".", ADDRESS["healthy"]), at("busy")]
    caps = asyncio.run(capture_all(targets, settings(hostile.port)))
    assert [(c.host, c.address) for c in caps] == [
        (CERT_NAME + ".", ADDRESS["healthy"]), (CERT_NAME + ".", ADDRESS["busy"]),
    ]  # fmt: skip


# --- a day of captures with hostile servers in it: the rest are unaffected ----------------------------
def test_hostile_servers_do_not_disturb_the_rest(hostile, tmp_path):
    date = W.date_of(W.Day.BOTCH)
    with tiny_lab(tmp_path, date, tarpit_seconds=5) as lab:
        w = W.World(W.DEFAULT_SEED, "tiny", date)
        healthy = [h for h in w.mx_hosts() if h.tlsa and set(h.behaviour.values()) == {"ok"}]
        lab_targets = [Target(h.name, a) for h in healthy for a in h.addresses]
        s = settings(lab.smtp_port)
        hostile_s = settings(hostile.port)

        async def day() -> tuple[list[Capture], list[Capture]]:
            return await asyncio.gather(
                capture_all(lab_targets, s),
                capture_all([at(b) for b in HOSTILE_CASES], hostile_s),
            )

        start = time.monotonic()
        good, bad = asyncio.run(day())
        assert time.monotonic() - start < DEADLINE + 2 * SLACK
    assert [c.reason for c in bad] == [HOSTILE_CASES[b][0] for b in HOSTILE_CASES]
    assert all(c.ok for c in good), [(c.host, c.address, c.reason) for c in good if not c.ok]
    for cap, target in zip(good, lab_targets, strict=True):
        host = w.host(target.host)
        assert cap.chain == [c.der for c in lab_tlsa.host_chain(w.seed, host)], target


# --- the lab: every address of every host with TLSA, IPv4 and IPv6, SNI -----------------------------------
def test_lab_addresses_behave_as_the_truth_says(tmp_path):
    from survey_assets.lab.truth import BEHAVIOUR_REASON, truth_rows

    date = W.date_of(W.Day.ISSUER_CHANGE)
    w = W.World(W.DEFAULT_SEED, "tiny", date)
    rows = [r for r in truth_rows(w) if r["kind"] == "address"]
    with tiny_lab(tmp_path, date, tarpit_seconds=3) as lab:
        caps = asyncio.run(capture_all([Target(r["name"], r["address"]) for r in rows],
                                       settings(lab.smtp_port, retries_4xx=1)))  # fmt: skip
    assert len(caps) == len(rows) >= 30
    assert any(":" in r["address"] for r in rows)  # IPv6 (::1) is among them
    for row, cap in zip(rows, caps, strict=True):
        expected = None if row["smtp"] == "ok" else BEHAVIOUR_REASON[row["smtp"]]
        assert cap.reason == expected, (row, cap)
        if cap.ok:
            host = w.host(row["name"])
            assert cap.chain == [c.der for c in lab_tlsa.host_chain(w.seed, host)], row
    # SNI chooses the certificate on the shared ::1: two hosts, two different leaves.
    v6 = {c.host: c.chain[0] for c in caps if c.address == "::1"}
    assert len(v6) == 2 and len(set(v6.values())) == 2


def test_capture_row_times_are_sane(hostile):
    cap = run(at("healthy"), settings(hostile.port))
    started = dt.datetime.fromisoformat(cap.started)
    assert abs((dt.datetime.now(dt.UTC) - started).total_seconds()) < 30
