"""DNSSEC validation steps with reasons (RFC 4033-4035, 6840, 8624): pure functions, no I/O.

Each step answers with a status and the survey's reason codes, so the scanner can say *why* a
chain fails, which a resolver's AD bit never does. The scanner (issue 4) walks the chain from the
trust anchor and calls these for each zone cut; the denial-of-existence proofs come next.
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
REVOKE = 0x0080
ZONE_KEY = 0x0100


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
