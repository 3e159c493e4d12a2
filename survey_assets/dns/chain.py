"""The chain of trust, walked in-process: trust anchor → DS → DNSKEY → … → the answer.

Queries go to a recursive resolver with DO and CD set, so the resolver passes on what it got
and the validation (with reasons) happens here. Each zone's keys are fetched and judged once,
however many names share the zone, and concurrent requests for the same zone wait for the
first. Nothing here raises for bad data: every question ends in a status and reasons.

A target stopped by its own limits (query budget, deadline) while fetching a shared zone's keys
leaves nothing in the cache: the targets waiting for that zone fetch it again themselves.

Answers are read as `wire.py` views and names are handled as tuples of lower-case labels; only
the records a result keeps as evidence are turned into presentation text (by dnspython).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass, field

import dns.edns
import dns.name
import dns.rcode

from survey_assets import reasons as R
from survey_assets.dns import optout
from survey_assets.dns import wire as W
from survey_assets.dns.client import Answer, BudgetExceeded, DnsClient, charge, counted, spent
from survey_assets.dns.validation import (
    Policy,
    Proof,
    Verdict,
    check_denial,
    check_dnskeys,
    check_rrsigs,
    rdata_views,
)

EDE_NO_REACHABLE_AUTHORITY = 22
SOA, CNAME, DS, RRSIG, NSEC, DNSKEY, NSEC3 = 6, 5, 43, 46, 47, 48, 50


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
    if answer.error is not None or answer.view is None:
        return R.INDETERMINATE, [answer.error or "timeout"]
    rcode = answer.view.rcode
    if rcode == dns.rcode.SERVFAIL:
        message = answer.message
        for option in message.options if message is not None else ():
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


def _proofs(view: W.View) -> list[Proof]:
    sigs = {(r.name, r.covers): r for r in view.authority if r.rdtype == RRSIG}
    return [
        Proof(r, sigs.get((r.name, r.rdtype))) for r in view.authority if r.rdtype in (NSEC, NSEC3)
    ]


def _soa(view: W.View) -> W.RRset | None:
    return next((r for r in view.authority if r.rdtype == SOA), None)


def _opt_out_below_apex(proof: Verdict) -> bool:
    """A DS denial by an opt-out NSEC3 span over a name right below the zone's apex."""
    return proof.status == R.INSECURE and proof.reasons == ["no_ds"] and proof.cut


def _is_sub(name: tuple, ancestor: tuple) -> bool:
    return len(name) >= len(ancestor) and name[len(name) - len(ancestor) :] == ancestor


class ChainValidator:
    """Validates answers from a resolver against a trust anchor, caching each zone's keys."""

    def __init__(
        self, client: DnsClient, anchors: list, now: dt.datetime, policy: Policy | None = None
    ) -> None:
        self.client, self.anchors, self.now = client, rdata_views(anchors), now
        self.policy = policy or Policy()
        # A zone's verdict and what fetching it cost (its queries and its parents'), or None
        # when its fetcher was stopped by its own limits.
        self._keys: dict[tuple, asyncio.Future[tuple[Verdict, int] | None]] = {}
        # Public keys built and signatures verified, as a resolver keeps validated RRsets.
        self._verified: dict = {}
        # Opt-out NSEC3 spans proved in DS answers, to deny other children's DS (RFC 8198).
        self._spans = optout.OptOutSpans()
        self._clock = time.monotonic

    async def keys(self, zone: dns.name.Name | tuple) -> Verdict:
        """The zone's trusted keys (secure), or why there are none (insecure, bogus, indeterminate)."""
        if isinstance(zone, dns.name.Name):
            zone = W.name_of(zone)
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

    async def zone_keys(self, zone: tuple) -> tuple[Verdict, int]:
        """`keys(zone)`, and the queries a target is charged for them (`keys` charges keys
        taken from the cache as if fetched)."""
        with counted() as budget:
            verdict = await self.keys(zone)
        return verdict, budget.used

    async def _fetch_keys(self, zone: tuple) -> Verdict:
        if not zone:
            ds = self.anchors
        else:
            held = await self._held_denial(zone)
            if held is not None:
                return held
            ds_answer = await self.client.query(zone, DS)
            failed = _failure(ds_answer)
            if failed:
                return Verdict(*failed)
            view = ds_answer.view
            ds_rrset = view.find(view.answer, zone, DS)
            if ds_rrset is None:
                soa = _soa(view)
                parent = soa.name if soa is not None else zone[1:]
                parent_keys = await self.keys(parent)
                if not parent_keys.secure:
                    return Verdict(parent_keys.status, list(parent_keys.reasons))
                proofs = _proofs(view)
                proof = check_denial(
                    zone, DS, False, proofs, parent, parent_keys.keys, self.now,
                    self.policy, self._verified,
                )  # fmt: skip
                if _opt_out_below_apex(proof):
                    ttl = optout.denial_ttl(proofs, soa)
                    self._spans.remember(parent, proofs, ttl, self._clock())
                if proof.status == R.SECURE or proof.reasons == ["no_ds"]:
                    return Verdict(R.INSECURE, ["no_ds"], cut=proof.cut)
                return proof  # bogus, or insecure for a reason of its own (NSEC3 iterations)
            sigs = view.find(view.answer, zone, RRSIG, DS)
            parent = sigs[0].signer if sigs else zone[1:]
            if not _is_sub(zone, parent) or parent == zone:
                parent = zone[1:]
            parent_keys = await self.keys(parent)
            if not parent_keys.secure:
                return Verdict(parent_keys.status, list(parent_keys.reasons))
            checked = check_rrsigs(ds_rrset, sigs, parent_keys.keys, parent, self.now,
                                   cache=self._verified)  # fmt: skip
            if not checked.secure:
                checked.cut = True  # a DS exists only at a delegation
                return checked
            ds = ds_rrset.rdatas
        key_answer = await self.client.query(zone, DNSKEY)
        failed = _failure(key_answer)
        if failed:
            return Verdict(*failed, cut=bool(zone))
        view = key_answer.view
        verdict = check_dnskeys(
            zone,
            view.find(view.answer, zone, DNSKEY),
            view.find(view.answer, zone, RRSIG, DNSKEY),
            ds,
            self.now,
            self._verified,
        )
        verdict.cut = bool(zone)  # a DS exists only at a delegation (the root: by definition)
        return verdict

    async def _held_denial(self, zone: tuple) -> Verdict | None:
        """The DS denial of `zone` from an opt-out span already proved (`optout.py`), or None."""
        held = self._spans.proofs_for(zone, self._clock())
        if held is None:
            return None
        parent, proofs = held
        parent_keys = await self.keys(parent)
        if not parent_keys.secure:
            return None
        proof = check_denial(zone, DS, False, proofs, parent, parent_keys.keys, self.now,
                             self.policy, self._verified)  # fmt: skip
        if not _opt_out_below_apex(proof):
            return None
        # Charged as the DS query it saves: a target's budget verdict never depends on order.
        charge(1)
        return Verdict(R.INSECURE, ["no_ds"], cut=True)

    async def zone_of(self, qname: tuple, fallback: tuple) -> tuple[tuple, tuple]:
        """The zone that holds `qname`, from the SOA the resolver shows for it: its name, and
        its labels as the resolver wrote them."""
        answer = await self.client.query(qname, SOA)
        if answer.view is None:
            return fallback, fallback
        for rrset in (*answer.view.answer, *answer.view.authority):
            if rrset.rdtype == SOA and _is_sub(qname, rrset.name):
                return rrset.name, rrset.owner
        return fallback, fallback

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
        q = W.name_of(qname)
        hint, hint_labels = W.name_of(zone_hint), zone_hint.labels[:-1]
        answer = await self.client.query(q, qtype)
        failed = _failure(answer)
        if failed:
            return Result(qname, qtype, failed[0], failed[1], answer.rcode)
        view = answer.view
        rcode = view.rcode
        rrset = view.find(view.answer, q, qtype)
        cname = view.find(view.answer, q, CNAME) if rrset is None else None
        target = rrset or cname
        if target is not None:
            sigs = view.find(view.answer, q, RRSIG, target.rdtype)
            zone, labels, keys = hint, hint_labels, None
            if sigs and _is_sub(q, sigs[0].signer) and _is_sub(sigs[0].signer, hint):
                zone, labels = sigs[0].signer, sigs[0].signer_labels
            elif not sigs:
                if q == hint:
                    # Where the parent proves the name a delegation, its data is in its own
                    # zone: no need to ask the resolver for the SOA (as a resolver would not).
                    keys = await self.keys(q)
                if keys is None or not keys.cut:
                    zone, labels = await self.zone_of(q, hint)
                    if zone is hint:
                        labels = hint_labels
                    if zone != q:
                        keys = None
            result = Result(qname, qtype, R.SECURE, rcode=rcode, zone=W.name_text(labels),
                            records=[target.to_text()], signatures=[sigs.to_text()] if sigs else [])  # fmt: skip
            if keys is None:
                keys = await self.keys(zone)
            if not keys.secure:
                result.status, result.reasons = keys.status, list(keys.reasons)
                return result
            verdict = check_rrsigs(target, sigs, keys.keys, zone, self.now, cache=self._verified)
            result.status, result.reasons = verdict.status, list(verdict.reasons)
            return result
        soa = _soa(view)
        zone, labels = (soa.name, soa.owner) if soa is not None else (hint, hint_labels)
        if not _is_sub(q, zone):
            zone, labels = hint, hint_labels
        result = Result(qname, qtype, R.SECURE, rcode=rcode, zone=W.name_text(labels),
                        records=[r.to_text() for r in view.authority])  # fmt: skip
        keys = await self.keys(zone)
        facts = ["nxdomain"] if rcode == dns.rcode.NXDOMAIN else []
        if not keys.secure:
            result.status, result.reasons = keys.status, list(keys.reasons) + facts
            return result
        nx = rcode == dns.rcode.NXDOMAIN
        verdict = check_denial(
            q, qtype, nx, _proofs(view), zone, keys.keys, self.now, self.policy, self._verified
        )
        result.status = verdict.status
        result.reasons = (
            facts if verdict.status == R.SECURE else sorted(set(verdict.reasons) | set(facts))
        )
        return result
