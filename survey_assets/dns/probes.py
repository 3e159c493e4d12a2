"""Nameserver hygiene probes: each authoritative server address, asked directly (the seed's
"DNSSEC hygiene" checklist): EDNS(0), the DO bit, answers to TLSA and unknown types (NODATA,
never NOTIMP/REFUSED), TCP, empty non-terminals, and SOA serials that agree between servers.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

import dns.name
import dns.rcode
import dns.rdatatype as T

from survey_assets import reasons as R
from survey_assets.dns.client import Answer, DnsClient

UNKNOWN_TYPE = 65280  # a private-use type no server implements: the answer must be NODATA


@dataclass(frozen=True)
class Target:
    """One server address to probe, with a zone it serves and, when one is known, an ENT in it."""

    name: str
    address: str
    zone: str
    signed: bool
    ent: str | None = None


def _rcode_reason(answer: Answer, refused: str, notimp: str) -> list[str]:
    if answer.message is None:
        return []
    rcode = answer.message.rcode()
    return {
        dns.rcode.REFUSED: [refused],
        dns.rcode.NOTIMP: [notimp],
        dns.rcode.FORMERR: ["formerr"],
    }.get(rcode, [])


async def probe(client: DnsClient, target: Target, port: int) -> dict:
    server = (target.address, port)
    zone = dns.name.from_text(target.zone)

    async def ask(qname: dns.name.Name, qtype: int) -> Answer:
        return await client.query(qname, qtype, server=server, dnssec=True, cd=False, rd=False)

    soa = await ask(zone, T.SOA)
    row = {"name": target.name, "address": target.address, "zone": target.zone, "serial": None}
    if soa.error == "timeout":
        return {**row, "reasons": ["timeout"]}
    reasons: set[str] = set()
    if soa.error == "tcp_failed":
        reasons.add("tcp_failed")
    if soa.edns_fallback:
        reasons.add("no_edns")
    message = soa.message
    if message is not None and message.rcode() == dns.rcode.NOERROR:
        for rrset in message.answer:
            if rrset.rdtype == T.SOA:
                row["serial"] = rrset[0].serial
        signed_answer = any(r.rdtype == T.RRSIG for r in message.answer)
        if target.signed and not signed_answer and not soa.edns_fallback:
            reasons.add("do_bit_stripped")
    tlsa, unknown = await asyncio.gather(
        ask(dns.name.Name((b"_25", b"_tcp", *zone.labels)), T.TLSA), ask(zone, UNKNOWN_TYPE)
    )
    reasons |= set(_rcode_reason(tlsa, "refused", "notimp"))
    reasons |= set(_rcode_reason(unknown, "unknown_type_refused", "unknown_type_notimp"))
    if target.ent:
        ent = await ask(dns.name.from_text(target.ent), T.A)
        if ent.message is not None and ent.message.rcode() == dns.rcode.NXDOMAIN:
            reasons.add("ent_nxdomain")
    return {**row, "reasons": R.check(sorted(reasons))}


async def probe_all(targets: list[Target], port: int, client: DnsClient) -> list[dict]:
    """Probe every target, then flag servers whose SOA serial lags behind their zone's others."""
    rows = list(await asyncio.gather(*(probe(client, t, port) for t in targets)))
    serials: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        if row["serial"] is not None:
            serials[row["zone"]].append(row["serial"])
    for row in rows:
        newest = max(serials.get(row["zone"], [0]), default=0)
        if row["serial"] is not None and row["serial"] < newest:
            row["reasons"] = R.check([*row["reasons"], "ns_inconsistent"])
    return rows


async def targets(
    client: DnsClient,
    resolver: tuple[str, int],
    candidates: list[dict],
    ent_zones: dict[str, str],
) -> list[Target]:
    """What to probe: the root's and each suffix's servers, and every nameserver of the day's
    candidates, each with one zone it serves (signed if it serves any; both servers of one NS
    set pick the same zone, so their serials can be compared). `candidates` carry `name`,
    `suffix`, `ns`, `ds` and `glue`; `ent_zones` maps a zone to an empty non-terminal in it."""
    by_ns: dict[str, list[tuple[bool, str]]] = defaultdict(list)
    glue: dict[str, list[str]] = defaultdict(list)
    for c in candidates:
        for ns in c["ns"]:
            by_ns[ns].append((bool(c["ds"]), c["name"]))
        for line in c["glue"]:
            owner, rtype, address = line.split()
            if rtype == "A":
                glue[owner].append(address)

    async def addresses(host: str) -> list[str]:
        if host in glue:
            return sorted(set(glue[host]))
        answer = await client.query(host, T.A, server=resolver, dnssec=False)
        if answer.message is None:
            return []
        return sorted(
            {r.address for rrset in answer.message.answer if rrset.rdtype == T.A for r in rrset}
        )

    async def zone_servers(zone: str) -> list[str]:
        answer = await client.query(zone, T.NS, server=resolver, dnssec=False)
        if answer.message is None:
            return []
        return sorted(
            {
                r.target.to_text()
                for rrset in answer.message.answer
                if rrset.rdtype == T.NS
                for r in rrset
            }
        )

    found: list[Target] = []
    suffixes = sorted({c["suffix"] for c in candidates} | {"."})
    for zone in suffixes:
        for host in await zone_servers(zone):
            found += [Target(host, a, zone, True) for a in await addresses(host)]
    for host, zones in sorted(by_ns.items()):
        signed = sorted(name for is_signed, name in zones if is_signed)
        pool = signed or sorted(name for _, name in zones)
        with_ent = [z for z in pool if z in ent_zones]
        zone = (with_ent or pool)[0]
        for address in await addresses(host):
            found.append(Target(host, address, zone, bool(signed), ent_zones.get(zone)))
    unique: dict[tuple[str, str], Target] = {}
    for target in found:  # a server listed for several zones is probed once, for the first
        unique.setdefault((target.name, target.address), target)
    return list(unique.values())
