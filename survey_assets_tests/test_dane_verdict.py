"""DANE verdicts decided from bytes equal the lab's truth, decided from intent.

Every address of every lab MX host with TLSA records is captured over real SMTP/STARTTLS on
consecutive days around the lab's rollovers (a good one, a botched one, an issuer change under a
2 1 1 record, a provider turning DANE on). The TLSA records come from the lab's world (the DNS
scan is another layer's job); the verdicts come from the captured chains alone. Per address, per
MX host and per domain, outcome, reasons and rollover readiness must equal the truth.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import dns.name
import pytest

from survey_assets import reasons as R
from survey_assets.dane.verdict import (
    AddressCapture,
    HostInput,
    domain_verdict,
    host_verdict,
)
from survey_assets.lab import tlsa as lab_tlsa
from survey_assets.lab import world as W
from survey_assets.lab.truth import truth_rows
from survey_assets.smtp.client import CaptureSettings, Target, capture_all
from survey_assets_tests.conftest import tiny_lab

FIRST, LAST = W.Day.GOOD_PREPUBLISH, W.Day.ISSUER_CHANGE  # days 3..10, each with its day before
DAYS = list(range(FIRST, LAST + 1))
CHECKED = [d for d in DAYS if d > FIRST]  # the first day only serves as "the previous capture"


def _host_specs(w: W.World, truth: list[dict]) -> dict[str, W.MxHost]:
    hosts = {}
    for row in truth:
        if row["kind"] != "mx_host":
            continue
        host = w.host(row["name"])
        assert host is not None, row["name"]
        hosts[row["name"]] = host
    return hosts


@pytest.fixture(scope="module")
def days(tmp_path_factory) -> dict[int, dict]:
    """Per day: the truth, the host inputs built from world TLSA + real captures."""
    out: dict[int, dict] = {}
    with tiny_lab(tmp_path_factory.mktemp("dane"), W.date_of(FIRST), tarpit_seconds=3) as lab:
        settings = CaptureSettings(
            port=lab.smtp_port, deadline=2.0, retries_4xx=1, retry_delay=0.1,
            ehlo_name="survey-test.lab-net",
        )  # fmt: skip
        for day in DAYS:
            lab.set_date(W.date_of(day))
            w = W.world(W.DEFAULT_SEED, "tiny", W.date_of(day))
            truth = list(truth_rows(w))
            hosts = _host_specs(w, truth)
            # Every address of every host with TLSA records, contacted once.
            targets = [Target(h.name, a) for h in hosts.values() if h.tlsa for a in h.addresses]
            captures = asyncio.run(capture_all(targets, settings))
            by_host: dict[str, list[AddressCapture]] = {}
            for cap in captures:
                by_host.setdefault(cap.host, []).append(
                    AddressCapture(cap.address, cap.reason, tuple(cap.chain))
                )
            rows = {r["name"]: r for r in truth if r["kind"] == "mx_host"}
            inputs = {
                name: HostInput(
                    name=name,
                    dnssec=rows[name]["dnssec"],
                    tlsa=tuple(lab_tlsa.tlsa_text(w.seed, h, s) for s in h.tlsa),
                    captures=tuple(by_host.get(name, ())),
                )
                for name, h in hosts.items()
            }
            out[day] = {"world": w, "truth": truth, "inputs": inputs, "captures": captures}
    return out


def _now(day: int) -> dt.datetime:
    return dt.datetime.combine(W.date_of(day), dt.time(12), dt.UTC)


def _verdicts(days, day):
    today, before = days[day], days.get(day - 1)
    verdicts = {}
    for name, host in today["inputs"].items():
        previous = before["inputs"].get(name) if before else None
        verdicts[name] = host_verdict(host, previous, _now(day))
    return verdicts


@pytest.mark.parametrize("day", CHECKED)
def test_addresses_equal_the_truth(days, day):
    verdicts = _verdicts(days, day)
    rows = [r for r in days[day]["truth"] if r["kind"] == "address"]
    assert len(rows) >= 30
    wrong = []
    for row in rows:
        found = {a.address: a for a in verdicts[row["name"]].addresses}[row["address"]]
        if (found.dane, found.reasons) != (row["dane"], row["reasons"]):
            wrong.append((row["name"], row["address"], row["dane"], row["reasons"],
                          found.dane, found.reasons))  # fmt: skip
    assert not wrong, wrong
    assert {r["dane"] for r in rows} == {R.PASS, R.FAIL}


@pytest.mark.parametrize("day", CHECKED)
def test_hosts_equal_the_truth(days, day):
    verdicts = _verdicts(days, day)
    wrong = []
    for row in days[day]["truth"]:
        if row["kind"] != "mx_host":
            continue
        v = verdicts[row["name"]]
        want = (row["dane"], row["dane_reasons"], row["rollover"], row["rollover_reasons"],
                row["accepts_connections"])  # fmt: skip
        got = (v.dane, v.dane_reasons, v.rollover, v.rollover_reasons, v.accepts_connections)
        if want != got:
            wrong.append((row["name"], want, got))
    assert not wrong, wrong


def _mx(w: W.World, row: dict) -> list[tuple[int, str]]:
    """The domain's MX records with preferences (the truth lists only the names)."""
    name = dns.name.from_text(row["name"])
    d = w.lookup_domain(name.labels)
    if d is None:  # a provider's own domain in lab-net: its first host, as the truth says
        return [(10, h) for h in row["mx"]]
    return w.mx_records(d)


@pytest.mark.parametrize("day", CHECKED)
def test_domains_equal_the_truth(days, day):
    w = days[day]["world"]
    verdicts = _verdicts(days, day)
    wrong, seen = [], set()
    for row in days[day]["truth"]:
        if row["kind"] != "domain":
            continue
        v = domain_verdict(row["name"], row["dnssec"], _mx(w, row), verdicts, row["reasons"])
        want = (row["dane"], row["dane_reasons"], row["rollover"], row["rollover_reasons"])
        got = (v.dane, v.dane_reasons, v.rollover, v.rollover_reasons)
        if want != got:
            wrong.append((row["name"], want, got))
        seen.add((v.dane, v.rollover))
    assert not wrong, wrong[:20]
    assert {R.PASS, R.FAIL, R.NOT_APPLICABLE} <= {dane for dane, _ in seen}


def test_the_stories_are_seen(days):
    """The rollover stories, named: a test that would fail if both sides went blind alike."""

    def state(day: int, host: str) -> tuple[str, list[str]]:
        v = _verdicts(days, day)[host]
        return v.rollover, v.rollover_reasons

    assert state(W.Day.GOOD_SWITCH, "mx1.rollgood.lab-net.") == (R.READY, ["ee_plus_next_ee"])
    assert state(W.Day.BOTCH, "mx1.rollbad.lab-net.") == (R.BOTCHED, ["botched_rotation"])
    assert state(W.Day.BOTCH - 1, "mx1.rollbad.lab-net.") == (R.AT_RISK, ["single_tlsa"])
    assert state(W.Day.ISSUER_CHANGE, "mx1.eeta.lab-net.") == (
        R.AT_RISK, ["issuer_changed", "ta_not_ancestor"],
    )  # fmt: skip
    assert state(W.Day.ISSUER_CHANGE - 1, "mx1.eeta.lab-net.") == (R.READY, ["ee_plus_issuer"])
    nova = _verdicts(days, W.Day.DANE_ON)["mx1.mailnova.lab-net."]
    assert (nova.dane, nova.rollover) == (R.PASS, R.READY)
    before = _verdicts(days, W.Day.DANE_ON - 1)["mx1.mailnova.lab-net."]
    assert (before.dane, before.dane_reasons) == (R.NOT_APPLICABLE, ["no_tlsa"])


def test_keys_change_only_where_the_world_rolls(days):
    """The captured leaf keys themselves (not only verdicts) change on the rollover days."""

    def keys(day: int, host: str) -> list[str]:
        return _verdicts(days, day)[host].leaf_spki_sha256

    for host, day in (("mx1.rollgood.lab-net.", W.Day.GOOD_SWITCH),
                      ("mx1.rollbad.lab-net.", W.Day.BOTCH)):  # fmt: skip
        assert keys(day - 1, host) != keys(day, host)
        assert keys(day, host) == keys(day + 1, host)
    assert keys(W.Day.ISSUER_CHANGE - 1, "mx1.eeta.lab-net.") == keys(
        W.Day.ISSUER_CHANGE, "mx1.eeta.lab-net."
    )  # same key, new issuer
