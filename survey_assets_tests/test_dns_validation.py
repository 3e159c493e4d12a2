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
    if f not in ("lame", "ns_timeout", "mx_denial_bogus", "nsec3_iterations_too_high")
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


# --- denial of existence -------------------------------------------------------------------------
def _negative(qname: str, qtype: int):
    """The lab's authoritative negative answer, as proofs, with the zone's keys."""
    from survey_assets.dns.validation import Proof
    from survey_assets.lab.authority import answer

    name = dns.name.from_text(qname)
    zone = DATA.zone_for(name)
    if qtype == T.DS and zone.origin == name:
        zone = DATA.zone(name.parent())
    result = answer(DATA, zone, name, qtype, True)
    sigs = {(r.name, r.covers): r for r in result.authority if r.rdtype == T.RRSIG}
    proofs = [
        Proof(r, sigs.get((r.name, r.rdtype)))
        for r in result.authority
        if r.rdtype in (T.NSEC, T.NSEC3)
    ]
    keys = list(zone.node(zone.origin)[T.DNSKEY])
    return name, result.rcode == 3, proofs, zone.origin, keys


def _domain(tld: str, **want) -> W.Domain:
    for index, _ in WORLD.domain_names(next(t for t in W.TLDS if t.label == tld)):
        d = WORLD.domain(tld, index)
        if all(getattr(d, k) == v for k, v in want.items()):
            return d
    raise LookupError(want)


@pytest.mark.parametrize("denial", ["nsec", "nsec3"])
def test_proofs_of_healthy_zones_are_secure(denial):
    from survey_assets.dns.validation import check_denial

    d = _domain("lab-secure", signed=True, fault=None, denial=denial, wildcard=False)
    for qname, qtype in (
        (f"nothere.{d.name}", T.A),
        (d.name, T.AAAA),
        (f"_25._tcp.x.{d.name}", T.TLSA),
    ):
        name, nx, proofs, zone, keys = _negative(qname, qtype)
        assert proofs, qname
        verdict = check_denial(name, qtype, nx, proofs, zone, keys, NOW)
        assert verdict.status == R.SECURE, (qname, verdict.reasons)


def test_empty_non_terminal_and_tld_nxdomain():
    from survey_assets.dns.validation import check_denial

    host = next(
        h for h in (WORLD.self_host(WORLD.domain("lab-open", i)) for i in range(15, 24)) if h.tlsa
    )
    for qname, qtype in (
        (f"_tcp.{host.name}", T.TLSA),
        ("retired-a.lab-cc.", T.MX),
        ("nothere.lab-jump.", T.NS),
    ):
        name, nx, proofs, zone, keys = _negative(qname, qtype)
        assert check_denial(name, qtype, nx, proofs, zone, keys, NOW).status == R.SECURE, qname


def test_no_ds_proofs():
    from survey_assets.dns.validation import check_denial

    unsigned_vast = _domain("lab-vast", signed=False)
    name, nx, proofs, zone, keys = _negative(unsigned_vast.name, T.DS)
    assert (
        check_denial(name, T.DS, nx, proofs, zone, keys, NOW).status == R.SECURE
    )  # DS proven absent
    unsigned_optout = _domain("lab-optout", signed=False)
    name, nx, proofs, zone, keys = _negative(unsigned_optout.name, T.DS)
    verdict = check_denial(name, T.DS, nx, proofs, zone, keys, NOW)
    assert (verdict.status, verdict.reasons) == (R.INSECURE, ["no_ds"])  # an opt-out span


def test_broken_proofs_are_bogus():
    from survey_assets.dns.validation import check_denial

    liar = next(d for d in SHOWCASE if d.fault == "mx_denial_bogus")
    for qname, qtype in ((liar.name, T.MX), ("_25._tcp.denialbogus.faultymail.lab-net.", T.TLSA)):
        name, nx, proofs, zone, keys = _negative(qname, qtype)
        verdict = check_denial(name, qtype, nx, proofs, zone, keys, NOW)
        assert (verdict.status, verdict.reasons) == (R.BOGUS, ["denial_bogus"]), qname
    name, nx, proofs, zone, keys = _negative("nothere.lab-secure.", T.A)
    assert check_denial(name, T.A, nx, proofs[:1], zone, keys, NOW).reasons == [
        "denial_bogus"
    ]  # half a proof
    assert check_denial(name, T.A, nx, [], zone, keys, NOW).reasons == ["denial_bogus"]


def test_nsec3_iterations_above_the_limit_are_insecure_not_checked():
    """RFC 9276 §3.2, as Unbound does it: above the limit the proof's signatures are still
    checked, its hashes are not computed, and the answer is insecure."""
    from survey_assets.dns.validation import NSEC3_MAX_ITERATIONS, Policy, Proof, check_denial

    high = next(d for d in SHOWCASE if d.fault == "nsec3_iterations_too_high")
    assert high.nsec3_iterations > NSEC3_MAX_ITERATIONS == 150
    name, nx, proofs, zone, keys = _negative(high.name, T.MX)
    assert proofs and not nx
    verdict = check_denial(name, T.MX, nx, proofs, zone, keys, NOW)
    assert (verdict.status, verdict.reasons) == (R.INSECURE, ["nsec3_iterations_too_high"])
    # The proof itself is sound: a validator willing to hash 200 iterations finds it secure.
    lenient = Policy(nsec3_max_iterations=high.nsec3_iterations)
    assert check_denial(name, T.MX, nx, proofs, zone, keys, NOW, lenient).status == R.SECURE
    # Unsigned NSEC3 records are bogus whatever their iterations.
    unsigned = [Proof(p.rrset, None) for p in proofs]
    assert check_denial(name, T.MX, nx, unsigned, zone, keys, NOW).reasons == ["denial_bogus"]
    # A few iterations (lab-optout's 5, some domains' 10) are within the limit: secure, and
    # insecure only under the strictest policy (RFC 9276 asks signers for 0).
    few = _domain("lab-secure", signed=True, fault=None, denial="nsec3", nsec3_iterations=10)
    name, nx, proofs, zone, keys = _negative(f"nothere.{few.name}", T.A)
    assert check_denial(name, T.A, nx, proofs, zone, keys, NOW).status == R.SECURE
    strict = check_denial(name, T.A, nx, proofs, zone, keys, NOW, Policy(nsec3_max_iterations=0))
    assert (strict.status, strict.reasons) == (R.INSECURE, ["nsec3_iterations_too_high"])
