"""DANE verdicts from bytes: per address, per MX host, per domain, and rollover readiness.

Pure code, no I/O. Inputs are what the scans and captures hold (the TLSA RRset as text with its
DNSSEC status, each address's capture: its failure reason or its chain as DER), so a verdict can
be recomputed from the lake at any time. The lab's truth (`survey_assets.lab.truth`) decides the
same questions from the world's intent; the tests hold the two to each other.

- Address: pass when the chain matches a usable TLSA record (`match.match`), else the capture's
  failure or the match's reason. Addresses not contacted by policy are n/a.
- MX host: n/a when its zone is insecure or it has no TLSA; fail when the TLSA answer is not
  secure, when no record is usable, or when any address fails; else pass.
- Domain (the reference survey's rule): DANE-enabled only if every primary (lowest preference)
  MX host that accepts connections has secure TLSA that matches at every address.
- Rollover readiness (RFC 7671 §8) per MX host, from the current chains, the TLSA RRset, and the
  previous capture with the TLSA records published then: see `rollover`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from survey_assets import reasons as R
from survey_assets.dane.match import (
    DANE_EE,
    DANE_TA,
    MALFORMED,
    MATCHED,
    TA_EXPIRED,
    TA_NAME_MISMATCH,
    DaneResult,
    Tlsa,
    _Cert,
    match,
    parse_tlsa,
)

__all__ = [
    "AddressCapture",
    "HostInput",
    "AddressVerdict",
    "HostVerdict",
    "DomainVerdict",
    "address_verdict",
    "host_verdict",
    "domain_verdict",
    "rollover",
]

# Capture failures that mean "not contacted by choice": no verdict on the address.
NOT_CONTACTED = frozenset({"refused_by_policy", "address_not_allowed", "bad_host_name"})
# A DANE-TA record whose anchor is reached from the leaf by verified signatures: an ancestor.
_ANCESTOR = frozenset({MATCHED, TA_NAME_MISMATCH, TA_EXPIRED})
_WORST_FIRST = (R.BOTCHED, R.AT_RISK, R.READY)


@dataclass(frozen=True)
class AddressCapture:
    """One address's capture: its failure reason, or the chain it presented (DER, as sent)."""

    address: str
    reason: str | None
    chain: tuple[bytes, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reason is None and bool(self.chain)


@dataclass(frozen=True)
class HostInput:
    """An MX host on one day: its TLSA answer and its addresses' captures."""

    name: str
    dnssec: str  # of the TLSA answer at _25._tcp.<name>
    tlsa: tuple[str, ...] = ()  # presentation "u s m hex"
    captures: tuple[AddressCapture, ...] = ()


@dataclass
class AddressVerdict:
    address: str
    dane: str
    reasons: list[str]
    result: DaneResult | None = None  # the match, when a chain was captured

    def as_dict(self) -> dict:
        r = self.result
        return {
            "address": self.address,
            "dane": self.dane,
            "reasons": self.reasons,
            "records": [x.as_dict() for x in r.records] if r else [],
            "certificates": [c.as_dict() for c in r.certs] if r else [],
            "notes": r.notes if r else [],
        }


@dataclass
class HostVerdict:
    name: str
    dnssec: str
    dane: str
    dane_reasons: list[str]
    rollover: str
    rollover_reasons: list[str]
    accepts_connections: bool
    addresses: list[AddressVerdict] = field(default_factory=list)
    leaf_spki_sha256: list[str] = field(default_factory=list)  # distinct keys served today


@dataclass
class DomainVerdict:
    name: str
    dane: str
    dane_reasons: list[str]
    rollover: str
    rollover_reasons: list[str]
    primaries: list[str] = field(default_factory=list)


def _records(texts: Sequence[str]) -> list[Tlsa | None]:
    parsed: list[Tlsa | None] = []
    for text in texts:
        try:
            parsed.append(parse_tlsa(text))
        except ValueError:
            parsed.append(None)
    return parsed


def _usable(texts: Sequence[str]) -> list[Tlsa]:
    return [t for t in _records(texts) if t is not None and t.problem is None]


# --- addresses -----------------------------------------------------------------------------------
def address_verdict(
    host: str, tlsa: Sequence[str], capture: AddressCapture, now: dt.datetime
) -> AddressVerdict:
    if capture.reason in NOT_CONTACTED:
        return AddressVerdict(capture.address, R.NOT_APPLICABLE, R.check([capture.reason]))
    if capture.reason is not None:
        return AddressVerdict(capture.address, R.FAIL, R.check([capture.reason]))
    result = match(list(tlsa), list(capture.chain), host, now)
    if result.ok:
        return AddressVerdict(capture.address, R.PASS, [], result)
    return AddressVerdict(
        capture.address, R.FAIL, R.check([result.reason or "tlsa_no_match"]), result
    )


# --- MX hosts ------------------------------------------------------------------------------------
def _accepts(host: HostInput) -> bool:
    """Does the host accept connections? Hosts not contacted are given the benefit of the doubt."""
    contacted = [c for c in host.captures if c.reason not in NOT_CONTACTED]
    if not contacted:
        return True
    return any(c.reason != "connect_failed" for c in contacted)


def _spki_sha256(der: bytes) -> str | None:
    spki = _Cert(0, der).spki
    return hashlib.sha256(spki).hexdigest() if spki else None


def host_verdict(host: HostInput, previous: HostInput | None, now: dt.datetime) -> HostVerdict:
    accepts = _accepts(host)
    leaves = sorted({k for c in host.captures if c.ok and (k := _spki_sha256(c.chain[0]))})
    verdict = HostVerdict(host.name, host.dnssec, R.NOT_APPLICABLE, [], R.NOT_APPLICABLE, [],
                          accepts, leaf_spki_sha256=leaves)  # fmt: skip
    if host.dnssec == R.INSECURE:
        verdict.dane_reasons = ["mx_host_insecure"]
        return verdict
    if host.tlsa or host.dnssec == R.SECURE:  # per-address detail whenever there is something
        verdict.addresses = [address_verdict(host.name, host.tlsa, c, now) for c in host.captures]
    if host.dnssec != R.SECURE:
        verdict.dane, verdict.dane_reasons = R.FAIL, ["tlsa_not_secure"]
        return verdict
    if not host.tlsa:
        verdict.dane_reasons = ["no_tlsa"]
        return verdict
    if not _usable(host.tlsa):
        records = _records(host.tlsa)
        malformed = any(t is None or t.problem == MALFORMED for t in records)
        verdict.dane = R.FAIL
        verdict.dane_reasons = ["tlsa_malformed" if malformed else "tlsa_unusable"]
        return verdict
    if not verdict.addresses:
        verdict.dane, verdict.dane_reasons = R.FAIL, ["connect_failed"]  # no address to try
        verdict.accepts_connections = False
        return verdict
    failing = [a for a in verdict.addresses if a.dane == R.FAIL]
    undecided = [a for a in verdict.addresses if a.dane == R.NOT_APPLICABLE]
    if failing:
        verdict.dane, verdict.dane_reasons = (
            R.FAIL,
            R.check([c for a in failing for c in a.reasons]),
        )
    elif undecided:
        verdict.dane_reasons = R.check([c for a in undecided for c in a.reasons])
    else:
        verdict.dane = R.PASS
    verdict.rollover, verdict.rollover_reasons = rollover(host, previous, now)
    return verdict


def _issuer_sha256(chain: Sequence[bytes]) -> str | None:
    """The certificate that issued the leaf, as served (by issuer name; else the second one)."""
    certs = [_Cert(i, der) for i, der in enumerate(chain)]
    leaf = certs[0].parsed if certs else None
    if leaf is None or len(certs) < 2:
        return None
    for cert in certs[1:]:
        if cert.parsed is not None and cert.parsed.subject == leaf.issuer:
            return hashlib.sha256(cert.der).hexdigest()
    return hashlib.sha256(certs[1].der).hexdigest()


def _chain_rollover(
    name: str, tlsa: Sequence[str], chain: Sequence[bytes], previous: HostInput | None,
    now: dt.datetime,
) -> tuple[str, list[str]]:  # fmt: skip
    """Readiness as seen from one served chain."""
    usable = _usable(tlsa)
    result = match(list(tlsa), list(chain), name, now)
    ee = [r for r in result.records if r.usage == DANE_EE and r.status in (MATCHED, "no_match")]
    ta = [
        r for r in result.records if r.usage == DANE_TA and r.status not in ("unusable", MALFORMED)
    ]
    before = [c for c in previous.captures if c.ok] if previous else []
    if before and previous is not None:
        keys_before = {_spki_sha256(c.chain[0]) for c in before}
        # A new key must match a TLSA record published before the change.
        new_key = _spki_sha256(chain[0]) not in keys_before
        if new_key and not match(list(previous.tlsa), list(chain), name, now).ok:
            return R.BOTCHED, ["botched_rotation"]
    why = []
    if before and previous is not None:
        old = before[0].chain
        pinned = any(
            r.usage == DANE_TA and r.status in _ANCESTOR
            for r in match(list(previous.tlsa), list(old), name, now).records
        )
        if pinned and _issuer_sha256(old) != _issuer_sha256(chain):
            why.append("issuer_changed")
    ee_matched = [r for r in ee if r.status == MATCHED]
    if len(ee_matched) >= 2:
        why.append("duplicate_key")
    if any(r.status not in _ANCESTOR for r in ta):
        why.append("ta_not_ancestor")
    if len(usable) == 1:
        why.append("single_tlsa")
    if why:
        return R.AT_RISK, why
    if ee_matched and ta:
        return R.READY, ["ee_plus_issuer"]
    if ee_matched and len(ee) > len(ee_matched):
        return R.READY, ["ee_plus_next_ee"]
    return R.AT_RISK, ["single_tlsa"]


def rollover(
    host: HostInput, previous: HostInput | None, now: dt.datetime
) -> tuple[str, list[str]]:
    """RFC 7671 §8 readiness of a host whose TLSA answer is secure.

    ready: the served key and a standby (3 1 1 + 3 1 1), or the key and its real issuer
    (3 1 1 + 2 1 1); at risk: a single usable record, a 2 x x record that is not an ancestor of
    the leaf, two records for the served key, the issuer changed under a 2 x x record; botched:
    the key changed since the previous capture and no TLSA record published before the change
    matches the new chain. n/a with no usable record or no chain captured today."""
    if not _usable(host.tlsa):
        return R.NOT_APPLICABLE, []
    chains = list(dict.fromkeys(c.chain for c in host.captures if c.ok))
    if not chains:
        return R.NOT_APPLICABLE, []
    states = [_chain_rollover(host.name, host.tlsa, chain, previous, now) for chain in chains]
    return _worst(states)


def _worst(states: Sequence[tuple[str, list[str]]]) -> tuple[str, list[str]]:
    for worst in _WORST_FIRST:
        found = [why for state, why in states if state == worst]
        if found:
            return worst, R.check([c for why in found for c in why])
    return R.NOT_APPLICABLE, []


# --- domains -------------------------------------------------------------------------------------
def domain_verdict(
    name: str, dnssec: str, mx: Sequence[tuple[int, str]], hosts: Mapping[str, HostVerdict],
    scan_reasons: Sequence[str] = (),
) -> DomainVerdict:  # fmt: skip
    """`mx` is (preference, host) of the domain's MX answer, `scan_reasons` the reasons of its
    scan; `hosts` the day's host verdicts by name."""
    verdict = DomainVerdict(name, R.NOT_APPLICABLE, [], R.NOT_APPLICABLE, [])
    if "nxdomain" in scan_reasons:  # a listed name that is gone: nothing to judge
        verdict.dane_reasons = ["nxdomain"]
        return verdict
    if dnssec != R.SECURE:
        verdict.dane_reasons = ["mx_not_secure"]
        return verdict
    if not mx:
        verdict.dane_reasons = ["no_mx"]
        return verdict
    best = min(p for p, _ in mx)
    verdict.primaries = sorted({h for p, h in mx if p == best})
    primaries = [hosts.get(h) for h in verdict.primaries]
    live = [h for h in primaries if h is not None and h.accepts_connections]
    if not live:
        verdict.dane, verdict.dane_reasons = R.FAIL, ["connect_failed"]
        return verdict
    failing = [h for h in live if h.dane == R.FAIL]
    if failing:
        verdict.dane = R.FAIL
        verdict.dane_reasons = R.check([c for h in failing for c in h.dane_reasons])
    elif any(h.dane == R.NOT_APPLICABLE for h in live) or None in primaries:
        verdict.dane_reasons = R.check([c for h in live for c in h.dane_reasons])
    else:
        verdict.dane = R.PASS
    states = [(h.rollover, h.rollover_reasons) for h in live if h.rollover != R.NOT_APPLICABLE]
    verdict.rollover, verdict.rollover_reasons = _worst(states)
    return verdict
