"""`survey check DOMAIN`: the survey's own DNS code for one domain, live (STARTTLS and DANE
verdicts join when the TLS layer lands)."""

from __future__ import annotations

import asyncio
import datetime as dt

import dns.exception
import dns.message
import dns.name
import dns.query

from survey_assets.dns.chain import ChainValidator
from survey_assets.dns.client import ClientSettings, DnsClient
from survey_assets.dns.scan import scan_domain, scan_host


class CheckError(ValueError):
    """Bad input to a check, named in one line, found before any work starts."""


def parse_server(text: str) -> tuple[str, int]:
    address, _, port = text.rpartition("@")
    if not address:
        address, port = text, "53"
    try:
        return address, int(port)
    except ValueError:
        raise CheckError(f"resolver {text!r}: expected ADDRESS or ADDRESS@PORT") from None


def reachable(server: tuple[str, int], timeout: float = 2.0) -> bool:
    try:
        dns.query.udp(
            dns.message.make_query(".", "SOA"), server[0], port=server[1], timeout=timeout
        )
    except (dns.exception.DNSException, OSError):
        return False
    return True


def check_domain(domain: str, server: tuple[str, int], anchors: list, now: dt.datetime) -> dict:
    try:
        name = dns.name.from_text(domain)
    except dns.exception.DNSException as exc:
        raise CheckError(f"{domain!r} is not a valid DNS name: {exc}") from None
    if not reachable(server):
        raise CheckError(f"no DNS answer from the resolver at {server[0]}@{server[1]}")

    async def run() -> dict:
        async with DnsClient([server], ClientSettings(timeout=2.0, retries=2)) as client:
            validator = ChainValidator(client, anchors, now)
            row = await scan_domain(validator, name)
            hosts = await asyncio.gather(
                *(scan_host(validator, dns.name.from_text(h)) for h in row["mx"])
            )
            return {"domain": row, "mx_hosts": list(hosts), "now": now.isoformat()}

    return asyncio.run(run())


def render(result: dict) -> str:
    d = result["domain"]
    why = f" ({', '.join(d['reasons'])})" if d["reasons"] else ""
    lines = [f"{d['name']}  MX answer: {d['dnssec']}{why}   [validated as of {result['now']}]"]
    for host in result["mx_hosts"]:
        why = f" ({', '.join(host['reasons'])})" if host["reasons"] else ""
        count = f", {len(host['tlsa'])} TLSA record(s)" if host["tlsa"] else ", no TLSA"
        lines.append(f"  MX {host['name']}  TLSA answer: {host['dnssec']}{why}{count}")
        lines += [f"      TLSA {t}" for t in host["tlsa"]]
    return "\n".join(lines)
