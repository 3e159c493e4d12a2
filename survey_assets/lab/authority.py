"""Authoritative answers from lab zones (RFC 1034 §4.3.2, RFC 4035 §3.1, RFC 5155 §7.2).

`LabData` holds a date's zones and signers; `answer` turns a question into the sections an
authoritative server would send: data with RRSIGs, referrals with DS or a no-DS proof and glue,
CNAMEs, wildcards, and NXDOMAIN/NODATA with NSEC or NSEC3 proofs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.name
import dns.rcode
import dns.rdatatype as T
import dns.rrset

from survey_assets.lab.signer import Proof, Signer
from survey_assets.lab.world import World
from survey_assets.lab.zones import IN, Zone, build_zone, zone_origin_for

WILD = dns.name.Name((b"*",))


@dataclass
class Answer:
    rcode: int = dns.rcode.NOERROR
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    authoritative: bool = True


class LabData:
    """The zones of one date, built and signed on demand and kept for the life of the date."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._zones: dict[dns.name.Name, Zone | None] = {}
        self._signers: dict[dns.name.Name, Signer] = {}

    def zone(self, origin: dns.name.Name) -> Zone | None:
        origin = origin.canonicalize()
        if origin not in self._zones:
            zone = build_zone(self.world, origin)
            if zone is not None:
                finish(zone)
            self._zones[origin] = zone
        return self._zones[origin]

    def signer(self, zone: Zone) -> Signer:
        found = self._signers.get(zone.origin)
        if found is None:
            found = self._signers[zone.origin] = Signer(zone, self.world.date, self.world.seed)
        return found

    def zone_for(self, qname: dns.name.Name) -> Zone | None:
        """The deepest existing lab zone that holds `qname`."""
        origin = zone_origin_for(self.world, qname.canonicalize())
        return self.zone(origin) if origin is not None else None


def finish(zone: Zone) -> None:
    """Add the apex records that follow from the zone's signing parameters."""
    if not zone.signed:
        return
    for key in zone.keys:
        zone.add_rdata(zone.origin, key.dnskey)
    if zone.denial == "nsec3":
        salt = zone.nsec3_salt or "-"
        zone.add(zone.origin, T.NSEC3PARAM, f"1 0 {zone.nsec3_iterations} {salt}")


def _rrset(name: dns.name.Name, rds) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, IN, rds.rdtype, rds.covers)
    rrset.update(rds)
    return rrset


def answer(
    data: LabData, zone: Zone, qname: dns.name.Name, qtype: int, dnssec: bool, chase: bool = True
) -> Answer:
    """What `zone`'s authoritative server answers to (qname, qtype)."""
    qname = qname.canonicalize()
    out = Answer()
    if not qname.is_subdomain(zone.origin):
        out.rcode, out.authoritative = dns.rcode.REFUSED, False
        return out
    signer = data.signer(zone)
    sign = dnssec and zone.signed

    def add(section: list, name: dns.name.Name, rds, owner_for_sig: dns.name.Name | None = None):
        section.append(_rrset(name, rds))
        if sign:
            sig = signer.rrsig(owner_for_sig or name, rds)
            if sig is not None:
                section.append(_rrset(name, sig))

    def add_denial(proof: Proof | None) -> None:
        if proof is None:
            return
        rrset, sig = proof
        if any(r.name == rrset.name and r.rdtype == rrset.rdtype for r in out.authority):
            return
        out.authority.append(rrset)
        if sig is not None:
            out.authority.append(_rrset(rrset.name, sig))

    def add_soa() -> None:
        add(out.authority, zone.origin, zone.node(zone.origin)[T.SOA])

    # Delegations: the highest cut between the apex and qname (DS at a cut belongs to us).
    cut = _find_cut(zone, qname)
    if cut is not None and not (cut == qname and qtype == T.DS):
        return _referral(data, zone, signer, cut, sign, out)

    node = zone.node(qname)
    if node:
        if qtype == T.ANY:
            for rds in node.values():
                add(out.answer, qname, rds)
            return out
        if qtype in node:
            add(out.answer, qname, node[qtype])
            return out
        if T.CNAME in node and qtype != T.CNAME:
            add(out.answer, qname, node[T.CNAME])
            target = node[T.CNAME][0].target
            if chase and target.is_subdomain(zone.origin):
                more = answer(data, zone, target, qtype, dnssec, chase=False)
                out.answer += more.answer
                out.rcode = more.rcode
            return out
        # NODATA at an existing name.
        add_soa()
        if sign:
            if zone.denial == "nsec":
                add_denial(signer.nsec_rrset(qname))
            elif qtype == T.DS and signer.nsec3_matching(qname) is None:
                _optout_proof(signer, qname, add_denial)
            else:
                add_denial(signer.nsec3_matching(qname))
        return out

    if zone.below(qname):  # an empty non-terminal: NODATA
        add_soa()
        if sign:
            if zone.denial == "nsec":
                add_denial(signer.nsec_covering(qname))
            else:
                add_denial(signer.nsec3_matching(qname))
        return out

    # The name does not exist: a wildcard at the closest encloser, or NXDOMAIN.
    encloser = _closest_encloser(zone, qname)
    next_closer = dns.name.Name(qname.labels[-(len(encloser) + 1) :])
    wildcard = WILD.concatenate(encloser)
    wnode = zone.node(wildcard)
    if wnode:
        if qtype in wnode:
            add(out.answer, qname, wnode[qtype], owner_for_sig=wildcard)
            if sign:
                if zone.denial == "nsec":
                    add_denial(signer.nsec_covering(qname))
                else:
                    add_denial(signer.nsec3_covering(next_closer))
            return out
        add_soa()
        if sign:
            if zone.denial == "nsec":
                add_denial(signer.nsec_covering(qname))
                add_denial(signer.nsec_rrset(wildcard))
            else:
                add_denial(signer.nsec3_matching(encloser))
                add_denial(signer.nsec3_covering(next_closer))
                add_denial(signer.nsec3_matching(wildcard))
        return out
    out.rcode = dns.rcode.NXDOMAIN
    add_soa()
    if sign:
        if zone.denial == "nsec":
            add_denial(signer.nsec_covering(qname))
            add_denial(signer.nsec_covering(wildcard))
        else:
            add_denial(signer.nsec3_matching(encloser))
            add_denial(signer.nsec3_covering(next_closer))
            add_denial(signer.nsec3_covering(wildcard))
    return out


def _optout_proof(signer: Signer, name: dns.name.Name, add_denial) -> None:
    """RFC 5155 §7.2.4: a closest provable encloser and an opt-out NSEC3 over the next closer."""
    zone = signer.zone
    encloser = name.parent()
    while encloser != zone.origin and signer.nsec3_matching(encloser) is None:
        encloser = encloser.parent()
    next_closer = dns.name.Name(name.labels[-(len(encloser) + 1) :])
    add_denial(signer.nsec3_matching(encloser))
    add_denial(signer.nsec3_covering(next_closer))


def _find_cut(zone: Zone, qname: dns.name.Name) -> dns.name.Name | None:
    depth = len(zone.origin)
    for i in range(depth + 1, len(qname) + 1):
        candidate = dns.name.Name(qname.labels[-i:])
        if zone.is_cut(candidate):
            return candidate
    return None


def _closest_encloser(zone: Zone, qname: dns.name.Name) -> dns.name.Name:
    name = qname.parent()
    while name != zone.origin:
        if zone.node(name) or zone.below(name):
            return name
        name = name.parent()
    return zone.origin


def _referral(
    data: LabData, zone: Zone, signer: Signer, cut: dns.name.Name, sign: bool, out: Answer
):
    node = zone.node(cut)
    out.authoritative = False
    out.authority.append(_rrset(cut, node[T.NS]))
    if sign:
        if T.DS in node:
            out.authority.append(_rrset(cut, node[T.DS]))
            sig = signer.rrsig(cut, node[T.DS])
            if sig is not None:
                out.authority.append(_rrset(cut, sig))
        else:
            proofs: list[Proof] = []
            if zone.denial == "nsec":
                proofs.append(signer.nsec_rrset(cut))
            elif signer.nsec3_matching(cut) is not None:
                proofs.append(signer.nsec3_matching(cut))
            else:
                _optout_proof(signer, cut, proofs.append)
            for rrset, sig in proofs:
                out.authority.append(rrset)
                if sig is not None:
                    out.authority.append(_rrset(rrset.name, sig))
    for ns in node[T.NS]:
        target = ns.target
        if target.is_subdomain(cut):
            glue = zone.node(target)
            if glue:
                for rdtype in (T.A, T.AAAA):
                    if rdtype in glue:
                        out.additional.append(_rrset(target, glue[rdtype]))
    return out
