"""Scanning the lab's candidates over real DNS: every domain's status and reasons equal the truth."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from survey_assets.dns.client import ClientSettings
from survey_assets.dns.scan import read_anchor, scan_domains, scan_hosts
from survey_assets.lab import unbound
from survey_assets.lab import world as W
from survey_assets.lab.serve import Lab
from survey_assets_tests.conftest import free_port


@pytest.mark.parametrize("day", [0, 8], ids=lambda d: f"day{d}")
def test_domain_statuses_equal_the_truth(tmp_path, day):
    date = W.date_of(day)
    with Lab(scale="tiny", date=date, workdir=tmp_path, dns_port=free_port(),
             smtp_port=free_port("127.25.1.1"), write_zones=False) as lab:  # fmt: skip
        truth = [json.loads(x) for x in lab.info.truth.read_text().splitlines()]
        domains = [r for r in truth if r["kind"] == "domain"]
        anchors = read_anchor(lab.info.trust_anchor.read_text())
        now = dt.datetime.combine(date, dt.time(12), dt.UTC)
        settings = ClientSettings(timeout=1.0, retries=3, max_in_flight=200)
        rows = asyncio.run(
            scan_domains(
                [r["name"] for r in domains],
                (lab.info.resolver, lab.info.dns_port),
                anchors,
                now,
                settings,
            )
        )
    wrong = [
        (t["name"], t["dnssec"], t["reasons"], r["dnssec"], r["reasons"])
        for t, r in zip(domains, rows, strict=True)
        if (t["dnssec"], t["reasons"]) != (r["dnssec"], r["reasons"])
    ]
    assert not wrong, wrong[:15]
    mx_wrong = [
        (t["name"], t["mx"], r["mx"])
        for t, r in zip(domains, rows, strict=True)
        if sorted(t["mx"]) != sorted(r["mx"])
    ]
    assert not mx_wrong, mx_wrong[:10]


@pytest.mark.parametrize("day", [0, 8], ids=lambda d: f"day{d}")
def test_mx_host_tlsa_statuses_equal_the_truth(tmp_path, day):
    date = W.date_of(day)
    with Lab(scale="tiny", date=date, workdir=tmp_path, dns_port=free_port(),
             smtp_port=free_port("127.25.1.1"), write_zones=False) as lab:  # fmt: skip
        truth = [json.loads(x) for x in lab.info.truth.read_text().splitlines()]
        hosts = [r for r in truth if r["kind"] == "mx_host"]
        anchors = read_anchor(lab.info.trust_anchor.read_text())
        now = dt.datetime.combine(date, dt.time(12), dt.UTC)
        settings = ClientSettings(timeout=1.0, retries=3, max_in_flight=200)
        rows = asyncio.run(
            scan_hosts(
                [r["name"] for r in hosts],
                (lab.info.resolver, lab.info.dns_port),
                anchors,
                now,
                settings,
            )
        )
    wrong = [
        (t["name"], t["dnssec"], t["reasons"], r["dnssec"], r["reasons"])
        for t, r in zip(hosts, rows, strict=True)
        if (t["dnssec"], t["reasons"]) != (r["dnssec"], r["reasons"])
    ]
    assert not wrong, wrong[:15]
    counts = [
        (t["name"], t["tlsa_count"], len(r["tlsa"])) for t, r in zip(hosts, rows, strict=True)
    ]
    assert [c for c in counts if c[1] != c[2]] == []


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
        Lab(scale="tiny", date=date, workdir=tmp_path / "lab", dns_port=free_port(),
            smtp_port=free_port("127.25.1.1"), write_zones=False) as lab,
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
