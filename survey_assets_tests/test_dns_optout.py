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
