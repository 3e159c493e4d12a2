"""The chain of trust, walked in-process: trust anchor → DS → DNSKEY → … → the answer.

Queries go to a recursive resolver with DO and CD set, so the resolver passes on what it got
and the validation (with reasons) happens here. Each zone's keys are fetched and judged once,
however many names share the zone, and concurrent requests for the same zone wait for the
first. Nothing here raises for bad data: every question ends in a status and reasons.

A target stopped by its own limits (query budget, deadline) while fetching a shared zone's keys
leaves nothing in the cache: the targets waiting for that zone fetch it again themselves.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

import dns.edns
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T
import dns.rrset

from survey_assets import reasons as R
from survey_assets.dns.client import Answer, BudgetExceeded, DnsClient, charge, spent
from survey_assets.dns.validation import (
    Policy,
    Proof,
    Verdict,
    check_denial,
    check_dnskeys,
    check_rrsigs,
)

EDE_NO_REACHABLE_AUTHORITY = 22


@dataclass
class Result:
    """A validated answer: status, reasons, and the records (as text) that were judged."""

    qname: dns.name.Name
    qtype: int
    status: str
    reasons: list[str] = field(default_factory=list)
    rcode: int | None = None
    records: list[str] = field(default_factory=list)  # the answer's RRsets, presentation text
    signatures: list[str] = field(default_factory=list)  # their RRSIGs
    zone: str | None = None


def _failure(answer: Answer) -> tuple[str, list[str]] | None:
    """Indeterminate when nothing usable came back: the transport error or the resolver's SERVFAIL."""
    if answer.error is not None or answer.message is None:
        return R.INDETERMINATE, [answer.error or "timeout"]
    rcode = answer.message.rcode()
    if rcode == dns.rcode.SERVFAIL:
        for option in answer.message.options:
            if isinstance(option, dns.edns.EDEOption) and option.code == EDE_NO_REACHABLE_AUTHORITY:
                text = (option.text or "").lower()
                return R.INDETERMINATE, ["lame_delegation" if "lame" in text else "timeout"]
        return R.INDETERMINATE, ["servfail"]
    if rcode == dns.rcode.REFUSED:
        return R.INDETERMINATE, ["refused"]
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return R.INDETERMINATE, [
            dns.rcode.to_text(rcode).lower() if rcode in (1, 4) else "servfail"
        ]
    return None


def _find(section, name: dns.name.Name, rdtype: int, covers: int = 0) -> dns.rrset.RRset | None:
    for rrset in section:
        if rrset.name == name and rrset.rdtype == rdtype and rrset.covers == covers:
            return rrset
    return None


def _proofs(message: dns.message.Message) -> list[Proof]:
    sigs = {(r.name, r.covers): r for r in message.authority if r.rdtype == T.RRSIG}
    return [
        Proof(r, sigs.get((r.name, r.rdtype)))
        for r in message.authority
        if r.rdtype in (T.NSEC, T.NSEC3)
    ]


def _soa_zone(message: dns.message.Message) -> dns.name.Name | None:
    return next((r.name for r in message.authority if r.rdtype == T.SOA), None)


class ChainValidator:
    """Validates answers from a resolver against a trust anchor, caching each zone's keys."""

    def __init__(
        self, client: DnsClient, anchors: list, now: dt.datetime, policy: Policy | None = None
    ) -> None:
        self.client, self.anchors, self.now = client, anchors, now
        self.policy = policy or Policy()
        # A zone's verdict and what fetching it cost (its queries and its parents'), or None
        # when its fetcher was stopped by its own limits.
        self._keys: dict[dns.name.Name, asyncio.Future[tuple[Verdict, int] | None]] = {}

    async def keys(self, zone: dns.name.Name) -> Verdict:
        """The zone's trusted keys (secure), or why there are none (insecure, bogus, indeterminate)."""
        zone = zone.canonicalize()
        while True:
            future = self._keys.get(zone)
            if future is None:
                break
            entry = await future
            if entry is not None:
                # Charged as if fetched here: a target's budget verdict never depends on order.
                charge(entry[1])
                return entry[0]
        future = self._keys[zone] = asyncio.get_running_loop().create_future()
        before = spent()
        try:
            verdict = await self._fetch_keys(zone)
        except (BudgetExceeded, asyncio.CancelledError):
            del self._keys[zone]  # this target's limits, not the zone's: others try again
            future.set_result(None)
            raise
        except Exception as exc:  # a bug must not hang the other waiters
            future.set_result((Verdict(R.INDETERMINATE, ["servfail"]), 0))
            raise exc
        future.set_result((verdict, spent() - before))
        return verdict

    async def _fetch_keys(self, zone: dns.name.Name) -> Verdict:
        if zone == dns.name.root:
            ds = list(self.anchors)
        else:
            ds_answer = await self.client.query(zone, T.DS)
            failed = _failure(ds_answer)
            if failed:
                return Verdict(*failed)
            message = ds_answer.message
            ds_rrset = _find(message.answer, zone, T.DS)
            if ds_rrset is None:
                parent = _soa_zone(message) or zone.parent()
                parent_keys = await self.keys(parent)
                if not parent_keys.secure:
                    return parent_keys
                proof = check_denial(
                    zone, T.DS, False, _proofs(message), parent, parent_keys.keys, self.now,
                    self.policy,
                )  # fmt: skip
                if proof.status == R.SECURE or proof.reasons == ["no_ds"]:
                    return Verdict(R.INSECURE, ["no_ds"])
                return proof  # bogus, or insecure for a reason of its own (NSEC3 iterations)
            sigs = _find(message.answer, zone, T.RRSIG, T.DS)
            parent = sigs[0].signer if sigs else zone.parent()
            if not zone.is_subdomain(parent) or parent == zone:
                parent = zone.parent()
            parent_keys = await self.keys(parent)
            if not parent_keys.secure:
                return parent_keys
            checked = check_rrsigs(ds_rrset, sigs, parent_keys.keys, parent, self.now)
            if not checked.secure:
                return checked
            ds = list(ds_rrset)
        key_answer = await self.client.query(zone, T.DNSKEY)
        failed = _failure(key_answer)
        if failed:
            return Verdict(*failed)
        message = key_answer.message
        return check_dnskeys(
            zone,
            _find(message.answer, zone, T.DNSKEY),
            _find(message.answer, zone, T.RRSIG, T.DNSKEY),
            ds,
            self.now,
        )

    async def zone_of(self, qname: dns.name.Name, fallback: dns.name.Name) -> dns.name.Name:
        """The zone that holds `qname`, from the SOA the resolver shows for it."""
        answer = await self.client.query(qname, T.SOA)
        if answer.message is None:
            return fallback
        for rrset in (*answer.message.answer, *answer.message.authority):
            if rrset.rdtype == T.SOA and qname.is_subdomain(rrset.name):
                return rrset.name
        return fallback

    async def validate_within_limits(
        self, qname: dns.name.Name, qtype: int, zone_hint: dns.name.Name
    ) -> Result:
        """`validate` as one target under the client's query budget and deadline: a target that
        would need more stops, indeterminate, with the limit's reason code."""
        result, stopped = await self.client.within_limits(self.validate(qname, qtype, zone_hint))
        if result is None:
            return Result(qname, qtype, R.INDETERMINATE, [stopped or "timeout"])
        return result

    async def validate(self, qname: dns.name.Name, qtype: int, zone_hint: dns.name.Name) -> Result:
        """Ask for (qname, qtype) and judge the answer. `zone_hint` is the zone the name is
        expected in (a candidate's own zone); signatures and SOA records refine it."""
        answer = await self.client.query(qname, qtype)
        failed = _failure(answer)
        if failed:
            return Result(qname, qtype, failed[0], failed[1], answer.rcode)
        message = answer.message
        rcode = message.rcode()
        rrset = _find(message.answer, qname, qtype)
        cname = _find(message.answer, qname, T.CNAME) if rrset is None else None
        target = rrset or cname
        if target is not None:
            sigs = _find(message.answer, qname, T.RRSIG, target.rdtype)
            zone = zone_hint
            if (
                sigs
                and qname.is_subdomain(sigs[0].signer)
                and sigs[0].signer.is_subdomain(zone_hint)
            ):
                zone = sigs[0].signer
            elif not sigs:
                zone = await self.zone_of(qname, zone_hint)
            result = Result(qname, qtype, R.SECURE, rcode=rcode, zone=zone.to_text(),
                            records=[target.to_text()], signatures=[sigs.to_text()] if sigs else [])  # fmt: skip
            keys = await self.keys(zone)
            if not keys.secure:
                result.status, result.reasons = keys.status, list(keys.reasons)
                return result
            verdict = check_rrsigs(target, sigs, keys.keys, zone, self.now)
            result.status, result.reasons = verdict.status, list(verdict.reasons)
            return result
        zone = _soa_zone(message) or zone_hint
        if not qname.is_subdomain(zone):
            zone = zone_hint
        result = Result(qname, qtype, R.SECURE, rcode=rcode, zone=zone.to_text(),
                        records=[r.to_text() for r in message.authority])  # fmt: skip
        keys = await self.keys(zone)
        facts = ["nxdomain"] if rcode == dns.rcode.NXDOMAIN else []
        if not keys.secure:
            result.status, result.reasons = keys.status, list(keys.reasons) + facts
            return result
        nx = rcode == dns.rcode.NXDOMAIN
        verdict = check_denial(
            qname, qtype, nx, _proofs(message), zone, keys.keys, self.now, self.policy
        )
        result.status = verdict.status
        result.reasons = (
            facts if verdict.status == R.SECURE else sorted(set(verdict.reasons) | set(facts))
        )
        return result
