"""Validated opt-out NSEC3 spans of a zone, reused to deny DS records (RFC 8198, RFC 9077).

In a delegation-centric zone signed with NSEC3 opt-out (.com, .net, .org and most large TLDs),
one NSEC3 record covers the hashes of many unsigned delegations: the DS denial of each of them
is the same two records, the NSEC3 matching the apex (the closest encloser) and the opt-out
NSEC3 covering the name's hash. Once a DS answer has brought and proved them, asking again for
another name in the same span cannot change the answer while the records live, so the scanner
proves the denial from what it holds, as an aggressive resolver does, and asks nothing.

Only names right below the zone's apex are answered from here (the candidates, which is where
opt-out spans matter), only while the records' TTL lasts (RFC 9077: the smallest of the NSEC3
TTL, the SOA's TTL and its MINIMUM), and only through the same `check_denial` that judged the
original answer: a span that does not prove the name's denial sends the scanner to the network.
"""

from __future__ import annotations

import base64
import bisect
from dataclasses import dataclass, field

from survey_assets.dns import wire as W
from survey_assets.dns.validation import Proof, in_span, nsec3_hash

NSEC3_TYPE = 50
OPT_OUT = 0x01
MAX_SPANS = 100_000  # per zone: beyond it, spans already held stay, new ones are not kept


@dataclass
class _Zone:
    salt: bytes
    iterations: int
    apex: Proof  # the NSEC3 matching the apex's hash: the closest encloser of every child
    expires: float
    owners: list[bytes] = field(default_factory=list)  # sorted hashes of the spans' owners
    spans: dict[bytes, tuple[bytes, Proof]] = field(default_factory=dict)  # owner: (next, proof)


class OptOutSpans:
    """Per zone, the opt-out spans proved so far and until when they may be used."""

    def __init__(self) -> None:
        self._zones: dict[tuple, _Zone] = {}

    def remember(self, zone: tuple, proofs: list[Proof], ttl: int, now: float) -> None:
        """Keep the NSEC3 records of a DS denial that `check_denial` found secure for a name right
        below `zone`, valid for `ttl` seconds from `now` (the caller's clock)."""
        nsec3 = [p for p in proofs if p.rrset.rdtype == NSEC3_TYPE and p.rrset.rdatas]
        if not nsec3:
            return
        first = nsec3[0].rrset.rdatas[0]
        salt, iterations = first.salt, first.iterations
        apex_hash = nsec3_hash(zone, salt, iterations)
        apex = next((p for p in nsec3 if p.rrset.name == (apex_hash, *zone)), None)
        held = self._zones.get(zone)
        if (
            held is None
            or (held.salt, held.iterations) != (salt, iterations)
            or held.expires <= now
        ):
            if apex is None:
                return
            held = self._zones[zone] = _Zone(salt, iterations, apex, now + ttl)
        held.expires = min(held.expires, now + ttl)
        for proof in nsec3:
            rd = proof.rrset.rdatas[0]
            owner = proof.rrset.name[0] if proof.rrset.name else b""
            if not rd.flags & OPT_OUT or owner in held.spans:
                continue
            if (rd.salt, rd.iterations) != (salt, iterations) or len(held.spans) >= MAX_SPANS:
                continue
            held.spans[owner] = (base64.b32hexencode(rd.next).lower(), proof)
            bisect.insort(held.owners, owner)

    def proofs_for(self, name: tuple, now: float) -> tuple[tuple, list[Proof]] | None:
        """(the zone, the apex's and the covering span's proofs) that may deny a DS at `name`, a
        name right below a zone held here; None when nothing held covers it."""
        zone = name[1:]
        held = self._zones.get(zone)
        if held is None or not name:
            return None
        if held.expires <= now:
            del self._zones[zone]
            return None
        if not held.owners:
            return None
        digest = nsec3_hash(name, held.salt, held.iterations)
        # The span whose owner is the greatest hash below the name's, or the chain's last one
        # (which wraps around past the end of the hash space).
        owner = held.owners[bisect.bisect_left(held.owners, digest) - 1]
        following, proof = held.spans[owner]
        if not in_span(owner, following, digest):
            return None
        return zone, [held.apex, proof]


def denial_ttl(proofs: list[Proof], soa: W.RRset | None) -> int:
    """How long a negative answer's proofs may be used (RFC 9077): the smallest of their TTLs,
    the SOA's TTL and its MINIMUM field; no time at all without a SOA."""
    if soa is None or not soa.rdatas:
        return 0
    minimum = int.from_bytes(soa.rdatas[0].wire[-4:], "big")
    return min([p.rrset.ttl for p in proofs] + [soa.ttl, minimum])
