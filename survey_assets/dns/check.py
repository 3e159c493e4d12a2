"""`survey check DOMAIN`: the survey's own code for one domain, live.

The DNS part validates the domain's MX answer and each MX host's TLSA answer. The TLS part
(what Viktor Dukhovni's `danecheck` prints) then connects to every address of every MX host
whose TLSA answer is secure, over SMTP STARTTLS with the survey's capture client, and reports
per address the STARTTLS outcome, the chain (subject, issuer, validity, SHA-256 of each
certificate and of its key), which TLSA record matched which certificate, and the verdict; then
each MX host's and the domain's DANE verdict and the rollover readiness. A live check has no
previous capture, so it cannot see a botched rotation (a key that changed since the last scan):
it says so rather than pretend the host is fine.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name
import dns.query

from survey_assets import eventloop
from survey_assets import reasons as R
from survey_assets.dane.day import mx_preferences
from survey_assets.dane.verdict import (
    AddressCapture,
    AddressVerdict,
    HostInput,
    HostVerdict,
    domain_verdict,
    host_verdict,
)
from survey_assets.dns.chain import ChainValidator
from survey_assets.dns.client import ClientSettings, DnsClient
from survey_assets.dns.scan import scan_domain, scan_host
from survey_assets.smtp.client import Capture, CaptureSettings, capture_all
from survey_assets.smtp.targets import addresses_of, targets_of

# A live check has no earlier capture: readiness is judged from today's chains and records.
NO_PREVIOUS = "no previous capture: a botched rotation (a new key with no TLSA) cannot be seen"


class CheckError(ValueError):
    """Bad input to a check, named in one line, found before any work starts."""


@dataclass(frozen=True)
class TlsOptions:
    """How the TLS part connects: `capture` holds the SMTP port, deadline and address policy."""

    capture: CaptureSettings


def tls_options(port: int, lab: bool) -> TlsOptions:
    """The lab's hostile hosts are given seconds (as `certificate_captures` does in the lab);
    the Internet's get the survey's production deadline."""
    if lab:
        return TlsOptions(CaptureSettings(port=port, deadline=5.0, retry_delay=1.0,
                                          networks="loopback"))  # fmt: skip
    return TlsOptions(CaptureSettings(port=port, deadline=30.0, retry_delay=10.0,
                                      networks="global"))  # fmt: skip


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


def check_domain(
    domain: str, server: tuple[str, int], anchors: list, now: dt.datetime,
    tls: TlsOptions | None = None,
) -> dict:  # fmt: skip
    """The DNS part, and the TLS part and DANE verdicts when `tls` is given."""
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
        result = {"domain": row, "mx_hosts": list(hosts), "now": now.isoformat()}
        if tls is not None:
            reports, verdicts = await check_hosts(list(hosts), server, tls, now)
            v = domain_verdict(row["name"], row["dnssec"],
                               mx_preferences(row["mx"], row["evidence"]), verdicts,
                               row["reasons"])  # fmt: skip
            result["tls"] = {"port": tls.capture.port, "previous_capture": None,
                             "rollover_note": NO_PREVIOUS, "hosts": reports}  # fmt: skip
            result["dane"] = {"dane": v.dane, "dane_reasons": v.dane_reasons,
                              "rollover": v.rollover, "rollover_reasons": v.rollover_reasons,
                              "primaries": v.primaries}  # fmt: skip
        return result

    return eventloop.run(run())


# --- the TLS part --------------------------------------------------------------------------------
def _key(host: str) -> str:
    return host.rstrip(".").lower()


async def check_hosts(
    hosts: list[dict], resolver: tuple[str, int], tls: TlsOptions, now: dt.datetime
) -> tuple[list[dict], dict[str, HostVerdict]]:
    """Per MX host (rows of `scan_host`): connect to every address of those with a secure TLSA
    answer, judge each address, the host and its rollover readiness (no previous capture).
    Returns the reports and the verdicts by host name, for `domain_verdict`."""
    # A DANE sender defers mail to a host whose TLSA answer is not secure without connecting,
    # and does not use DANE where there is no TLSA: only the rest are contacted.
    contacted = [h["name"] for h in hosts if h["dnssec"] == R.SECURE and h["tlsa"]]
    addresses = await addresses_of(contacted, resolver) if contacted else {}
    captures = await capture_all(targets_of(addresses), tls.capture)
    by_host: dict[str, list[Capture]] = {}
    for cap in captures:
        by_host.setdefault(_key(cap.host), []).append(cap)
    reports, verdicts = [], {}
    for row in hosts:
        caps = by_host.get(_key(row["name"]), [])
        inputs = [AddressCapture(c.address, c.reason, tuple(c.chain)) for c in caps]
        if row["name"] in addresses and not addresses[row["name"]]:
            inputs.append(AddressCapture("", "connect_failed"))  # as `certificate_captures`
        host = HostInput(row["name"], row["dnssec"], tuple(row["tlsa"]), tuple(inputs))
        verdict = host_verdict(host, None, now)
        verdicts[row["name"]] = verdict
        reports.append(_host_report(row, verdict, caps, row["name"] in addresses))
    return reports, verdicts


def _host_report(row: dict, v: HostVerdict, caps: list[Capture], contacted: bool) -> dict:
    found = {c.address: c for c in caps}
    addresses = [_address_report(a, found.get(a.address)) for a in v.addresses]
    return {
        "name": row["name"], "dnssec": row["dnssec"], "tlsa": list(row["tlsa"]),
        "contacted": contacted, "dane": v.dane, "dane_reasons": v.dane_reasons,
        "rollover": v.rollover, "rollover_reasons": v.rollover_reasons,
        "accepts_connections": v.accepts_connections, "leaf_spki_sha256": v.leaf_spki_sha256,
        "addresses": addresses,
    }  # fmt: skip


def _address_report(v: AddressVerdict, cap: Capture | None) -> dict:
    detail = v.as_dict()
    # danecheck's view: under each certificate, the TLSA records whose data matched it.
    for cert in detail["certificates"]:
        cert["tlsa"] = [{"index": r["index"], "text": r["text"], "status": r["status"]}
                        for r in detail["records"] if cert["depth"] in r["depths"]]  # fmt: skip
    return {
        **detail,
        "address": v.address or None,  # None: the host has no A or AAAA record
        "starttls": "ok" if cap is not None and cap.ok else (cap.reason if cap else v.reasons[0]),
        "stage": cap.stage if cap else "dns",
        "detail": cap.detail if cap else "no A or AAAA record",
        "tls_version": cap.tls_version if cap else None,
        "cipher": cap.cipher if cap else None,
        "transcript": [f"{c} {n}" for c, n in cap.transcript] if cap else [],
    }


# --- text ----------------------------------------------------------------------------------------
def _why(codes: list[str]) -> str:
    return f" ({', '.join(codes)})" if codes else ""


def _short(text: str, width: int = 24) -> str:
    fields = text.split()
    data = "".join(fields[3:])
    return " ".join([*fields[:3], data[:width] + ("…" if len(data) > width else "")])


def render(result: dict) -> str:
    d = result["domain"]
    lines = [f"{d['name']}  MX answer: {d['dnssec']}{_why(d['reasons'])}"
             f"   [validated as of {result['now']}]"]  # fmt: skip
    for host in result["mx_hosts"]:
        count = f", {len(host['tlsa'])} TLSA record(s)" if host["tlsa"] else ", no TLSA"
        lines.append(f"  MX {host['name']}  TLSA answer: {host['dnssec']}{_why(host['reasons'])}"
                     f"{count}")  # fmt: skip
        lines += [f"      TLSA {t}" for t in host["tlsa"]]
    if "tls" in result:
        lines += _render_tls(result)
    return "\n".join(lines)


def _render_tls(result: dict) -> list[str]:
    tls = result["tls"]
    lines = ["", f"TLS (SMTP port {tls['port']}; {tls['rollover_note']})"]
    for host in tls["hosts"]:
        state = f"DANE {host['dane']}{_why(host['dane_reasons'])}"
        if host["rollover"] != R.NOT_APPLICABLE:
            state += f"; rollover {host['rollover']}{_why(host['rollover_reasons'])}"
        lines.append(f"  {host['name']}  {state}")
        if not host["contacted"]:
            why = (
                "no TLSA records" if host["dnssec"] == R.SECURE else "TLSA answer " + host["dnssec"]
            )
            lines.append(f"    not contacted: {why}")
        for a in host["addresses"]:
            lines += _render_address(a)
    v = result["dane"]
    lines.append(f"{result['domain']['name']}  DANE: {v['dane']}{_why(v['dane_reasons'])}; "
                 f"rollover readiness: {v['rollover']}{_why(v['rollover_reasons'])}"
                 f"; primary MX: {', '.join(v['primaries']) or '-'}")  # fmt: skip
    return lines


def _render_address(a: dict) -> list[str]:
    where = f"[{a['address']}]" if a["address"] else "[no address]"
    if a["starttls"] == "ok":
        session = f"STARTTLS ok, {a['tls_version']} {a['cipher']}"
    else:
        session = f"{a['starttls']} at {a['stage']}: {a['detail']}"
    lines = [f"    {where} {a['dane']}{_why(a['reasons'])}: {session}"]
    for c in a["certificates"]:
        lines.append(f"      depth {c['depth']}  subject {c['subject']}  issuer {c['issuer']}")
        if c["error"]:
            lines.append(f"               does not parse: {c['error']}")
        else:
            lines.append(f"               valid {c['not_before']} .. {c['not_after']}")
        lines.append(f"               cert sha256 {c['sha256']}")
        lines.append(f"               spki sha256 {c['spki_sha256']}")
        lines += [f"               <- TLSA {_short(t['text'])} [{t['status']}]" for t in c["tlsa"]]
    unmatched = [r for r in a["records"] if not r["depths"]]
    lines += [f"      TLSA {_short(r['text'])} [{r['status']}]: matches no certificate"
              for r in unmatched]  # fmt: skip
    return lines
