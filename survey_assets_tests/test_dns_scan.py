"""Scanning the lab's candidates over real DNS: every domain's status and reasons equal the truth."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import dns.exception
import dns.name
import pytest
from hypothesis import given
from hypothesis import strategies as st

from survey_assets.dns.client import ClientSettings
from survey_assets.dns.scan import _from_text, read_anchor, scan_domains, scan_hosts
from survey_assets.lab import unbound
from survey_assets.lab import world as W
from survey_assets_tests.conftest import free_port, tiny_lab


@pytest.fixture(scope="module", params=[0, 8], ids=lambda d: f"day{d}")
def scanned(request, tmp_path_factory):
    """The truth of a lab day, and the scan of its domains and MX hosts over real DNS."""
    date = W.date_of(request.param)
    with tiny_lab(tmp_path_factory.mktemp("scan"), date) as lab:
        truth = [json.loads(x) for x in lab.info.truth.read_text().splitlines()]
        anchors = read_anchor(lab.info.trust_anchor.read_text())
        now = dt.datetime.combine(date, dt.time(12), dt.UTC)
        settings = ClientSettings(timeout=1.0, retries=3, max_in_flight=200)
        resolver = (lab.info.resolver, lab.info.dns_port)
        scans = {}
        for kind, scan in (("domain", scan_domains), ("mx_host", scan_hosts)):
            rows = [r for r in truth if r["kind"] == kind]
            scans[kind] = (
                rows,
                asyncio.run(scan([r["name"] for r in rows], resolver, anchors, now, settings)),
            )
    return scans


@pytest.mark.parametrize("kind", ["domain", "mx_host"])
def test_statuses_and_reasons_equal_the_truth(scanned, kind):
    truth, rows = scanned[kind]
    wrong = [
        (t["name"], t["dnssec"], t["reasons"], r["dnssec"], r["reasons"])
        for t, r in zip(truth, rows, strict=True)
        if (t["dnssec"], t["reasons"]) != (r["dnssec"], r["reasons"])
    ]
    assert not wrong, wrong[:15]


def test_records_equal_the_truth(scanned):
    truth, rows = scanned["domain"]
    assert [sorted(t["mx"]) for t in truth] == [sorted(r["mx"]) for r in rows]
    truth, rows = scanned["mx_host"]
    assert [t["tlsa_count"] for t in truth] == [len(r["tlsa"]) for r in rows]


def test_zones_are_the_delegations(scanned):
    """Every lab domain is delegated by its TLD, so an answer at the name is its own zone's, and
    a name that is not delegated today is denied by the TLD: the zone a row records is found by
    the scan (from the resolver's SOA, or the parent's denial of a DS), so this checks it."""
    truth, rows = scanned["domain"]
    wrong = [
        (t["name"], t["reasons"], r["zone"])
        for t, r in zip(truth, rows, strict=True)
        if r["dnssec"] != "indeterminate"
        and r["zone"] != (f"{t['tld']}." if "nxdomain" in t["reasons"] else t["name"])
    ]
    assert not wrong, wrong[:15]
    assert any(t["tld"] == "lab-optout" and not t["signed"] for t in truth)  # opt-out spans


def test_bad_trust_anchor_names_the_line():
    with pytest.raises(ValueError, match="line 1"):
        read_anchor("example. IN DS 1 8 2 00")
    with pytest.raises(ValueError, match="no DS"):
        read_anchor("; nothing\n")


@pytest.mark.skipif(not unbound.available(), reason="Debian's unbound is not installed")
def test_unbound_agrees_with_the_scan(tmp_path):
    """AD exactly where the scan says secure, SERVFAIL where bogus or indeterminate, else neither."""
    date = W.date_of(8)
    with (
        tiny_lab(tmp_path / "lab", date) as lab,
        unbound.Unbound(lab.info, tmp_path / "unbound", free_port("127.0.0.1")) as validator,
    ):  # fmt: skip
        truth = [json.loads(x) for x in lab.info.truth.read_text().splitlines()]
        names = [r["name"] for r in truth if r["kind"] == "domain"]
        hosts = [r["name"] for r in truth if r["kind"] == "mx_host"]
        anchors = read_anchor(lab.info.trust_anchor.read_text())
        now = dt.datetime.combine(date, dt.time(12), dt.UTC)
        settings = ClientSettings(timeout=1.0, retries=3, max_in_flight=200)
        resolver = (lab.info.resolver, lab.info.dns_port)
        domains = asyncio.run(scan_domains(names, resolver, anchors, now, settings))
        mx_hosts = asyncio.run(scan_hosts(hosts, resolver, anchors, now, settings))
        expected = {
            "secure": "secure",
            "insecure": "insecure",
            "bogus": "servfail",
            "indeterminate": "servfail",
        }
        disagree = [(r["name"], r["dnssec"], validator.status(r["name"], "MX")) for r in domains
                    if validator.status(r["name"], "MX") != expected[r["dnssec"]]]  # fmt: skip
        disagree += [(r["name"], r["dnssec"], validator.status(f"_25._tcp.{r['name']}", "TLSA")) for r in mx_hosts
                     if validator.status(f"_25._tcp.{r['name']}", "TLSA") != expected[r["dnssec"]]]  # fmt: skip
    assert not disagree, disagree[:10]
    assert {r["dnssec"] for r in domains} == {"secure", "insecure", "bogus", "indeterminate"}
    # Among the insecure: a NODATA proven by NSEC3 of 200 iterations (RFC 9276 §3.2).
    assert any(r["reasons"] == ["no_mx", "nsec3_iterations_too_high"] for r in domains)


def test_a_broken_resolver_gives_one_indeterminate_row_per_domain():
    """A resolver that answers garbage, or dies: every domain still gets its row, with a reason."""
    import random
    import socket
    import threading

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.77.0.9", 0))
    port = sock.getsockname()[1]
    rng = random.Random(7)
    stop = threading.Event()

    def serve():
        sock.settimeout(0.2)
        served = 0
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(4096)
            except TimeoutError:
                continue
            served += 1
            if served > 40:  # then it dies: no more answers
                continue
            reply = data[:2] + bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80)))
            sock.sendto(reply, addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        names = [f"d{i}.lab-secure." for i in range(30)]
        anchors = read_anchor(". IN DS 1 8 2 " + "00" * 32)
        now = dt.datetime(2026, 11, 9, 12, tzinfo=dt.UTC)
        settings = ClientSettings(timeout=0.3, retries=1, max_in_flight=50)
        rows = asyncio.run(scan_domains(names, ("127.77.0.9", port), anchors, now, settings))
    finally:
        stop.set()
        thread.join()
        sock.close()
    assert [r["name"] for r in rows] == names
    assert all(r["dnssec"] == "indeterminate" and r["reasons"] for r in rows), rows[:3]


@given(st.lists(st.text("aZ09-_*@\\. ", min_size=0, max_size=70), min_size=1, max_size=5),
       st.sampled_from(["", "."]))  # fmt: skip
def test_target_names_are_read_as_dnspython_reads_them(labels, end):
    """The scan's quick reading of a target's name (plain names skip dnspython's text parser)
    gives dnspython's name and presentation text, and refuses what dnspython refuses."""
    text = ".".join(labels) + end
    try:
        expected = dns.name.from_text(text)
    except dns.exception.DNSException:
        with pytest.raises(dns.exception.DNSException):
            _from_text(text)
        return
    name, shown = _from_text(text)
    assert name.labels == expected.labels
    assert shown == expected.to_text()


def test_the_collector_is_tuned_for_a_scan_and_restored_after():
    """During a scan, objects alive before it are frozen and young ones collected less often;
    afterwards the collector is as the caller had it, even when the scan fails."""
    import gc

    from survey_assets.dns.scan import _fewer_collections

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with pytest.raises(RuntimeError), _fewer_collections():
        assert gc.get_threshold()[0] >= 20_000 and gc.get_freeze_count() > frozen
        raise RuntimeError("a scan that fails")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
