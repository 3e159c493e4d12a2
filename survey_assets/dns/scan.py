"""Scanning candidate domains: each one's MX answer, validated, as a row of the day's scan."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
from collections.abc import Iterator

import dns.name
import dns.rdatatype as T

from survey_assets import reasons as R
from survey_assets.dns import fastpath
from survey_assets.dns import wire as W
from survey_assets.dns.chain import ChainValidator
from survey_assets.dns.client import ClientSettings, DnsClient
from survey_assets.dns.validation import Policy


def read_anchor(text: str) -> list:
    """DS records of the root from a trust-anchor file (`. IN DS ...` lines, as Unbound reads)."""
    import dns.rdata

    anchors = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split(";", 1)[0].split()
        if not fields:
            continue
        try:
            index = [f.upper() for f in fields].index("DS")
            if fields[0] != ".":
                raise ValueError("not the root")
            anchors.append(dns.rdata.from_text("IN", "DS", " ".join(fields[index + 1 :])))
        except (ValueError, dns.exception.DNSException) as exc:
            raise ValueError(f"trust anchor line {number}: {line.strip()!r}: {exc}") from None
    if not anchors:
        raise ValueError("the trust anchor holds no DS record for the root")
    return anchors


def _from_text(text: str) -> tuple[dns.name.Name, str]:
    """A target's name and its presentation text: a plain absolute name (the survey's targets,
    in canonical form) without dnspython's text parser, which costs more than its checks."""
    if W.is_plain(text):
        return dns.name.Name(text.encode().split(b".")), text
    name = dns.name.from_text(text)
    return name, name.to_text()


def domain_row(
    text: str, status: str, reasons: list[str], rcode: int | None, zone: str | None,
    records: list[str], signatures: list[str],
) -> dict:  # fmt: skip
    """A domain's row: its MX hosts (by preference) read from the MX RRset's text."""
    reasons = list(reasons)
    mx = []
    if status != R.INDETERMINATE and records and rcode == 0:
        for rrset_text in records:
            for line in rrset_text.splitlines():
                fields = line.split()
                if len(fields) >= 6 and fields[3] == "MX":
                    mx.append((int(fields[4]), fields[5]))
    if status != R.INDETERMINATE and rcode == 0 and not mx:
        reasons.append("no_mx")
    return {
        "name": text,
        "dnssec": status,
        "reasons": R.check(reasons),
        "mx": [host for _, host in sorted(mx)],
        "zone": zone,
        "evidence": records + signatures,
    }


async def scan_domain(validator: ChainValidator, name: dns.name.Name, text: str = "") -> dict:
    """A domain's MX answer, validated within the per-target query budget and deadline
    (`text`: the name's presentation text, when the caller has it)."""
    result = await validator.validate_within_limits(name, T.MX, name)
    return domain_row(text or name.to_text(), result.status, result.reasons, result.rcode,
                      result.zone, result.records, result.signatures)  # fmt: skip


async def scan_host(validator: ChainValidator, host: dns.name.Name, text: str = "") -> dict:
    """An MX host's TLSA RRset at _25._tcp.<host>: its DNSSEC status and the records."""
    qname = dns.name.Name((b"_25", b"_tcp", *host.labels))
    result = await validator.validate_within_limits(qname, T.TLSA, host.parent())
    tlsa = [
        line.split(None, 4)[4]
        for text in result.records
        for line in text.splitlines()
        if result.rcode == 0 and line.split()[3:4] == ["TLSA"]
    ]
    return {
        "name": text or host.to_text(),
        "dnssec": result.status,
        # No TLSA name is the usual case (the host exists): the empty `tlsa` says it.
        "reasons": R.check([r for r in result.reasons if r != "nxdomain"]),
        "tlsa": tlsa,
        "zone": result.zone,
        "evidence": result.records + result.signatures,
    }


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """The garbage collector tuned for a scan: it allocates millions of small objects that die
    young (answers, records, names) and makes few cycles, and the cyclic collector's default
    rhythm (every 700 allocations, and full passes over the whole heap: in a Dagster step,
    every module's objects) took a tenth of the scanner's time. Objects alive before the scan
    are frozen out of the passes; young ones are collected every 20,000 allocations."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 20_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


async def _scan_all(
    scan, names, resolver, anchors, now, settings, policy, fast: bool = False, stats=None
) -> list[dict]:
    """One row per name, in order, from `scan(validator, name)`; zone keys shared by all.
    `fast`: the domains the fast path decides (`fastpath.py`) are not scanned one by one, and
    `stats["fast_path_domains"]` counts them."""
    settings, policy = settings or ClientSettings(), policy or Policy()
    rows: list[dict] = [{}] * len(names)
    with _fewer_collections():
        async with DnsClient([resolver], settings) as client:
            validator = ChainValidator(client, anchors, now, policy)
            decided = (
                await fastpath.scan_domains(validator, client, names, settings, policy)
                if fast
                else {}
            )
            for index, (status, reasons, zone, records, signatures) in decided.items():
                rows[index] = domain_row(names[index], status, reasons, 0, zone, [records],
                                         [signatures] if signatures else [])  # fmt: skip
            todo = ((i, name) for i, name in enumerate(names) if i not in decided)
            if stats is not None:
                stats["fast_path_domains"] = len(decided)

            # A target asks one question at a time: this many workers, each taking the next
            # target when its last is done, keep the client's slots busy (one task per worker,
            # not per target), and a target's deadline runs from its start.
            async def worker() -> None:
                for index, name in todo:
                    rows[index] = await scan(validator, *_from_text(name))

            workers = min(len(names) - len(decided), max(1, settings.max_in_flight))
            await asyncio.gather(*(worker() for _ in range(workers)))
    return rows


async def scan_hosts(
    hosts: list[str],
    resolver: tuple[str, int],
    anchors: list,
    now: dt.datetime,
    settings: ClientSettings | None = None,
    policy: Policy | None = None,
) -> list[dict]:
    """One row per MX host, in order."""
    return await _scan_all(scan_host, hosts, resolver, anchors, now, settings, policy)


async def scan_domains(
    names: list[str],
    resolver: tuple[str, int],
    anchors: list,
    now: dt.datetime,
    settings: ClientSettings | None = None,
    policy: Policy | None = None,
    fast: bool = True,
    stats: dict | None = None,
) -> list[dict]:
    """One row per name, in order; a name that cannot be scanned still gets its row.
    `fast=False` judges every name with the Python scanner (the fast path's reference);
    `stats`, when given, is told how many the fast path decided (`fast_path_domains`)."""
    return await _scan_all(
        scan_domain, names, resolver, anchors, now, settings, policy, fast, stats
    )
