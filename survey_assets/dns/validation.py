"""DNSSEC validation steps with reasons (RFC 4033-4035, 6840, 8624): pure functions, no I/O.

Each step answers with a status and the survey's reason codes, so the scanner can say *why* a
chain fails, which a resolver's AD bit never does. The scanner (`chain.py`) walks the chain from
the trust anchor and calls these for each zone cut and each negative answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import dns.dnssec
import dns.name
import dns.rdataset
import dns.rdtypes.ANY.RRSIG
import dns.rrset

from survey_assets import reasons as R

SUPPORTED_ALGORITHMS = frozenset({8, 10, 13, 14, 15, 16})  # RFC 8624: MUST/RECOMMENDED to validate
SUPPORTED_DIGESTS = frozenset({1, 2, 4})
# RFC 9276 §3.2: a validator MAY treat NSEC3 records with more iterations than it is willing to
# hash as insecure. 150 is Unbound's default (1.17: "1024 150 2048 150 4096 150", whatever the
# key size); the survey matches it so it answers as the resolvers of mail senders would.
NSEC3_MAX_ITERATIONS = 150
REVOKE = 0x0080
ZONE_KEY = 0x0100


@dataclass(frozen=True)
class Policy:
    """Validation choices that are settings, not protocol."""

    nsec3_max_iterations: int = NSEC3_MAX_ITERATIONS  # above it, a denial is insecure unproven


@dataclass
class Verdict:
    status: str
    reasons: list[str] = field(default_factory=list)
    keys: list = field(default_factory=list)  # trusted DNSKEY rdatas, when secure

    @property
    def secure(self) -> bool:
        return self.status == R.SECURE


def _epoch(now: dt.datetime) -> int:
    return int(now.timestamp())


def check_rrsigs(
    rrset: dns.rrset.RRset,
    rrsigs: dns.rdataset.Rdataset | None,
    keys: list,
    zone: dns.name.Name,
    now: dt.datetime,
    no_key_reason: str = "rrsig_invalid",
) -> Verdict:
    """Is `rrset` signed by one of `keys` of `zone`, with a signature valid at `now`?

    `no_key_reason` is the code when every signature is by a key outside `keys`.
    """
    if not rrsigs:
        return Verdict(R.BOGUS, ["rrsig_missing"])
    seen: list[str] = []
    stamp = _epoch(now)
    for sig in rrsigs:
        if sig.type_covered != rrset.rdtype:
            continue
        if sig.signer != zone or not rrset.name.is_subdomain(sig.signer):
            seen.append("signer_outside_zone")
            continue
        if sig.algorithm not in SUPPORTED_ALGORITHMS:
            continue
        candidates = [
            k for k in keys if k.algorithm == sig.algorithm and dns.dnssec.key_id(k) == sig.key_tag
        ]
        if not candidates:
            seen.append(no_key_reason)  # signed by a key that is not in the trusted set
            continue
        if stamp > sig.expiration:
            seen.append("rrsig_expired")
            continue
        if stamp < sig.inception:
            seen.append("rrsig_not_yet_valid")
            continue
        if _verifies(rrset, sig, candidates):
            return Verdict(R.SECURE)
        seen.append("rrsig_invalid")
    if not seen:  # only signatures of algorithms no validator supports
        return Verdict(R.INSECURE, ["unsupported_algorithm"])
    return Verdict(R.BOGUS, [_most_telling(seen)])


def _verifies(rrset: dns.rrset.RRset, sig, keys: list) -> bool:
    """The cryptographic check alone: times were judged by the caller."""
    keyset = {rrset.name if sig.type_covered == 48 else sig.signer: _rdataset(keys)}
    try:
        dns.dnssec.validate_rrsig(
            rrset, sig, keyset, now=sig.inception, policy=dns.dnssec.allow_all_policy
        )
    except dns.dnssec.ValidationFailure:
        return False
    return True


def _rdataset(keys: list) -> dns.rdataset.Rdataset:
    rds = dns.rdataset.Rdataset(keys[0].rdclass, keys[0].rdtype)
    for key in keys:
        rds.add(key)
    return rds


# Several signatures may fail differently; report the one that says most about the cause.
_ORDER = (
    "rrsig_expired",
    "rrsig_not_yet_valid",
    "signer_outside_zone",
    "rrsig_invalid",
    "dnskey_not_signed_by_ds_key",
)


def _most_telling(seen: list[str]) -> str:
    return min(seen, key=_ORDER.index)


def check_dnskeys(
    zone: dns.name.Name,
    dnskeys: dns.rrset.RRset | None,
    dnskey_sigs: dns.rdataset.Rdataset | None,
    ds_set: list,
    now: dt.datetime,
) -> Verdict:
    """Does a DS of the parent point at a key that signs the zone's DNSKEY RRset? (RFC 4035 §5.2)"""
    usable = [
        ds
        for ds in ds_set
        if ds.algorithm in SUPPORTED_ALGORITHMS and ds.digest_type in SUPPORTED_DIGESTS
    ]
    if not usable:
        if any(ds.algorithm not in SUPPORTED_ALGORITHMS for ds in ds_set):
            return Verdict(R.INSECURE, ["unsupported_algorithm"])
        return Verdict(R.INSECURE, ["unsupported_digest"])
    if not dnskeys:
        return Verdict(R.BOGUS, ["ds_no_matching_dnskey"])
    matched, revoked = [], False
    for ds in usable:
        for key in dnskeys:
            if key.algorithm != ds.algorithm or not key.flags & ZONE_KEY:
                continue
            if _ds_matches(zone, key, ds):
                matched.append(key)
            elif key.flags & REVOKE and _ds_matches(
                zone, key.replace(flags=key.flags & ~REVOKE), ds
            ):
                revoked = True  # the parent still names a key its operator revoked
    if not matched:
        return Verdict(R.BOGUS, ["revoked_key" if revoked else "ds_no_matching_dnskey"])
    verdict = check_rrsigs(
        dnskeys, dnskey_sigs, matched, zone, now, no_key_reason="dnskey_not_signed_by_ds_key"
    )
    if verdict.secure:
        zone_keys = [k for k in dnskeys if k.flags & ZONE_KEY and not k.flags & REVOKE]
        return Verdict(R.SECURE, keys=zone_keys)
    return verdict


def _ds_matches(zone: dns.name.Name, key, ds) -> bool:
    try:
        made = dns.dnssec.make_ds(zone, key, ds.digest_type, policy=dns.dnssec.allow_all_policy)
    except (dns.dnssec.UnsupportedAlgorithm, ValueError):
        return False
    return made.key_tag == ds.key_tag and made.digest == ds.digest


# --- denial of existence (RFC 4035 §5.4, RFC 5155 §8) --------------------------------------------
@dataclass
class Proof:
    """An NSEC or NSEC3 RRset from a negative answer, with its signatures."""

    rrset: dns.rrset.RRset
    rrsigs: dns.rdataset.Rdataset | None


def _covers(owner: dns.name.Name, nxt: dns.name.Name, name: dns.name.Name) -> bool:
    """owner < name < next in canonical order, with the chain's wrap-around at the end."""
    if owner < nxt:
        return owner < name < nxt
    return name > owner or name < nxt  # the last NSEC points back to the apex


def check_denial(
    qname: dns.name.Name,
    qtype: int,
    nxdomain: bool,
    proofs: list[Proof],
    zone: dns.name.Name,
    keys: list,
    now: dt.datetime,
    policy: Policy = Policy(),
) -> Verdict:
    """Does a signed NSEC/NSEC3 proof show that (qname, qtype) does not exist?

    Secure when it does; insecure for an opt-out span that may hide an unsigned delegation (a
    DS query only), or with `nsec3_iterations_too_high` for NSEC3 records of more iterations
    than the policy hashes (RFC 9276 §3.2: the signatures are checked, the hashes are not
    computed, as Unbound does); bogus with `denial_bogus` when the proof is missing, unsigned
    or wrong.
    """
    if not proofs:
        return Verdict(R.BOGUS, ["denial_bogus"])
    for proof in proofs:
        if not check_rrsigs(proof.rrset, proof.rrsigs, keys, zone, now).secure:
            return Verdict(R.BOGUS, ["denial_bogus"])
    nsec3 = [p.rrset for p in proofs if p.rrset.rdtype == 50]
    if nsec3:
        if max(r.iterations for rrset in nsec3 for r in rrset) > policy.nsec3_max_iterations:
            return Verdict(R.INSECURE, ["nsec3_iterations_too_high"])
        return _check_nsec3(qname, qtype, nxdomain, nsec3, zone)
    return _check_nsec(qname, qtype, nxdomain, [p.rrset for p in proofs if p.rrset.rdtype == 47])


def _types(rdata) -> set[int]:
    return {t for window, bitmap in rdata.windows for t in _bits(window, bitmap)}


def _bits(window: int, bitmap: bytes):
    for i, byte in enumerate(bitmap):
        for bit in range(8):
            if byte & (0x80 >> bit):
                yield window * 256 + i * 8 + bit


def _check_nsec(qname, qtype, nxdomain, nsecs) -> Verdict:
    if not nxdomain:
        for rrset in nsecs:
            types = _types(rrset[0])
            if rrset.name == qname:
                ok = qtype not in types and 5 not in types  # no such type, no CNAME
                return Verdict(R.SECURE) if ok else Verdict(R.BOGUS, ["denial_bogus"])
            nxt = rrset[0].next
            if _covers(rrset.name, nxt, qname) and nxt.is_subdomain(qname):
                return Verdict(R.SECURE)  # an empty non-terminal
        return Verdict(R.BOGUS, ["denial_bogus"])
    covering = [r for r in nsecs if _covers(r.name, r[0].next, qname)]
    if not covering:
        return Verdict(R.BOGUS, ["denial_bogus"])
    owner, nxt = covering[0].name, covering[0][0].next
    encloser = (
        _common(qname, owner)
        if len(_common(qname, owner)) >= len(_common(qname, nxt))
        else _common(qname, nxt)
    )
    wildcard = dns.name.Name((b"*",)).concatenate(encloser)
    if any(_covers(r.name, r[0].next, wildcard) or r.name == wildcard for r in nsecs):
        return Verdict(R.SECURE)
    return Verdict(R.BOGUS, ["denial_bogus"])


def _common(a: dns.name.Name, b: dns.name.Name) -> dns.name.Name:
    _, _, labels = a.fullcompare(b)
    return dns.name.Name(a.labels[-labels:]) if labels else dns.name.root


def _check_nsec3(qname, qtype, nxdomain, nsec3s, zone) -> Verdict:
    first = nsec3s[0][0]
    salt, iterations = first.salt, first.iterations

    def digest(name: dns.name.Name) -> str:
        return dns.dnssec.nsec3_hash(name, salt or None, iterations, 1).lower()

    spans = []
    for rrset in nsec3s:
        owner = rrset.name.labels[0].decode().lower()
        nxt = dns.dnssec.base64.b32encode(rrset[0].next).decode().translate(_TO_HEX).lower()
        spans.append((owner, nxt, rrset[0]))

    def matching(name):
        h = digest(name)
        return next((r for o, _, r in spans if o == h), None)

    def covering(name):
        h = digest(name)
        for o, n, r in spans:
            if (o < h < n) if o < n else (h > o or h < n):
                return r
        return None

    if not nxdomain:
        exact = matching(qname)
        if exact is not None:
            types = _types(exact)
            ok = qtype not in types and 5 not in types
            return Verdict(R.SECURE) if ok else Verdict(R.BOGUS, ["denial_bogus"])
    # Closest encloser proof: an existing ancestor, and a covered "next closer" name below it.
    encloser = qname.parent() if qname != zone else zone
    while encloser != zone and matching(encloser) is None:
        encloser = encloser.parent()
    if matching(encloser) is None:
        return Verdict(R.BOGUS, ["denial_bogus"])
    next_closer = dns.name.Name(qname.labels[-(len(encloser) + 1) :])
    span = covering(next_closer)
    if span is None:
        return Verdict(R.BOGUS, ["denial_bogus"])
    if not nxdomain:
        if qtype == 43 and span.flags & 1:
            return Verdict(R.INSECURE, ["no_ds"])  # an opt-out span: an unsigned delegation
        return Verdict(R.BOGUS, ["denial_bogus"])
    if covering(dns.name.Name((b"*",)).concatenate(encloser)) is None:
        return Verdict(R.BOGUS, ["denial_bogus"])
    if span.flags & 1:
        return Verdict(R.INSECURE, ["nxdomain"])  # opt-out: the name may be an unsigned delegation
    return Verdict(R.SECURE)


_TO_HEX = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHIJKLMNOPQRSTUV")
