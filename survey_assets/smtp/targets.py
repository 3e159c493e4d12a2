"""The addresses to capture: every A and AAAA record of each MX host, asked of the resolver."""

from __future__ import annotations

import asyncio

import dns.rdatatype

from survey_assets.dns.client import ClientSettings, DnsClient
from survey_assets.smtp.client import Target, valid_host_name

_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)


async def addresses_of(
    hosts: list[str], resolver: tuple[str, int], settings: ClientSettings | None = None
) -> dict[str, list[str]]:
    """host -> its IPv4 then IPv6 addresses (CNAMEs followed by the resolver); [] when none."""
    found: dict[str, list[str]] = {h: [] for h in hosts}
    asked = [h for h in hosts if valid_host_name(h)]  # a bad name is reported by the capture
    questions = [(h, t) for h in asked for t in _TYPES]
    async with DnsClient([resolver], settings or ClientSettings(timeout=2.0, retries=2)) as client:
        answers = await asyncio.gather(
            *(client.query(h, t, dnssec=False, cd=False) for h, t in questions)
        )
    for (host, rdtype), answer in zip(questions, answers, strict=True):
        if not answer.ok or answer.message is None:
            continue
        for rrset in answer.message.answer:
            if rrset.rdtype == rdtype:
                found[host].extend(r.address for r in rrset)
    return {h: list(dict.fromkeys(a)) for h, a in found.items()}


def targets_of(
    addresses: dict[str, list[str]], providers: dict[str, str] | None = None
) -> list[Target]:
    """One target per (host, address); `providers` maps a host to its concurrency group."""
    providers = providers or {}
    return [
        Target(host, address, providers.get(host))
        for host, found in addresses.items()
        for address in found
    ]
