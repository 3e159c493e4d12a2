"""The scanner's lean reader of DNS responses (`dns/wire.py`) against dnspython's parser: on
every answer the tiny lab gives and on damaged copies of them, whenever the lean reader accepts
a message dnspython accepts it too and both read the same RRsets, records and canonical forms;
what the lean reader declines is left to dnspython. Queries are byte for byte dnspython's."""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.name
import dns.rrset
import pytest

import survey_assets.dns.client  # noqa: F401  (installs the lenient TLSA record type)
from survey_assets.dns import wire as W
from survey_assets.dns.validation import nsec3_hash
from survey_assets.lab import world as W_
from survey_assets_tests.conftest import tiny_lab

DATE = W_.date_of(3)
QTYPES = ("MX", "DS", "DNSKEY", "SOA", "TLSA", "A", "AAAA", "NS", "TXT", "CNAME")


def _summary(view: W.View | None):
    if view is None:
        return None
    sections = [
        [(r.name, r.owner, r.rdtype, r.covers, r.ttl, [(d.wire, d.canon) for d in r]) for r in s]
        for s in (view.answer, view.authority, view.additional)
    ]
    return view.id, view.flags, view.rcode, view.question, view.opt, sections


def _agree(data: bytes) -> tuple[bool, bool]:
    """(lean reader accepted, dnspython accepted); fails if they disagree."""
    fast = W.parse(data)
    try:
        message = dns.message.from_wire(data)
    except Exception:
        message = None
    if fast is not None:
        assert message is not None, f"accepted what dnspython refuses: {data.hex()}"
        assert _summary(fast) == _summary(W.from_message(message)), data.hex()
    return fast is not None, message is not None


@pytest.fixture(scope="module")
def responses(tmp_path_factory) -> Iterator[list[bytes]]:
    """The lab resolver's answers (DO and CD set) to many questions about its world."""
    with tiny_lab(tmp_path_factory.mktemp("wire"), DATE) as lab:
        truth = [json.loads(x) for x in lab.info.truth.read_text().splitlines()]
        names = [r["name"] for r in truth if r["kind"] in ("domain", "mx_host")]
        names += [f"_25._tcp.{r['name']}" for r in truth if r["kind"] == "mx_host"]
        names += ["lab-vast.", "lab-optout.", ".", "nothere.lab-jump.", "x.y.lab-secure."]
        out = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            for i, name in enumerate(names):
                qtype = QTYPES[i % len(QTYPES)] if i % 3 else "MX"
                query = dns.message.make_query(name, qtype, want_dnssec=True, payload=1232,
                                               flags=dns.flags.RD | dns.flags.CD)  # fmt: skip
                sock.sendto(query.to_wire(), (lab.info.resolver, lab.info.dns_port))
                out.append(sock.recv(65535))
        yield out


def test_every_lab_answer_reads_as_dnspython_reads_it(responses):
    results = [_agree(r) for r in responses]
    assert all(dnspython for _, dnspython in results)
    # The lab's answers are what the lean reader is for: it declines only those carrying EDNS
    # options (SERVFAIL with an Extended DNS Error) or types it does not read (TXT here).
    readable = {1, 2, 5, 6, 12, 15, 28, 43, 46, 47, 48, 50, 52}
    declined = [dns.message.from_wire(r) for r, (fast, _) in zip(responses, results, strict=True)
                if not fast]  # fmt: skip
    assert all(
        m.options or any(rrset.rdtype not in readable for s in m.sections[1:] for rrset in s)
        for m in declined
    )
    assert len(declined) < len(responses) / 5


def test_text_is_dnspythons(responses):
    """Evidence is written as dnspython writes it, for every RRset of every lab answer."""
    for data in responses:
        view, message = W.parse(data), dns.message.from_wire(data)
        if view is None:
            continue
        for ours, theirs in ((view.answer, message.answer), (view.authority, message.authority)):
            assert [r.to_text() for r in ours] == [r.to_text() for r in theirs]


def test_text_of_hostile_names_is_dnspythons():
    import dns.rrset

    owner = dns.name.Name([b"a b", b'q"u.o\\te', b"\x00\xff@$;()", b"UPPER", b"lab-cc", b""])
    for rdtype, rdata in (
        ("MX", "10 x\\.y\\032z.Example."),
        ("RRSIG", "MX 13 5 3600 20261122000000 20261029000000 31527 Q\\$.lab-cc. AAEC"),
        ("NSEC", "\\000.lab-cc. A MX RRSIG NSEC TYPE65280"),
        ("NSEC", "Next.Lab-CC."),  # no types at all
        ("NSEC3", "1 1 5 C0FFEE 2T7B4G4VSA5SMI47K61MV5BV1A22BOJR NS DS RRSIG"),
        ("NSEC3", "1 0 0 - 2T7B4G4VSA5SMI47K61MV5BV1A22BOJR A TYPE1234"),
        ("TLSA", "3 1 1 " + "ab" * 20),  # a digest of the wrong length: kept (rdata.py)
    ):
        rrset = dns.rrset.from_text(owner, 300, "IN", rdtype, rdata)
        assert W.rrset_view(rrset).to_text() == rrset.to_text()


def test_damaged_answers_never_disagree(responses):
    rng = random.Random(4)
    seen = set()
    for _ in range(20_000):
        data = bytearray(rng.choice(responses))
        kind = rng.randrange(4)
        if kind == 0:  # flipped octets
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:  # cut short
            data = data[: rng.randrange(len(data) + 1)]
        elif kind == 2:  # octets inserted
            at = rng.randrange(len(data))
            data[at:at] = rng.randbytes(rng.randrange(1, 4))
        else:  # a compression pointer anywhere
            at = rng.randrange(12, len(data) - 1)
            data[at], data[at + 1] = 0xC0 | rng.randrange(4), rng.randrange(256)
        seen.add(_agree(bytes(data)))
    assert seen == {(True, True), (False, True), (False, False)}


def test_hypothesis_bytes_never_disagree():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    header = st.binary(min_size=12, max_size=12).map(
        lambda h: h[:2] + bytes([h[2] & 0x87, h[3]]) + b"\x00\x01" + h[6:]
    )

    @hypothesis.settings(max_examples=400, deadline=None)
    @hypothesis.given(header, st.binary(max_size=200))
    def check(head: bytes, body: bytes) -> None:
        _agree(head + body)

    check()


@pytest.mark.parametrize("name", ["Example.LAB-net.", ".", "a.b.c.d.e.f."])
@pytest.mark.parametrize(("rdtype", "flags", "edns", "dnssec"),
                         [(15, 0x110, True, True), (43, 0x100, True, False), (48, 0, False, False)])  # fmt: skip
def test_queries_are_dnspythons(name, rdtype, flags, edns, dnssec):
    parsed = dns.name.from_text(name)
    ours = W.query_wire(4242, parsed.labels[:-1], rdtype, flags, edns, dnssec, 1232)
    theirs = dns.message.make_query(parsed, rdtype, use_edns=0 if edns else False,
                                    want_dnssec=dnssec, payload=1232, flags=flags)  # fmt: skip
    theirs.id = 4242
    assert ours == theirs.to_wire()


def test_nsec3_hash_is_dnspythons():
    import dns.dnssec

    for text, salt, iterations in (("lab-optout.", "c0ffee", 5), ("A.b.", "", 0), (".", "ab", 1)):
        name = dns.name.from_text(text)
        theirs = dns.dnssec.nsec3_hash(name, salt or None, iterations, 1).lower().encode()
        assert nsec3_hash(W.name_of(name), bytes.fromhex(salt), iterations) == theirs


def test_names_sort_in_canonical_order():
    """RFC 4034 §6.1's example, as tuples reversed."""
    texts = ["example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.",
             "zABC.a.EXAMPLE.", "z.example.", "\\001.z.example.", "*.z.example.",
             "\\200.z.example."]  # fmt: skip
    names = [W.name_of(dns.name.from_text(t)) for t in texts]
    assert sorted(names, key=lambda n: n[::-1]) == names
    assert sorted(dns.name.from_text(t) for t in texts) == [dns.name.from_text(t) for t in texts]


def test_records_of_another_class_are_left_out_of_dnspythons_view():
    """Found by the fast path's hypothesis test: an RRSIG of class 257 made the lean reader
    decline, and the view of dnspython's parse handed the validator a record without its
    fields (an AttributeError out of the scan)."""
    query = dns.message.make_query("a.lab-cc.", "MX", want_dnssec=True)
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("a.lab-cc.", 3600, "IN", "MX", "10 mx.lab-net."))
    response.answer.append(dns.rrset.from_text("a.lab-cc.", 3600, "CH", "TXT", "x"))
    view = W.from_message(dns.message.from_wire(response.to_wire()))
    assert [(r.rdtype, len(r.rdatas)) for r in view.answer] == [(15, 1)]
