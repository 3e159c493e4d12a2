"""The scanner's DNS client, over real sockets on loopback: against the lab and a hostile server.

No pytest-asyncio: each test runs its coroutine with `asyncio.run` (one test under uvloop).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import struct
import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T
import pytest

from survey_assets.dns.client import Answer, ClientSettings, DnsClient
from survey_assets.lab import world as W
from survey_assets.lab.serve import Lab
from survey_assets_tests.conftest import free_port, tiny_lab

DATE = dt.date(2026, 11, 9)
WORLD = W.World(W.DEFAULT_SEED, "tiny", DATE)
NAMESERVERS = WORLD.nameservers()
HOSTILE = "127.77.0.1"
OTHER = "127.77.0.2"  # a second address, to answer "from the wrong place"
# Our ID, QR without TC, one question whose name is nonsense: it cannot parse.
GARBAGE = b"\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00" + b"\xff" * 30
FAST = ClientSettings(timeout=0.3, retries=1, backoff=0.05, tcp_timeout=0.5)


def run(coro):
    return asyncio.run(coro)


def domain_of(provider: str, *, signed: bool | None = None, mail: bool = False) -> W.Domain:
    for tld in W.TLDS:
        for i, _ in WORLD.domain_names(tld):
            d = WORLD.domain(tld.label, i)
            if d.dns != provider or d.fault is not None:
                continue
            if (signed is None or d.signed == signed) and (not mail or d.mail != "none"):
                return d
    raise AssertionError(f"no domain served by {provider}")


# --- the lab -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    with tiny_lab(tmp_path_factory.mktemp("lab"), DATE) as running:
        yield running


def ns(lab: Lab, host: str) -> tuple[str, int]:
    return NAMESERVERS[host][0], lab.dns_port


def test_mx_at_the_resolver_is_signed(lab: Lab) -> None:
    domain = domain_of("dnshost", signed=True, mail=True)

    async def main() -> Answer:
        async with DnsClient([(W.RESOLVER_ADDRESS, lab.dns_port)]) as client:
            return await client.query(domain.name, "MX")

    answer = run(main())
    assert answer.error is None and answer.rcode == dns.rcode.NOERROR, answer
    assert answer.transport == "udp" and answer.attempts == 1
    assert answer.qname == dns.name.from_text(domain.name) and answer.qtype == T.MX
    assert answer.server == f"{W.RESOLVER_ADDRESS}@{lab.dns_port}"
    assert any(r.rdtype == T.MX for r in answer.message.answer)
    assert any(r.rdtype == T.RRSIG and r.covers == T.MX for r in answer.message.answer)
    assert answer.sent.flags & dns.flags.CD and answer.sent.flags & dns.flags.RD
    assert answer.sent.ednsflags & dns.flags.DO and answer.sent.payload == 1232
    assert answer.wire and dns.message.from_wire(answer.wire).id == answer.message.id


def test_two_thousand_at_once(lab: Lab) -> None:
    domain = domain_of("dnshost")
    names = [dns.name.from_text(f"q{i}.{domain.name}") for i in range(2000)]
    # The lab's one socket drops part of a 2,000-query burst: short attempts, several retries.
    settings = ClientSettings(timeout=1.0, retries=6, backoff=0.1)

    async def main() -> list[Answer]:
        async with DnsClient([(W.RESOLVER_ADDRESS, lab.dns_port)], settings) as client:
            return await asyncio.gather(*(client.query(n, "A", dnssec=False) for n in names))

    answers = run(main())
    assert len(answers) == len(names)
    assert [a.qname for a in answers] == names
    for a in answers:
        assert a.error is None, a
        assert a.message.question[0].name == a.qname and a.message.question[0].rdtype == T.A
    assert not lab.errors


def test_truncated_udp_goes_to_tcp(lab: Lab) -> None:
    domain = domain_of("tinyudp")

    async def main() -> tuple[Answer, Answer]:
        async with DnsClient([], FAST) as client:
            return (
                await client.query(domain.name, "SOA", server=ns(lab, "ns1.tinyudp.lab-net.")),
                await client.query(domain.name, "SOA", server=ns(lab, "ns2.tinyudp.lab-net.")),
            )

    good, bad = run(main())
    assert good.error is None and good.transport == "tcp" and good.attempts == 2, good
    assert good.rcode == dns.rcode.NOERROR and not good.message.flags & dns.flags.TC
    assert any(r.rdtype == T.SOA for r in good.message.answer)
    assert bad.error == "tcp_failed" and bad.transport == "tcp" and bad.message is None, bad
    assert bad.wire is not None  # the truncated UDP answer, as evidence


def test_timeout_after_every_attempt(lab: Lab) -> None:
    settings = ClientSettings(timeout=0.3, retries=2, backoff=0.1)
    expected = 0.3 * 3 + 0.1 + 0.2

    async def main() -> Answer:
        async with DnsClient([ns(lab, "ns1.slowdns.lab-net.")], settings) as client:
            return await client.query(domain_of("slowdns").name, "SOA")

    answer = run(main())
    assert answer.error == "timeout" and answer.message is None and answer.attempts == 3
    assert expected - 0.01 <= answer.elapsed <= expected + 0.5, answer.elapsed


def test_no_edns_fallback(lab: Lab) -> None:
    domain = domain_of("oldbind")

    async def main() -> Answer:
        async with DnsClient([ns(lab, "ns1.oldbind.lab-net.")], FAST) as client:
            return await client.query(domain.name, "SOA")

    answer = run(main())
    assert answer.error is None and answer.rcode == dns.rcode.NOERROR, answer
    assert answer.edns_fallback and answer.attempts == 2 and answer.transport == "udp"
    assert answer.sent.edns < 0 and answer.message.edns < 0


# --- a hostile server ----------------------------------------------------------------------------------
class Hostile:
    """UDP and TCP on 127.77.0.1: the first label of the question picks the misbehaviour."""

    def __init__(self) -> None:
        self.port = free_port(HOSTILE)
        self.packets = 0
        self.fuzz: list[bytes] = []  # responses for "fuzz" queries, in order
        self.copy_id = True  # give fuzz responses the query's ID, so the parser is reached
        self.udp = self.other = None
        self.tcp: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> Hostile:
        loop = asyncio.get_running_loop()
        server = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr) -> None:
                server.packets += 1
                for target, reply in server.replies(data):
                    (self.transport if target == HOSTILE else server.other).sendto(reply, addr)

        self.udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=(HOSTILE, self.port))
        self.other, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(OTHER, 0)
        )
        self.tcp = await asyncio.start_server(self.serve_tcp, HOSTILE, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.udp.close()
        self.other.close()
        self.tcp.close()

    def replies(self, data: bytes) -> list[tuple[str, bytes]]:
        query = dns.message.from_wire(data)
        kind = query.question[0].name.labels[0].decode()
        good = dns.message.make_response(query)
        good.set_rcode(dns.rcode.NXDOMAIN)
        wire = good.to_wire()
        wrong_id = struct.pack("!H", (query.id + 1) % 65536) + wire[2:]
        other_q = dns.message.make_response(dns.message.make_query("elsewhere.test.", "A"))
        other_q.id = query.id
        tc = dns.message.make_response(query)
        tc.flags |= dns.flags.TC
        cut = tc.to_wire() + b"\x00\x06"  # TC set and a record cut in its middle
        cut = cut[:4] + b"\x00\x01\x00\x01" + cut[8:]  # ANCOUNT 1
        return {
            "ok": [(HOSTILE, wire)],
            "wrongid": [(HOSTILE, wrong_id)],
            "wrongq": [(HOSTILE, other_q.to_wire())],
            "fromother": [(OTHER, wire)],
            "noise": [
                (HOSTILE, wrong_id),
                (HOSTILE, other_q.to_wire()),
                (OTHER, wire),
                (HOSTILE, b"\x00"),
                (HOSTILE, wire),
            ],  # fmt: skip
            "garbage": [(HOSTILE, data[:2] + GARBAGE)],
            "truncated": [(HOSTILE, wire[: len(wire) - 3])],
            "tcclose": [(HOSTILE, tc.to_wire())],
            "tchuge": [(HOSTILE, tc.to_wire())],
            "tccut": [(HOSTILE, cut)],
            "tcgarbage": [(HOSTILE, tc.to_wire())],
            "formerr": [(HOSTILE, _formerr(query))],
            "fuzz": [(HOSTILE, self.fuzz_reply(data))] if self.fuzz else [],
        }.get(kind, [])

    def fuzz_reply(self, query: bytes) -> bytes:
        body = self.fuzz.pop(0)
        return query[:2] + body[2:] if self.copy_id and len(body) >= 2 else body

    async def serve_tcp(self, reader: asyncio.StreamReader, writer) -> None:
        try:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            query = dns.message.from_wire(await reader.readexactly(length))
            kind = query.question[0].name.labels[0].decode()
            if kind == "tchuge":
                writer.write(b"\xff\xff" + b"\x00" * 10)
                await writer.drain()
                await asyncio.sleep(5)
            elif kind == "tcgarbage":
                junk = query.id.to_bytes(2, "big") + b"\xff" * 30
                writer.write(struct.pack("!H", len(junk)) + junk)
            elif kind == "tccut":
                wire = dns.message.make_response(query).to_wire()
                writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:  # "tcclose" and everything else: closed at once
            writer.close()


def _formerr(query: dns.message.Message) -> bytes:
    response = dns.message.make_response(query)
    response.use_edns(False)
    response.set_rcode(dns.rcode.FORMERR)
    return response.to_wire()


# kind -> (error, transport, the most seconds it may take with FAST)
CASES = {
    "ok": (None, "udp", 0.2),
    "noise": (None, "udp", 0.2),
    "wrongid": ("timeout", "udp", 0.75),
    "wrongq": ("timeout", "udp", 0.75),
    "fromother": ("timeout", "udp", 0.75),
    "garbage": ("malformed", "udp", 0.3),
    "truncated": ("malformed", "udp", 0.3),
    "tcclose": ("tcp_failed", "tcp", 0.3),
    "tchuge": ("tcp_failed", "tcp", 0.75),
    "tcgarbage": ("malformed", "tcp", 0.3),
    "tccut": (None, "tcp", 0.3),
    "formerr": ("formerr", "udp", 0.3),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_hostile_server(kind: str) -> None:
    error, transport, bound = CASES[kind]

    async def main() -> Answer:
        async with Hostile() as hostile, DnsClient([(HOSTILE, hostile.port)], FAST) as client:
            return await client.query(f"{kind}.hostile.test.", "A")

    started = time.monotonic()
    answer = run(main())
    assert time.monotonic() - started < bound + 0.5
    assert answer.error == error and answer.transport == transport, answer
    assert answer.qname == dns.name.from_text(f"{kind}.hostile.test.")
    if error is None:
        assert answer.rcode in (dns.rcode.NXDOMAIN, dns.rcode.NOERROR)
    if error == "malformed":
        assert answer.wire is not None and answer.message is None
    if error == "timeout":
        assert answer.attempts == 2 and answer.elapsed >= 0.3 * 2 + 0.05 - 0.01
    if kind == "formerr":  # fell back, and FORMERR again: an answer, flagged
        assert answer.edns_fallback and answer.attempts == 2 and answer.rcode == dns.rcode.FORMERR


def test_hostile_under_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> list[Answer]:
        async with Hostile() as hostile, DnsClient([(HOSTILE, hostile.port)], FAST) as client:
            kinds = ["ok", "noise", "wrongid", "garbage", "tcclose", "tchuge", "tccut"]
            return await asyncio.gather(*(client.query(f"{k}.uv.test.", "A") for k in kinds))

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        answers = runner.run(main())
    assert [a.error for a in answers] == [
        None, None, "timeout", "malformed", "tcp_failed", "tcp_failed", None
    ]  # fmt: skip


def fuzz_responses(rng: random.Random, n: int) -> list[bytes]:
    """Random bytes, random bytes after a plausible header, and real answers with bytes flipped."""
    base = dns.message.make_response(dns.message.make_query("fuzz.hostile.test.", "MX"))
    base.set_rcode(dns.rcode.NXDOMAIN)
    real = base.to_wire()
    out = []
    for i in range(n):
        if i % 3 == 0:
            out.append(rng.randbytes(rng.randrange(0, 600)))
        elif i % 3 == 1:
            out.append(real[:12] + rng.randbytes(rng.randrange(0, 100)))
        else:
            wire = bytearray(real)
            for _ in range(rng.randrange(1, 6)):
                wire[rng.randrange(len(wire))] = rng.randrange(256)
            out.append(bytes(wire[: rng.randrange(2, len(wire) + 1)]))
    return out


def test_random_responses_never_raise() -> None:
    """Without hypothesis: a seeded batch of hostile responses, each one Answer, nothing raised."""
    rng = random.Random(1)
    responses = fuzz_responses(rng, 120)

    async def main() -> list[Answer]:
        settings = ClientSettings(timeout=0.15, retries=0, tcp_timeout=0.3)
        async with Hostile() as hostile, DnsClient([(HOSTILE, hostile.port)], settings) as client:
            hostile.fuzz = list(responses)
            return [await client.query("fuzz.hostile.test.", "MX") for _ in responses]

    answers = run(main())
    assert len(answers) == len(responses)
    assert all(isinstance(a, Answer) for a in answers)
    assert {a.error for a in answers} <= {None, "timeout", "malformed", "tcp_failed", "formerr"}


def test_hypothesis_random_bytes_never_raise() -> None:
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=40, deadline=None)
    @hypothesis.given(st.binary(max_size=300), st.booleans())
    def check(body: bytes, our_id: bool) -> None:
        async def main() -> Answer:
            settings = ClientSettings(timeout=0.1, retries=0, tcp_timeout=0.2)
            async with Hostile() as hostile, DnsClient([(HOSTILE, hostile.port)], settings) as c:
                hostile.fuzz = [body]
                hostile.copy_id = our_id
                return await c.query("fuzz.hostile.test.", "A")

        assert isinstance(run(main()), Answer)

    check()


# --- policy, programmer errors ---------------------------------------------------------------------
def test_opt_out_sends_nothing() -> None:
    async def main() -> tuple[list[Answer], int, int]:
        async with Hostile() as hostile:
            server = (HOSTILE, hostile.port)
            by_name = ClientSettings(timeout=0.3, opt_out_names=frozenset({"hostile.test"}))
            async with DnsClient([server], by_name) as client:
                answers = [
                    await client.query("ok.hostile.test.", "A"),
                    await client.query("HOSTILE.Test.", "MX"),
                ]
            by_address = ClientSettings(timeout=0.3, opt_out_addresses=frozenset({HOSTILE}))
            async with DnsClient([server], by_address) as client:
                answers.append(await client.query("ok.other.test.", "A"))
                answers.append(await client.query("ok.other.test.", "A", server=server))
            before = hostile.packets
            async with DnsClient([server], by_name) as client:
                control = await client.query("ok.hostile-not.test.", "A")
            assert control.error is None
            return answers, before, hostile.packets

    answers, before, after = run(main())
    assert before == 0 and after == 1
    for a in answers:
        assert a.error == "refused_by_policy" and a.transport == "none" and a.attempts == 0
        assert a.message is None and a.wire is None


def test_per_server_rate_limit() -> None:
    async def main() -> tuple[list[Answer], float]:
        settings = ClientSettings(timeout=0.3, per_server_qps=20.0)
        async with Hostile() as hostile, DnsClient([(HOSTILE, hostile.port)], settings) as client:
            started = time.monotonic()
            answers = await asyncio.gather(*(client.query(f"ok.n{i}.test.", "A") for i in range(6)))
            return answers, time.monotonic() - started

    answers, took = run(main())
    assert all(a.error is None for a in answers)
    assert 0.25 - 0.01 <= took < 1.0, took  # six sends spaced 1/20 s apart


def test_round_robin_over_servers() -> None:
    async def main() -> Answer:
        async with Hostile() as hostile:
            dead = (OTHER, free_port(OTHER))  # nothing answers there
            async with DnsClient([dead, (HOSTILE, hostile.port)], FAST) as client:
                return await client.query("ok.hostile.test.", "A")

    answer = run(main())
    assert answer.error is None and answer.attempts == 2 and answer.server.startswith(HOSTILE)


@pytest.mark.parametrize(
    ("qname", "qtype"),
    [("a..b.", "A"), ("x" * 64 + ".test.", "A"), ("ok.test.", "NOPE"), ("ok.test.", 70000)],
)
def test_programmer_errors_raise(qname: str, qtype) -> None:
    async def main() -> None:
        async with DnsClient([("127.0.0.1", 53)]) as client:
            await client.query(qname, qtype)

    with pytest.raises(ValueError, match="name|type"):
        run(main())
