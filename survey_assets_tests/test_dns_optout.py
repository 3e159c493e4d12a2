"""Opt-out NSEC3 spans proved once deny other children's DS without a query (RFC 8198), over
real DNS against the lab's opt-out TLD: the same statuses and reasons as the truth, fewer DS
questions than unsigned names, and none of it once the records' TTL has passed."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import Counter

import dns.name
import pytest

from survey_assets.dns.chain import ChainValidator
from survey_assets.dns.client import ClientSettings, DnsClient
from survey_assets.dns.scan import read_anchor, scan_domain
from survey_assets.lab import world as W
from survey_assets_tests.conftest import tiny_lab

DATE = W.date_of(2)
NOW = dt.datetime.combine(DATE, dt.time(12), dt.UTC)
SETTINGS = ClientSettings(timeout=1.0, retries=3, max_in_flight=50)
DS = 43


class CountingClient(DnsClient):
    """The real client, counting the questions it sends by (name, type)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.asked: Counter = Counter()

    async def query(self, qname, qtype, **kwargs):
        self.asked[(qname if isinstance(qname, tuple) else str(qname), qtype)] += 1
        return await super().query(qname, qtype, **kwargs)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with tiny_lab(tmp_path_factory.mktemp("optout"), DATE) as running:
        yield running


def _optout_truth(lab) -> list[dict]:
    rows = [json.loads(x) for x in lab.info.truth.read_text().splitlines()]
    return [r for r in rows if r["kind"] == "domain" and r["tld"] == "lab-optout"]


def _scan(lab, names: list[str], later: float = 0.0) -> tuple[list[dict], Counter]:
    """Scan `names` one after another (so spans are proved before they are reused); with
    `later`, the validator's clock runs that many seconds ahead after the first name."""
    anchors = read_anchor(lab.info.trust_anchor.read_text())

    async def run() -> tuple[list[dict], Counter]:
        resolver = (lab.info.resolver, lab.info.dns_port)
        async with CountingClient([resolver], SETTINGS) as client:
            validator = ChainValidator(client, anchors, NOW)
            clock, rows = validator._clock, []
            for name in names:
                rows.append(await scan_domain(validator, dns.name.from_text(name)))
                if later:  # every name meets records older than their TTL
                    shift = later * len(rows)
                    validator._clock = lambda shift=shift: clock() + shift
            return rows, client.asked

    return asyncio.run(run())


def test_children_of_an_opt_out_span_are_denied_from_the_proved_span(lab):
    truth = _optout_truth(lab)
    unsigned = [r for r in truth if not r["signed"] and r["reasons"] == ["no_ds"]]
    assert len(unsigned) >= 10  # the lab's opt-out TLD: many unsigned names per span
    rows, asked = _scan(lab, [r["name"] for r in truth])
    by_name = {r["name"]: r for r in truth}
    assert [(r["dnssec"], r["reasons"]) for r in rows] == [
        (by_name[r["name"]]["dnssec"], by_name[r["name"]]["reasons"]) for r in rows
    ]
    ds_asked = sum(n for (name, qtype), n in asked.items() if qtype == DS and len(name) == 2)
    # Each signed name needs its DS; the unsigned ones share a few spans.
    signed = sum(1 for r in truth if r["signed"])
    assert signed <= ds_asked < signed + len(unsigned) // 2


def test_spans_are_not_used_after_their_ttl(lab):
    truth = _optout_truth(lab)
    names = [r["name"] for r in truth if not r["signed"] and r["reasons"] == ["no_ds"]]
    rows, asked = _scan(lab, names, later=100_000.0)  # beyond any TTL of the lab
    assert {(r["dnssec"], tuple(r["reasons"])) for r in rows} == {("insecure", ("no_ds",))}
    ds_asked = sum(n for (name, qtype), n in asked.items() if qtype == DS and len(name) == 2)
    assert ds_asked == len(names)


def test_the_span_held_for_a_name_is_the_one_that_covers_it_wrap_around_included():
    """Held spans against brute force over a chain of four opt-out NSEC3 records, the last one
    wrapping past the end of the hash space; names of their own (a span's owner) and names after
    the TTL get nothing."""
    import dns.rrset

    from survey_assets.dns import wire as Wire
    from survey_assets.dns.optout import OptOutSpans
    from survey_assets.dns.validation import Proof, nsec3_hash

    zone, salt, iterations = (b"lab-x",), bytes.fromhex("c0ffee"), 5
    owned = [zone] + [(f"signed{i}".encode(), *zone) for i in range(3)]
    hashes = sorted(nsec3_hash(n, salt, iterations) for n in owned)
    proofs = []
    for i, owner in enumerate(hashes):
        following = hashes[(i + 1) % len(hashes)]
        rrset = dns.rrset.from_text(dns.name.Name((owner, *zone, b"")), 300, "IN", "NSEC3",
                                    f"1 1 5 c0ffee {following.decode()} NS")  # fmt: skip
        proofs.append(Proof(Wire.rrset_view(rrset), None))
    spans = OptOutSpans()
    spans.remember(zone, proofs, ttl=100, now=0.0)
    apex = next(p for p in proofs if p.rrset.name[0] == nsec3_hash(zone, salt, iterations))
    wrapped = 0
    for i in range(200):
        name = (f"n{i}".encode(), *zone)
        digest = nsec3_hash(name, salt, iterations)
        below = [h for h in hashes if h < digest]
        expected = below[-1] if below else hashes[-1]  # before the first: the wrapping span
        wrapped += expected == hashes[-1]
        zone_held, (first, span) = spans.proofs_for(name, now=1.0)
        assert zone_held == zone and first is apex and span.rrset.name[0] == expected
        assert spans.proofs_for(name, now=100.0) is None  # expired (and forgotten)
        spans.remember(zone, proofs, ttl=100, now=0.0)
    assert 0 < wrapped < 200
    for name in owned[1:]:
        assert spans.proofs_for(name, now=1.0) is None  # a name with an NSEC3 of its own
