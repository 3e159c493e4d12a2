"""Per-target limits of the scanner, over real DNS against the lab: a query budget and a total
deadline per domain, each ending in an indeterminate row with its own reason."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Iterator

import dns.name
import pytest

from survey_assets.dns.chain import ChainValidator
from survey_assets.dns.client import ClientSettings, DnsClient
from survey_assets.dns.scan import read_anchor, scan_domain, scan_domains
from survey_assets.lab import world as W
from survey_assets.lab.serve import Lab
from survey_assets_tests.conftest import tiny_lab

DATE = W.date_of(3)
NOW = dt.datetime.combine(DATE, dt.time(12), dt.UTC)
BASE = ClientSettings(timeout=1.0, retries=3, max_in_flight=100)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    with tiny_lab(tmp_path_factory.mktemp("limits"), DATE) as running:
        yield running


def _truth(lab: Lab) -> list[dict]:
    return [json.loads(x) for x in lab.info.truth.read_text().splitlines()]


def _secure_domains(lab: Lab) -> list[str]:
    return [r["name"] for r in _truth(lab)
            if r["kind"] == "domain" and r["dnssec"] == "secure" and not r["reasons"]]  # fmt: skip


def _scan(lab: Lab, names: list[str], settings: ClientSettings, resolver=None) -> list[dict]:
    anchors = read_anchor(lab.info.trust_anchor.read_text())
    resolver = resolver or (lab.info.resolver, lab.info.dns_port)
    return asyncio.run(scan_domains(names, resolver, anchors, NOW, settings))


def _budget(queries: int) -> ClientSettings:
    return ClientSettings(**{**BASE.__dict__, "query_budget": queries})


def test_a_budget_of_one_query_stops_a_signed_domain(lab):
    name = _secure_domains(lab)[0]
    [row] = _scan(lab, [name], _budget(1))
    assert (row["dnssec"], row["reasons"], row["mx"]) == (
        "indeterminate",
        ["query_budget_exceeded"],
        [],
    )
    [row] = _scan(lab, [name], BASE)  # the default budget is ample
    assert (row["dnssec"], row["reasons"]) == ("secure", [])


def test_the_budget_counts_what_a_domain_needs_whatever_the_cache_holds(lab):
    """A second-level signed domain needs six queries: MX, its DS and DNSKEY, its TLD's DS and
    DNSKEY, the root's DNSKEY. Zone keys another domain already fetched still count, so the
    verdict is the same alone or in a crowd (and so in any shard)."""
    names = [n for n in _secure_domains(lab) if n.count(".") == 2][:40]
    assert len({n.split(".")[1] for n in names}) >= 3  # several TLDs: their keys are shared
    alone = [
        next(b for b in range(1, 12) if _scan(lab, [n], _budget(b))[0]["dnssec"] == "secure")
        for n in names[:3]
    ]
    assert alone == [6, 6, 6]
    crowd = _scan(lab, names, _budget(6))
    assert {(r["dnssec"], tuple(r["reasons"])) for r in crowd} == {("secure", ())}
    crowd = _scan(lab, names, _budget(5))
    assert {(r["dnssec"], tuple(r["reasons"])) for r in crowd} == {
        ("indeterminate", ("query_budget_exceeded",))
    }


def test_a_target_stopped_while_fetching_shared_keys_leaves_nothing_cached(lab):
    """A signed domain with a budget of 4 is stopped while it fetches its TLD's keys (MX, DS,
    TLD DS, root DNSKEY, then TLD DNSKEY would be the fifth). A missing name in the same TLD
    needs exactly four (MX, the TLD's DS, root and TLD DNSKEYs): it must fetch those keys
    itself and prove its NXDOMAIN, not inherit the first target's stop."""
    signed = next(n for n in _secure_domains(lab) if n.endswith(".lab-secure."))
    missing = dns.name.from_text("not-registered-here.lab-secure.")
    anchors = read_anchor(lab.info.trust_anchor.read_text())

    async def run() -> tuple[dict, dict]:
        resolver = (lab.info.resolver, lab.info.dns_port)
        async with DnsClient([resolver], _budget(4)) as client:
            validator = ChainValidator(client, anchors, NOW)
            first = await scan_domain(validator, dns.name.from_text(signed))
            second = await scan_domain(validator, missing)
            return first, second

    first, second = asyncio.run(run())
    assert (first["dnssec"], first["reasons"]) == ("indeterminate", ["query_budget_exceeded"])
    assert (second["dnssec"], second["reasons"]) == ("secure", ["nxdomain"])


def test_a_deadline_stops_a_domain_whose_server_never_answers(lab):
    """The lab's black hole receives and never answers: with 1 s per attempt and 3 retries a
    query would take over 4 s; a 0.3 s deadline stops the domain first, with its own reason."""
    name = _secure_domains(lab)[0]
    blackhole = (W.BLACKHOLE_ADDRESS, lab.info.dns_port)
    began = time.monotonic()
    [row] = _scan(lab, [name], ClientSettings(**{**BASE.__dict__, "deadline": 0.3}), blackhole)
    assert time.monotonic() - began < 1.0
    assert (row["dnssec"], row["reasons"]) == ("indeterminate", ["deadline_exceeded"])
    # Without a deadline the same domain runs out of retries instead: a plain timeout.
    quick = ClientSettings(timeout=0.2, retries=1, backoff=0.05, deadline=0)
    [row] = _scan(lab, [name], quick, blackhole)
    assert (row["dnssec"], row["reasons"]) == ("indeterminate", ["timeout"])


def test_defaults_leave_the_lab_equal_to_the_truth(lab):
    """Budget and deadline at their defaults change no lab domain's verdict (the slowest, the
    domain whose servers never answer, is reported by the lab's resolver as a timeout)."""
    truth = [r for r in _truth(lab) if r["kind"] == "domain"]
    rows = _scan(lab, [r["name"] for r in truth], ClientSettings(timeout=1.0, retries=3))
    assert ClientSettings().query_budget and ClientSettings().deadline  # limits are on
    wrong = [(t["name"], t["reasons"], r["reasons"]) for t, r in zip(truth, rows, strict=True)
             if (t["dnssec"], t["reasons"]) != (r["dnssec"], r["reasons"])]  # fmt: skip
    assert not wrong, wrong[:10]
