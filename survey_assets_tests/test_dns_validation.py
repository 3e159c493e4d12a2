"""The validation steps, held against the lab's truth on its signed data (no network here:
the RRsets come straight from the lab's zones, as an authoritative server would send them)."""

from __future__ import annotations

import datetime as dt

import dns.name
import dns.rdatatype as T
import dns.rrset
import pytest

from survey_assets import reasons as R
from survey_assets.dns.validation import check_dnskeys, check_rrsigs
from survey_assets.lab import world as W
from survey_assets.lab.authority import LabData
from survey_assets.lab.truth import FAULT_STATUS

DAY = 0  # every DNS fault of lab-secure is present on the first day
WORLD = W.World(1, "tiny", W.date_of(DAY))
DATA = LabData(WORLD)
NOW = dt.datetime.combine(WORLD.date, dt.time(12), dt.UTC)
CHAIN_FAULTS = {
    f
    for f, (status, _) in FAULT_STATUS.items()
    if f not in ("lame", "ns_timeout", "mx_denial_bogus")
}


def _rrset(name, node, rdtype):
    rrset = dns.rrset.RRset(name, 1, rdtype)
    rrset.update(node[rdtype])
    return rrset


def verdict_of(domain: W.Domain):
    """Chain from the domain's DS (in its TLD) through its DNSKEYs to its MX RRset."""
    name = dns.name.from_text(domain.name)
    tld = DATA.zone(name.parent())
    ds = list(tld.node(name).get(T.DS, []))
    zone = DATA.zone(name)
    signer = DATA.signer(zone)
    apex = zone.node(name)
    dnskeys = _rrset(name, apex, T.DNSKEY)
    keys = check_dnskeys(name, dnskeys, signer.rrsig(name, apex[T.DNSKEY]), ds, NOW)
    if not keys.secure:
        return keys
    mx = _rrset(name, apex, T.MX)
    return check_rrsigs(mx, signer.rrsig(name, apex[T.MX]), keys.keys, name, NOW)


SHOWCASE = [WORLD.domain("lab-secure", i) for i in range(len(W.DOMAIN_FAULTS))]


@pytest.mark.parametrize(
    "domain", [d for d in SHOWCASE if d.fault in CHAIN_FAULTS], ids=lambda d: d.fault
)
def test_each_injected_fault_gets_its_reason(domain):
    status, reasons = FAULT_STATUS[domain.fault]
    verdict = verdict_of(domain)
    assert (verdict.status, verdict.reasons) == (status, reasons)


def test_healthy_signed_domains_are_secure():
    healthy = []
    for tld in W.TLDS:
        for index, _ in WORLD.domain_names(tld):
            d = WORLD.domain(tld.label, index)
            if d.signed and d.fault is None and d.mail != "none":
                healthy.append(d)
    assert len(healthy) > 40
    for d in healthy:
        verdict = verdict_of(d)
        assert verdict.status == R.SECURE, (d.name, verdict.reasons)
