"""The scanner's fast path (`dns/fastpath.py`, `rust/dns_fastpath`) held to the Python scanner.

The fast path may leave any domain to the Python scanner, but a domain it decides must get the
very row the Python scanner gives it: on the lab's days (every injected fault included), and
for answers mutated by hypothesis, judged both ways from the same bytes. Its reader is held to
`wire.py` message by message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import struct
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survey_assets.dns import client as C
from survey_assets.dns import fastpath
from survey_assets.dns import wire as W
from survey_assets.dns.chain import ChainValidator
from survey_assets.dns.client import ClientSettings, DnsClient
from survey_assets.dns.scan import domain_row, read_anchor, scan_domains
from survey_assets.dns.validation import Policy
from survey_assets.lab import world as W0
from survey_assets_tests.conftest import tiny_lab

SETTINGS = ClientSettings(timeout=1.0, retries=3, max_in_flight=200)
MX, DS, DNSKEY = 15, 43, 48
# The verdicts the fast path gives; every other one is left to the Python scanner.
FAST_VERDICTS = {("secure", ()), ("insecure", ("no_ds",))}


def test_the_library_is_built():
    assert fastpath.available(), f"{fastpath.LIBRARY} is missing: run `make native`"


async def _fast_only(names, resolver, anchors, now) -> dict:
    async with DnsClient([resolver], SETTINGS) as client:
        validator = ChainValidator(client, anchors, now)
        return await fastpath.scan_domains(validator, client, names, SETTINGS, Policy())


@pytest.fixture(scope="module", params=[0, 8], ids=lambda d: f"day{d}")
def day(request, tmp_path_factory):
    """A lab day: its truth, its domains scanned with and without the fast path, what the fast
    path decided alone, and the lab (serving) with its trust anchor and time."""
    date = W0.date_of(request.param)
    with tiny_lab(tmp_path_factory.mktemp("fastpath"), date) as lab:
        truth = [json.loads(x) for x in lab.info.truth.read_text().splitlines()]
        truth = [t for t in truth if t["kind"] == "domain"]
        names = [t["name"] for t in truth]
        anchors = read_anchor(lab.info.trust_anchor.read_text())
        now = dt.datetime.combine(date, dt.time(12), dt.UTC)
        resolver = (lab.info.resolver, lab.info.dns_port)
        python = asyncio.run(scan_domains(names, resolver, anchors, now, SETTINGS, fast=False))
        fast = asyncio.run(scan_domains(names, resolver, anchors, now, SETTINGS))
        decided = asyncio.run(_fast_only(names, resolver, anchors, now))
        yield {"truth": truth, "python": python, "fast": fast, "decided": decided,
               "resolver": resolver, "anchors": anchors, "now": now}  # fmt: skip


def test_rows_equal_the_python_scanners(day):
    wrong = [(p, f) for p, f in zip(day["python"], day["fast"], strict=True) if p != f]
    assert not wrong, wrong[:5]


def test_it_decides_the_common_shapes_and_leaves_every_fault(day):
    truth, decided = day["truth"], day["decided"]
    common = [i for i, t in enumerate(truth) if (t["dnssec"], tuple(t["reasons"])) in FAST_VERDICTS]
    # Every decision is a verdict the truth gives, and it is the truth's.
    for i, (status, reasons, *_) in decided.items():
        assert (status, reasons) == (truth[i]["dnssec"], truth[i]["reasons"]), truth[i]
    # Most common shapes are decided (the rest: shapes the fast path leaves, like a name whose
    # parent proves only an empty non-terminal), both secure and insecure.
    assert len(decided) >= 0.8 * len(common), (len(decided), len(common))
    assert {decided[i][0] for i in decided} == {"secure", "insecure"}
    faulty = {t["name"] for t in truth if (t["dnssec"], tuple(t["reasons"])) not in FAST_VERDICTS}
    assert faulty and not faulty & {truth[i]["name"] for i in decided}


# --- decisions from mutated answers --------------------------------------------------------
def _labels(text: str) -> tuple:
    return tuple(text.encode().split(b".")[:-1])


def _wire(text: str) -> bytes:
    return W.wire_of(_labels(text))


@pytest.fixture(scope="module")
def recorded(day):
    """For a signed and an unsigned domain decided on this day: its answers as sent."""
    truth, decided = day["truth"], day["decided"]
    server = day["resolver"]
    picks = {}
    for i, (status, *_) in sorted(decided.items()):
        picks.setdefault(status, truth[i]["name"])
    out = []
    for name in picks.values():
        labels = _labels(name)
        questions = [(labels, MX), (labels, DS), (labels, DNSKEY)]
        mx, ds, keys = fastpath.exchange(server, questions, SETTINGS)
        out.append((name, {MX: mx, DS: ds, DNSKEY: keys}))
    return out


class _Replay(DnsClient):
    """The lab's resolver, except for one name's MX, DS and DNSKEY: the answers given."""

    def __init__(self, server, name: tuple, answers: dict[int, bytes]) -> None:
        super().__init__([server], SETTINGS)
        self.name, self.answers = name, answers

    async def query(self, qname, qtype, **options):
        if qname == self.name and qtype in self.answers:
            C.charge(1)
            wire = self.answers[qtype]
            view, message = C._read(wire)
            error = None if view is not None else C.MALFORMED
            return C.Answer(qname, qtype, "replay", view, wire, "udp", error, 0.0, 1,
                            message=message)  # fmt: skip
        return await super().query(qname, qtype, **options)


async def _both(day, name: str, answers: dict[int, bytes]):
    """The Python scanner's row for `name` from `answers`, and the fast path's decision."""
    qname = C._to_name(name)
    async with _Replay(day["resolver"], W.name_of(qname), answers) as client:
        validator = ChainValidator(client, day["anchors"], day["now"])
        result = await validator.validate_within_limits(qname, MX, qname)
        python = domain_row(name, result.status, result.reasons, result.rcode, result.zone,
                            result.records, result.signatures)  # fmt: skip
        [(kind, parent)] = fastpath.plan([_wire(name)], [answers[DS]])
        zones = {}
        if kind:
            verdict, _ = await validator.zone_keys(fastpath._labels(parent))
            if verdict.secure:
                zones[parent] = verdict.keys
        now = int(day["now"].timestamp())
        answer = (_wire(name), answers[MX], answers[DS], answers[DNSKEY] if kind == 2 else None)
        [decision] = fastpath.decide([answer], zones, now, Policy(), {})
    return python, decision


def _as_row(name: str, decision) -> dict:
    status, reasons, zone, records, signatures = decision
    return domain_row(name, status, reasons, 0, zone, [records], [signatures] if signatures else [])


def test_unmutated_answers_are_decided_as_the_python_scanner_decides(day, recorded):
    assert len(recorded) == 2  # a signed and an unsigned domain
    for name, answers in recorded:
        python, decision = asyncio.run(_both(day, name, answers))
        assert decision is not None, name
        assert _as_row(name, decision) == python


@st.composite
def _mutations(draw, length: int):
    """Up to three edits of a message: a byte replaced, a bit flipped, or the end cut."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["byte", "bit", "cut"]))
        at = draw(st.integers(0, max(0, length - 1)))
        edits.append((kind, at, draw(st.integers(0, 255))))
    return edits


def _mutate(wire: bytes, edits) -> bytes:
    data = bytearray(wire)
    for kind, at, value in edits:
        if not data:
            break
        at %= len(data)
        if kind == "byte":
            data[at] = value
        elif kind == "bit":
            data[at] ^= 1 << (value % 8)
        else:
            del data[at:]
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_a_mutated_answer_is_decided_as_the_python_scanner_decides_or_left(day, recorded, data):
    name, answers = data.draw(st.sampled_from(recorded))
    qtype = data.draw(st.sampled_from(sorted(answers)))
    mutated = dict(answers)
    mutated[qtype] = _mutate(answers[qtype], data.draw(_mutations(len(answers[qtype]))))
    python, decision = asyncio.run(_both(day, name, mutated))
    if decision is not None:
        assert _as_row(name, decision) == python


# --- the reader against wire.py ---------------------------------------------------------------
def _python_account(message: bytes):
    view = W.parse(message)
    if view is None:
        return None
    return (
        view.id, view.flags, view.rcode,
        [(W.wire_of(n), t, c) for n, t, c in view.question],
        [[(W.wire_of(r.name), W.wire_of(r.owner), r.rdtype, r.covers, r.ttl,
           [(rd.wire, rd.canon) for rd in r.rdatas]) for r in section]
         for section in (view.answer, view.authority)],
    )  # fmt: skip


def _compiled_account(message: bytes):
    data = fastpath.read(message)
    if data[0] == 0:
        return None
    pos = 1

    def u(fmt: str):
        nonlocal pos
        (value,) = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize(fmt)
        return value

    def b() -> bytes:
        nonlocal pos
        length = u("I")
        pos += length
        return data[pos - length : pos]

    id_, flags, rcode = u("H"), u("H"), u("I")
    question = [(b(), u("H"), u("H")) for _ in range(u("I"))]
    sections = []
    for _ in range(2):
        section = []
        for _ in range(u("I")):
            name, owner, rdtype, covers, ttl = b(), b(), u("H"), u("H"), u("I")
            section.append((name, owner, rdtype, covers, ttl, [(b(), b()) for _ in range(u("I"))]))
        sections.append(section)
    return (id_, flags, rcode, question, sections)


def test_the_reader_reads_the_lab_answers_as_wire_py(recorded):
    for _, answers in recorded:
        for answer in answers.values():
            assert _compiled_account(answer) is not None
            assert _compiled_account(answer) == _python_account(answer)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_the_reader_reads_mutated_answers_as_wire_py_or_declines(recorded, data):
    _, answers = data.draw(st.sampled_from(recorded))
    answer = answers[data.draw(st.sampled_from(sorted(answers)))]
    message = _mutate(answer, data.draw(_mutations(len(answer))))
    compiled = _compiled_account(message)
    # Declining is always allowed (wire.py's reader or dnspython then decides); reading
    # differently never is, nor accepting what wire.py declines.
    if compiled is not None:
        assert compiled == _python_account(message)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_the_reader_takes_any_bytes(message):
    compiled = _compiled_account(message)
    if compiled is not None:
        assert compiled == _python_account(message)


# --- the exchange --------------------------------------------------------------------------
class _Server:
    """A UDP server on loopback answering each query with its own bytes, QR set, from
    `answer_from` (its own socket by default); `silent` answers nothing. Arrival times kept."""

    def __init__(self, answer_from: str | None = None, silent: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.other = None
        if answer_from:
            self.other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.other.bind((answer_from, 0))
        self.silent, self.arrivals, self.running = silent, [], True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            self.arrivals.append(time.monotonic())
            if not self.silent:
                (self.other or self.sock).sendto(
                    data[:2] + bytes([data[2] | 0x80]) + data[3:], peer
                )

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()
        if self.other:
            self.other.close()


QUESTIONS = [(_labels(f"d{i}.lab-com."), MX) for i in range(10)]


def test_the_exchange_gets_each_answer_in_order():
    server = _Server()
    try:
        answers = fastpath.exchange(server.address, QUESTIONS, SETTINGS)
    finally:
        server.close()
    asked = [W.wire_of(q) for q, _ in QUESTIONS]
    assert [a is not None and a[12:12 + len(q)] == q for a, q in zip(answers, asked, strict=True)] == [True] * 10  # fmt: skip


def test_silence_and_strangers_are_no_answer_after_the_timeout():
    quick = ClientSettings(timeout=0.3)
    for server in (_Server(silent=True), _Server(answer_from="127.0.0.2")):
        began = time.monotonic()
        try:
            answers = fastpath.exchange(server.address, QUESTIONS, quick)
        finally:
            server.close()
        assert answers == [None] * 10
        assert 0.3 <= time.monotonic() - began < 3


def test_the_exchange_keeps_the_rate_and_the_window():
    server = _Server()
    try:
        fastpath.exchange(server.address, QUESTIONS, ClientSettings(per_server_qps=50))
    finally:
        server.close()
    # Nine intervals of 20 ms at least (measured from arrival to arrival: jitter aside).
    assert len(server.arrivals) == 10
    assert server.arrivals[-1] - server.arrivals[0] >= 0.17, server.arrivals
    silent = _Server(silent=True)
    try:
        began = time.monotonic()
        fastpath.exchange(
            silent.address, QUESTIONS[:4], ClientSettings(timeout=0.3, max_in_flight=2)
        )
    finally:
        silent.close()
    # Two at a time, each waiting out its timeout: two rounds.
    assert len(silent.arrivals) == 4 and silent.arrivals[2] - silent.arrivals[0] >= 0.25
    assert time.monotonic() - began >= 0.6


@pytest.mark.parametrize("request_bytes", [b"", b"\x01", b"\x05\x00\x00\x00\xff\xff\xff\xff"])
def test_a_malformed_request_is_refused_not_a_crash(request_bytes):
    for function in (fastpath._LIB.dnsfp_plan, fastpath._LIB.dnsfp_judge):
        with pytest.raises(fastpath.NativeError, match="failed"):
            fastpath._call(function, request_bytes)
