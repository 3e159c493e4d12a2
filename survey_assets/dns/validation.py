"""DNSSEC validation steps with reasons (RFC 4033-4035, 6840, 8624): pure functions, no I/O.

Each step answers with a status and the survey's reason codes, so the scanner can say *why* a
chain fails, which a resolver's AD bit never does. The scanner (`chain.py`) walks the chain from
the trust anchor and calls these for each zone cut and each negative answer.

The steps read RRsets as `wire.py` views (names as lower-case label tuples, records as bytes);
dnspython RRsets, rdatasets, rdatas and names are accepted too and converted. Signatures are
checked with `cryptography` directly, as dnspython's `validate_rrsig` would check them (the same
candidate keys, signed data and key formats). Given a `cache` (the validator's dict), each
DNSKEY's public key object is built once and each (signed data, signature, keys) verified once,
as a resolver keeps what it has validated.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import struct
from dataclasses import dataclass, field

import dns.name
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa, utils

from survey_assets import reasons as R
from survey_assets.dns import wire as W

SUPPORTED_ALGORITHMS = frozenset({8, 10, 13, 14, 15, 16})  # RFC 8624: MUST/RECOMMENDED to validate
SUPPORTED_DIGESTS = frozenset({1, 2, 4})
# RFC 9276 §3.2: a validator MAY treat NSEC3 records with more iterations than it is willing to
# hash as insecure. 150 is Unbound's default (1.17: "1024 150 2048 150 4096 150", whatever the
# key size); the survey matches it so it answers as the resolvers of mail senders would.
NSEC3_MAX_ITERATIONS = 150
REVOKE = 0x0080
ZONE_KEY = 0x0100
DNSKEY_TYPE, DS_TYPE, NSEC_TYPE, NSEC3_TYPE, CNAME_TYPE, NS_TYPE, SOA_TYPE = 48, 43, 47, 50, 5, 2, 6


@dataclass(frozen=True)
class Policy:
    """Validation choices that are settings, not protocol."""

    nsec3_max_iterations: int = NSEC3_MAX_ITERATIONS  # above it, a denial is insecure unproven


@dataclass
class Verdict:
    status: str
    reasons: list[str] = field(default_factory=list)
    keys: list = field(default_factory=list)  # trusted DNSKEYs (`wire.Dnskey`), when secure
    # A zone's verdict: its parent proved it a delegation (a DS, or a signed denial whose
    # record at the name has the NS bit), so the name's own data is in the zone itself.
    cut: bool = False

    @property
    def secure(self) -> bool:
        return self.status == R.SECURE


# --- conversions from dnspython --------------------------------------------------------------
def _name(name) -> tuple:
    return W.name_of(name) if isinstance(name, dns.name.Name) else name


def _rrset(rrset) -> W.RRset:
    return rrset if isinstance(rrset, W.RRset) else W.rrset_view(rrset)


def _rdatas(rdatas) -> list:
    """Views of the records of an RRset, rdataset or list (of views or dnspython rdatas)."""
    if rdatas is None:
        return []
    if isinstance(rdatas, W.RRset):
        return rdatas.rdatas
    return [rd if isinstance(rd, W.Rdata) else W.rdata_view(rd) for rd in rdatas]


def _is_sub(name: tuple, ancestor: tuple) -> bool:
    return len(name) >= len(ancestor) and name[len(name) - len(ancestor) :] == ancestor


# --- signatures ------------------------------------------------------------------------------
def check_rrsigs(
    rrset,
    rrsigs,
    keys: list,
    zone,
    now: dt.datetime,
    no_key_reason: str = "rrsig_invalid",
    cache: dict | None = None,
) -> Verdict:
    """Is `rrset` signed by one of `keys` of `zone`, with a signature valid at `now`?

    `no_key_reason` is the code when every signature is by a key outside `keys`.
    """
    if not rrsigs:
        return Verdict(R.BOGUS, ["rrsig_missing"])
    rrset, zone, keys = _rrset(rrset), _name(zone), _rdatas(keys)
    seen: list[str] = []
    stamp = int(now.timestamp())
    for sig in _rdatas(rrsigs):
        if sig.type_covered != rrset.rdtype:
            continue
        if sig.signer != zone or not _is_sub(rrset.name, sig.signer):
            seen.append("signer_outside_zone")
            continue
        if sig.algorithm not in SUPPORTED_ALGORITHMS:
            continue
        candidates = [k for k in keys if k.algorithm == sig.algorithm and k.key_tag == sig.key_tag]
        if not candidates:
            seen.append(no_key_reason)  # signed by a key that is not in the trusted set
            continue
        if stamp > sig.expiration:
            seen.append("rrsig_expired")
            continue
        if stamp < sig.inception:
            seen.append("rrsig_not_yet_valid")
            continue
        if _verifies(rrset, sig, candidates, cache):
            return Verdict(R.SECURE)
        seen.append("rrsig_invalid")
    if not seen:  # only signatures of algorithms no validator supports
        return Verdict(R.INSECURE, ["unsupported_algorithm"])
    return Verdict(R.BOGUS, [_most_telling(seen)])


def _verifies(rrset: W.RRset, sig: W.Rrsig, keys: list, cache: dict | None) -> bool:
    """The cryptographic check alone (times were judged by the caller), as dnspython's
    validate_rrsig: the keys must be zone keys of protocol 3, a revoked key signs only the
    DNSKEY RRset, and a DNSKEY RRset's signer must be its owner."""
    if sig.type_covered == DNSKEY_TYPE and sig.signer != rrset.name:
        return False
    keys = [
        k for k in keys
        if k.flags & ZONE_KEY and k.protocol == 3
        and (not k.flags & REVOKE or sig.type_covered == DNSKEY_TYPE)
    ]  # fmt: skip
    if not keys:
        return False
    data = signed_data(rrset, sig)
    if data is None:
        return False
    if cache is None:
        return any(_verify(k, sig.signature, data, _PUBLIC_KEYS) for k in keys)
    key = (data, sig.signature, tuple(k.wire for k in keys))
    known = cache.get(key)
    if known is None:
        known = cache[key] = any(_verify(k, sig.signature, data, cache) for k in keys)
    return known


_FIXED = struct.Struct("!HHI")
_LENGTH = struct.Struct("!H")


def signed_data(rrset: W.RRset, sig: W.Rrsig) -> bytes | None:
    """RFC 4034 §3.1.8.1 (with §6.2's canonical forms), as dnspython builds it; None where
    dnspython refuses (the signature's label count does not fit the owner)."""
    name = rrset.name
    count = len(name)
    if name and name[0] == b"*" and sig.labels != count - 1:
        return None
    if count < sig.labels:
        return None
    if sig.labels < count:  # a wildcard expansion: signed as the wildcard's owner
        name = (b"*", *name[count - sig.labels :])
    head = W.wire_of(name) + _FIXED.pack(rrset.rdtype, 1, sig.original_ttl)
    records = sorted(rd.canon for rd in rrset.rdatas)
    return b"".join(
        [sig.canon[:18], W.wire_of(sig.signer)] + [head + _LENGTH.pack(len(c)) + c for c in records]
    )


_PUBLIC_KEYS: dict = {}  # keys built outside a validator (no cache given)
_INVALID = object()
# The padding and signature-algorithm objects hold no state: built once, not per signature.
_PKCS1 = padding.PKCS1v15()
_RSA_HASHES = {8: hashes.SHA256(), 10: hashes.SHA512()}
_ECDSA = {13: ec.ECDSA(hashes.SHA256()), 14: ec.ECDSA(hashes.SHA384())}
_CURVES = {13: (ec.SECP256R1, 32), 14: (ec.SECP384R1, 48)}


def _public_key(algorithm: int, material: bytes, cache: dict):
    """The `cryptography` key of a DNSKEY's material (None if it is not a valid key), built
    once per cache (a validator's): checking a key's point costs as much as a verification."""
    cache_key = (algorithm, material)
    found = cache.get(cache_key)
    if found is None:
        try:
            found = _load_key(algorithm, material)
        except Exception:  # malformed key material of any kind: the key verifies nothing
            found = _INVALID
        if cache is _PUBLIC_KEYS and len(cache) > 10_000:
            cache.clear()
        cache[cache_key] = found
    return None if found is _INVALID else found


def _load_key(algorithm: int, material: bytes):
    """dnspython's from_dnskey for each algorithm (RFC 3110, RFC 6605, RFC 8080)."""
    if algorithm in (8, 10):
        if len(material) < 1:
            raise ValueError("key material is empty")
        size, rest = material[0], material[1:]
        if size == 0:
            if len(rest) < 2:
                raise ValueError("truncated RSA exponent length")
            size, rest = (rest[0] << 8) | rest[1], rest[2:]
        if len(rest) < size:
            raise ValueError("truncated RSA public exponent")
        exponent, modulus = int.from_bytes(rest[:size], "big"), int.from_bytes(rest[size:], "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    if algorithm in _CURVES:
        curve, octets = _CURVES[algorithm]
        if len(material) < octets * 2:
            raise ValueError("truncated ECDSA key material")
        x = int.from_bytes(material[:octets], "big")
        y = int.from_bytes(material[octets : octets * 2], "big")
        return ec.EllipticCurvePublicNumbers(x, y, curve()).public_key()
    if algorithm == 15:
        return ed25519.Ed25519PublicKey.from_public_bytes(material)
    if algorithm == 16:
        return ed448.Ed448PublicKey.from_public_bytes(material)
    raise ValueError(f"algorithm {algorithm} is not supported")


def _verify(key: W.Dnskey, signature: bytes, data: bytes, cache: dict) -> bool:
    return verify_signature(key.algorithm, key.key, signature, data, cache)


def verify_signature(
    algorithm: int, material: bytes, signature: bytes, data: bytes, cache: dict
) -> bool:
    """Does the DNSKEY material of `algorithm` sign `data` with `signature`? (Public keys
    built once per `cache`.)"""
    public = _public_key(algorithm, material, cache)
    if public is None:
        return False
    try:
        if algorithm in (8, 10):
            public.verify(signature, data, _PKCS1, _RSA_HASHES[algorithm])
        elif algorithm in _CURVES:
            octets = _CURVES[algorithm][1]
            if len(signature) != octets * 2:  # RFC 6605 §4: r and s, each of `octets`
                return False
            der = utils.encode_dss_signature(
                int.from_bytes(signature[:octets], "big"), int.from_bytes(signature[octets:], "big")
            )
            public.verify(der, data, _ECDSA[algorithm])
        else:
            public.verify(signature, data)
    except InvalidSignature:
        return False
    except Exception:  # what a hostile signature may provoke in a backend: not a valid one
        return False
    return True


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


# --- keys ------------------------------------------------------------------------------------
def check_dnskeys(
    zone,
    dnskeys,
    dnskey_sigs,
    ds_set: list,
    now: dt.datetime,
    cache: dict | None = None,
) -> Verdict:
    """Does a DS of the parent point at a key that signs the zone's DNSKEY RRset? (RFC 4035 §5.2)"""
    zone, ds_set = _name(zone), _rdatas(ds_set)
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
    dnskeys = _rrset(dnskeys)
    owner = W.wire_of(zone)
    matched, revoked = [], False
    for ds in usable:
        for key in dnskeys.rdatas:
            if key.algorithm != ds.algorithm or not key.flags & ZONE_KEY:
                continue
            if _ds_matches(owner, key.algorithm, key.wire, ds):
                matched.append(key)
            elif key.flags & REVOKE and _ds_matches(
                owner, key.algorithm, _LENGTH.pack(key.flags & ~REVOKE) + key.wire[2:], ds
            ):
                revoked = True  # the parent still names a key its operator revoked
    if not matched:
        return Verdict(R.BOGUS, ["revoked_key" if revoked else "ds_no_matching_dnskey"])
    verdict = check_rrsigs(dnskeys, dnskey_sigs, matched, zone, now,
                           no_key_reason="dnskey_not_signed_by_ds_key", cache=cache)  # fmt: skip
    if verdict.secure:
        zone_keys = [k for k in dnskeys.rdatas if k.flags & ZONE_KEY and not k.flags & REVOKE]
        return Verdict(R.SECURE, keys=zone_keys)
    return verdict


_DIGESTS = {1: hashlib.sha1, 2: hashlib.sha256, 4: hashlib.sha384}


def _ds_matches(owner: bytes, algorithm: int, key_wire: bytes, ds) -> bool:
    """dnspython's make_ds(owner, key, ds.digest_type) compared with `ds`."""
    digest = _DIGESTS.get(ds.digest_type)
    if digest is None:
        return False
    if W.key_tag_of(algorithm, key_wire) != ds.key_tag:
        return False
    return digest(owner + key_wire).digest() == ds.digest


# --- denial of existence (RFC 4035 §5.4, RFC 5155 §8) --------------------------------------------
@dataclass
class Proof:
    """An NSEC or NSEC3 RRset from a negative answer, with its signatures."""

    rrset: object  # wire.RRset (or a dnspython RRset)
    rrsigs: object | None  # wire.RRset of its RRSIGs (or a dnspython rdataset), or None


def in_span(owner, following, key) -> bool:
    """owner < key < following, with the chain's wrap-around at the end (the last record points
    back to the first): NSEC names in canonical order, NSEC3 hashes as text."""
    if owner < following:
        return owner < key < following
    return key > owner or key < following


def _covers(owner: tuple, nxt: tuple, name: tuple) -> bool:
    """owner < name < next in canonical order (names compared by reversed labels)."""
    return in_span(owner[::-1], nxt[::-1], name[::-1])


def check_denial(
    qname,
    qtype: int,
    nxdomain: bool,
    proofs: list[Proof],
    zone,
    keys: list,
    now: dt.datetime,
    policy: Policy = Policy(),
    cache: dict | None = None,
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
    qname, zone, keys = _name(qname), _name(zone), _rdatas(keys)
    rrsets = []
    for proof in proofs:
        rrset = _rrset(proof.rrset)
        if not check_rrsigs(rrset, proof.rrsigs, keys, zone, now, cache=cache).secure:
            return Verdict(R.BOGUS, ["denial_bogus"])
        rrsets.append(rrset)
    nsec3 = [r for r in rrsets if r.rdtype == NSEC3_TYPE]
    if nsec3:
        if max(r.iterations for rrset in nsec3 for r in rrset.rdatas) > policy.nsec3_max_iterations:
            return Verdict(R.INSECURE, ["nsec3_iterations_too_high"])
        return _check_nsec3(qname, qtype, nxdomain, nsec3, zone)
    return _check_nsec(qname, qtype, nxdomain, [r for r in rrsets if r.rdtype == NSEC_TYPE])


def _check_nsec(qname, qtype, nxdomain, nsecs) -> Verdict:
    if not nxdomain:
        for rrset in nsecs:
            types = rrset.rdatas[0].types
            if rrset.name == qname:
                ok = qtype not in types and CNAME_TYPE not in types  # no such type, no CNAME
                if not ok:
                    return Verdict(R.BOGUS, ["denial_bogus"])
                return Verdict(R.SECURE, cut=NS_TYPE in types and SOA_TYPE not in types)
            nxt = rrset.rdatas[0].next
            if _covers(rrset.name, nxt, qname) and _is_sub(nxt, qname):
                return Verdict(R.SECURE)  # an empty non-terminal
        return Verdict(R.BOGUS, ["denial_bogus"])
    covering = [r for r in nsecs if _covers(r.name, r.rdatas[0].next, qname)]
    if not covering:
        return Verdict(R.BOGUS, ["denial_bogus"])
    owner, nxt = covering[0].name, covering[0].rdatas[0].next
    by_owner, by_next = _common(qname, owner), _common(qname, nxt)
    encloser = by_owner if len(by_owner) >= len(by_next) else by_next
    wildcard = (b"*", *encloser)
    if any(_covers(r.name, r.rdatas[0].next, wildcard) or r.name == wildcard for r in nsecs):
        return Verdict(R.SECURE)
    return Verdict(R.BOGUS, ["denial_bogus"])


def _common(a: tuple, b: tuple) -> tuple:
    """The labels `a` and `b` end with in common (their closest common ancestor)."""
    i = 0
    while i < len(a) and i < len(b) and a[-1 - i] == b[-1 - i]:
        i += 1
    return a[len(a) - i :]


def nsec3_hash(name: tuple, salt: bytes, iterations: int) -> bytes:
    """RFC 5155 §5 (SHA-1), in lower-case base32hex as owner labels are written."""
    digest = hashlib.sha1(W.wire_of(name) + salt).digest()
    for _ in range(iterations):
        digest = hashlib.sha1(digest + salt).digest()
    return base64.b32hexencode(digest).lower()


def _check_nsec3(qname, qtype, nxdomain, nsec3s, zone) -> Verdict:
    first = nsec3s[0].rdatas[0]
    salt, iterations = first.salt, first.iterations
    hashes_: dict[tuple, bytes] = {}

    def digest(name: tuple) -> bytes:
        if name not in hashes_:
            hashes_[name] = nsec3_hash(name, salt, iterations)
        return hashes_[name]

    spans = []
    for rrset in nsec3s:
        owner = rrset.name[0] if rrset.name else b""
        nxt = base64.b32hexencode(rrset.rdatas[0].next).lower()
        spans.append((owner, nxt, rrset.rdatas[0]))

    def matching(name):
        h = digest(name)
        return next((r for o, _, r in spans if o == h), None)

    def covering(name):
        h = digest(name)
        for o, n, r in spans:
            if in_span(o, n, h):
                return r
        return None

    if not nxdomain:
        exact = matching(qname)
        if exact is not None:
            types = exact.types
            if qtype in types or CNAME_TYPE in types:
                return Verdict(R.BOGUS, ["denial_bogus"])
            return Verdict(R.SECURE, cut=NS_TYPE in types and SOA_TYPE not in types)
    # Closest encloser proof: an existing ancestor, and a covered "next closer" name below it.
    encloser = qname[1:] if qname != zone else zone
    while encloser != zone and encloser and matching(encloser) is None:
        encloser = encloser[1:]
    if matching(encloser) is None:
        return Verdict(R.BOGUS, ["denial_bogus"])
    next_closer = qname[len(qname) - len(encloser) - 1 :] if len(qname) > len(encloser) else qname
    span = covering(next_closer)
    if span is None:
        return Verdict(R.BOGUS, ["denial_bogus"])
    if not nxdomain:
        if qtype == DS_TYPE and span.flags & 1:
            # An opt-out span: an unsigned delegation, or nothing. Over a name right below the
            # apex, with no NSEC3 of its own, the zone holds no data there: whatever the name
            # answers comes from its own (unsigned) zone.
            cut = next_closer == qname and encloser == zone
            return Verdict(R.INSECURE, ["no_ds"], cut=cut)
        return Verdict(R.BOGUS, ["denial_bogus"])
    if covering((b"*", *encloser)) is None:
        return Verdict(R.BOGUS, ["denial_bogus"])
    if span.flags & 1:
        return Verdict(R.INSECURE, ["nxdomain"])  # opt-out: the name may be an unsigned delegation
    return Verdict(R.SECURE)


def rdata_views(rdatas) -> list:
    """Trust anchors and other dnspython rdatas as the steps read them."""
    return [rd if isinstance(rd, W.Rdata) else W.rdata_view(rd) for rd in rdatas]
