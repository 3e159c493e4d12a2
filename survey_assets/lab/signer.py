"""DNSSEC signing of lab zones, on demand: RRSIGs, NSEC and NSEC3 chains, and injected faults.

Signatures are deterministic (RSA PKCS#1 v1.5, RFC 6979 ECDSA, Ed25519) and their validity
window comes from the world's date, so the same date always gives the same bytes. Each RRset is
signed the first time it is asked for and cached for the life of the date.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataset
import dns.rdatatype as T
import dns.rdtypes.ANY.NSEC
import dns.rdtypes.ANY.NSEC3
import dns.rdtypes.ANY.RRSIG
import dns.rrset

from survey_assets.lab import keys as K
from survey_assets.lab.zones import IN, PRIVATE_ALGORITHM, Zone, ZoneKey

OUTSIDE_SIGNER = dns.name.from_text("elsewhere.lab-net.")
# An NSEC or NSEC3 RRset and the RRSIGs over it (None in an unsigned zone).
Proof = tuple[dns.rrset.RRset, dns.rdataset.Rdataset | None]


def _corrupt(rrsig: dns.rdata.Rdata) -> dns.rdata.Rdata:
    sig = bytearray(rrsig.signature)
    sig[len(sig) // 2] ^= 0xFF
    sig[-1] ^= 0x01
    return rrsig.replace(signature=bytes(sig))


class Signer:
    """Signs one zone's RRsets and builds its denial-of-existence records."""

    def __init__(self, zone: Zone, date: dt.date, seed: int) -> None:
        self.zone = zone
        self.seed = seed
        midnight = dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC)
        self.inception = midnight - dt.timedelta(days=3)
        self.expiration = midnight + dt.timedelta(days=21)
        if zone.fault == "rrsig_expired":
            self.inception = midnight - dt.timedelta(days=30)
            self.expiration = midnight - dt.timedelta(days=1)
        elif zone.fault == "rrsig_not_yet_valid":
            self.inception = midnight + dt.timedelta(days=2)
            self.expiration = midnight + dt.timedelta(days=40)
        self._sigs: dict[tuple[dns.name.Name, int], dns.rdataset.Rdataset | None] = {}
        self._proofs: dict[dns.name.Name, Proof] = {}

    # --- RRSIGs ----------------------------------------------------------------------------------
    def rrsig(
        self, owner: dns.name.Name, rds: dns.rdataset.Rdataset
    ) -> dns.rdataset.Rdataset | None:
        """The RRSIG RRset covering `rds` at `owner`, or None where the zone leaves it unsigned."""
        key = (owner, rds.rdtype)
        if key not in self._sigs:
            self._sigs[key] = self._sign(owner, rds)
        return self._sigs[key]

    def _signing_keys(self, rdtype: int) -> list[ZoneKey]:
        keys = self.zone.keys
        ksks = [k for k in keys if k.ksk]
        zsks = [k for k in keys if not k.ksk] or ksks
        if rdtype == T.DNSKEY:
            return zsks if self.zone.fault == "dnskey_not_signed_by_ds_key" else ksks
        return zsks

    def _sign(
        self, owner: dns.name.Name, rds: dns.rdataset.Rdataset
    ) -> dns.rdataset.Rdataset | None:
        zone = self.zone
        if not zone.signed or not zone.keys or zone.occluded(owner):
            return None
        if rds.rdtype == T.NS and owner != zone.origin:
            return None  # delegation NS sets are not signed
        fault = zone.fault
        if fault == "rrsig_missing" and rds.rdtype == T.MX:
            return None
        signed_rds = rds
        if fault == "rrsig_invalid" and rds.rdtype == T.MX:
            # The zone was edited after signing: the signature covers the old preference.
            signed_rds = dns.rdataset.Rdataset(IN, T.MX, ttl=rds.ttl)
            for mx in rds:
                signed_rds.add(mx.replace(preference=mx.preference + 5))
        out = dns.rdataset.Rdataset(IN, T.RRSIG, ttl=rds.ttl)
        for key in self._signing_keys(rds.rdtype):
            rrsig = self._one(owner, signed_rds, key)
            if fault == "signer_outside_zone" and rds.rdtype == T.MX:
                rrsig = rrsig.replace(signer=OUTSIDE_SIGNER)
            if rds.rdtype == T.TLSA and owner in zone.broken_tlsa:
                rrsig = _corrupt(rrsig)
            out.add(rrsig)
        return out

    def _one(
        self, owner: dns.name.Name, rds: dns.rdataset.Rdataset, key: ZoneKey
    ) -> dns.rdata.Rdata:
        if key.private is None:  # the private algorithm: the bytes cannot be checked by anyone
            labels = len(owner) - 1 - (1 if owner.is_wild() else 0)
            return dns.rdtypes.ANY.RRSIG.RRSIG(
                IN,
                T.RRSIG,
                rds.rdtype,
                PRIVATE_ALGORITHM,
                labels,
                rds.ttl,
                int(self.expiration.timestamp()),
                int(self.inception.timestamp()),
                key.tag,
                self.zone.origin,
                K.digest(self.seed, "privsig", owner, rds.rdtype, size=64),
            )
        return dns.dnssec.sign(
            (owner, rds),
            key.private,
            self.zone.origin,
            key.dnskey,
            inception=self.inception,
            expiration=self.expiration,
            deterministic=True,
        )

    # --- NSEC ------------------------------------------------------------------------------------
    @functools.cached_property
    def nsec_names(self) -> list[dns.name.Name]:
        zone = self.zone
        return [n for n in zone.names() if not zone.occluded(n) and zone.node(n)]

    @functools.cached_property
    def _nsec_position(self) -> dict[dns.name.Name, int]:
        return {name: i for i, name in enumerate(self.nsec_names)}

    def _types_at(self, name: dns.name.Name) -> list[int]:
        zone = self.zone
        node = zone.node(name) or {}
        types = set(node)
        delegation = zone.is_cut(name)
        if not delegation or T.DS in node:
            types.add(T.RRSIG)
        if name == zone.origin and zone.fault == "mx_denial_bogus":
            types.add(T.MX)  # the bitmap claims an MX the zone does not have
        return sorted(types)

    def nsec_rrset(self, name: dns.name.Name) -> Proof:
        names = self.nsec_names
        i = self._nsec_position[name]
        nxt = names[(i + 1) % len(names)]
        types = sorted({*self._types_at(name), T.RRSIG, T.NSEC})
        rdata = dns.rdtypes.ANY.NSEC.NSEC(
            IN, T.NSEC, nxt, dns.rdtypes.ANY.NSEC.Bitmap.from_rdtypes(types)
        )
        return self._denial_rrset(name, name, rdata)

    def nsec_covering(self, name: dns.name.Name) -> Proof:
        """The NSEC whose owner is the closest name at or before `name` in canonical order."""
        names = self.nsec_names
        i = bisect.bisect_right(names, name) - 1
        return self.nsec_rrset(names[i])

    # --- NSEC3 -----------------------------------------------------------------------------------
    def hash(self, name: dns.name.Name) -> str:
        zone = self.zone
        return dns.dnssec.nsec3_hash(
            name, zone.nsec3_salt or None, zone.nsec3_iterations, 1
        ).lower()

    @functools.cached_property
    def nsec3_chain(self) -> tuple[list[str], dict[str, dns.name.Name]]:
        """Sorted hashes and the name each stands for (authoritative names and ENTs)."""
        zone = self.zone
        wanted: set[dns.name.Name] = set()
        for name in self.nsec_names:
            node = zone.node(name) or {}
            if zone.nsec3_optout and zone.is_cut(name) and T.DS not in node:
                continue
            n = name
            while n != zone.origin and n not in wanted:
                wanted.add(n)
                n = n.parent()
            wanted.add(zone.origin)
        by_hash = {self.hash(n): n for n in wanted}
        return sorted(by_hash), by_hash

    def nsec3_rrset(self, hashed: str) -> Proof:
        hashes, names = self.nsec3_chain
        i = bisect.bisect_left(hashes, hashed)
        nxt = hashes[(i + 1) % len(hashes)]
        name = names[hashed]
        zone = self.zone
        types = self._types_at(name) if zone.node(name) else []
        if name == zone.origin:
            types = sorted({*types, T.NSEC3PARAM})
        rdata = dns.rdtypes.ANY.NSEC3.NSEC3(
            IN,
            T.NSEC3,
            1,
            1 if zone.nsec3_optout else 0,
            zone.nsec3_iterations,
            bytes.fromhex(zone.nsec3_salt),
            dns.dnssec.base64.b32decode(nxt.upper().translate(_FROM_HEX)),
            dns.rdtypes.ANY.NSEC3.Bitmap.from_rdtypes(types),
        )
        owner = dns.name.Name((hashed.encode(), *zone.origin.labels))
        return self._denial_rrset(owner, name, rdata)

    def nsec3_matching(self, name: dns.name.Name) -> Proof | None:
        hashed = self.hash(name)
        return self.nsec3_rrset(hashed) if hashed in self.nsec3_chain[1] else None

    def nsec3_covering(self, name: dns.name.Name) -> Proof:
        hashes = self.nsec3_chain[0]
        i = bisect.bisect_left(hashes, self.hash(name)) - 1
        return self.nsec3_rrset(hashes[i])

    def _denial_rrset(
        self, owner: dns.name.Name, original: dns.name.Name, rdata: dns.rdata.Rdata
    ) -> Proof:
        cached = self._proofs.get(owner)
        if cached is not None:
            return cached
        zone = self.zone
        rrset = dns.rrset.RRset(owner, IN, rdata.rdtype)
        soa = zone.node(zone.origin)[T.SOA]  # type: ignore[index]
        rrset.update_ttl(soa[0].minimum)
        rrset.add(rdata)
        sig = self._sign_plain(owner, rrset)
        if sig is not None and any(original.is_subdomain(b) for b in zone.broken_denial):
            fixed = dns.rdataset.Rdataset(IN, T.RRSIG, ttl=sig.ttl)
            for r in sig:
                fixed.add(_corrupt(r))
            sig = fixed
        self._proofs[owner] = (rrset, sig)
        return rrset, sig

    def _sign_plain(self, owner: dns.name.Name, rds: dns.rdataset.Rdataset):
        if not self.zone.signed:
            return None
        out = dns.rdataset.Rdataset(IN, T.RRSIG, ttl=rds.ttl)
        for key in self._signing_keys(rds.rdtype):
            out.add(self._one(owner, rds, key))
        return out


_FROM_HEX = str.maketrans("0123456789ABCDEFGHIJKLMNOPQRSTUV", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
