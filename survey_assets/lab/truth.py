"""Ground truth: what a correct survey must find in the lab on a date.

Computed from the world's *intent* (which faults were injected where), never by validating or
matching what the servers serve, so the survey and the lab's own serving code are both held to
an independent answer. One JSON object per observation; see the README for the format.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import dns.name

from survey_assets import reasons as R
from survey_assets.lab import sources as S
from survey_assets.lab.world import (
    BLACKHOLE_ADDRESS,
    INFRA_TLD,
    MAIL_PROVIDERS,
    NAMESERVER_REASONS,
    ROOT_SERVERS,
    TLD_SERVERS,
    Domain,
    MxHost,
    World,
    world,
)

# DNS-level faults of a signed domain: (status of its MX answer, reason codes).
FAULT_STATUS: dict[str, tuple[str, list[str]]] = {
    "ds_mismatch": (R.BOGUS, ["ds_no_matching_dnskey"]),
    "dnskey_not_signed_by_ds_key": (R.BOGUS, ["dnskey_not_signed_by_ds_key"]),
    "rrsig_expired": (R.BOGUS, ["rrsig_expired"]),
    "rrsig_not_yet_valid": (R.BOGUS, ["rrsig_not_yet_valid"]),
    "rrsig_invalid": (R.BOGUS, ["rrsig_invalid"]),
    "rrsig_missing": (R.BOGUS, ["rrsig_missing"]),
    "signer_outside_zone": (R.BOGUS, ["signer_outside_zone"]),
    "revoked_key": (R.BOGUS, ["revoked_key"]),
    "unsupported_algorithm": (R.INSECURE, ["unsupported_algorithm"]),
    "unsupported_digest": (R.INSECURE, ["unsupported_digest"]),
    "mx_denial_bogus": (R.BOGUS, ["denial_bogus"]),
    "lame": (R.INDETERMINATE, ["lame_delegation"]),
    "ns_timeout": (R.INDETERMINATE, ["timeout"]),
    # NODATA for MX proven only by NSEC3 of 200 iterations: above the 150 validators hash.
    "nsec3_iterations_too_high": (R.INSECURE, ["nsec3_iterations_too_high"]),
}
BEHAVIOUR_REASON = {
    "no_starttls": "starttls_not_offered",
    "starttls_454": "starttls_refused",
    "handshake_fail": "tls_handshake_failed",
    "tarpit": "timeout",
    "refused": "connect_failed",
}


def _row(kind: str, name: str, **fields) -> dict:
    for key in ("reasons", "dane_reasons", "rollover_reasons"):
        if key in fields:
            fields[key] = R.check(fields[key])
    return {"kind": kind, "name": name, **fields}


# --- MX hosts ------------------------------------------------------------------------------------
def tlsa_matches(host: MxHost) -> tuple[bool, list[str]]:
    """Does the chain the host presents match a usable TLSA record? (by intent, not by bytes)"""
    usable = [s for s in host.tlsa if s.usage in (2, 3) and not s.malformed]
    if any(s.usage == 3 and s.key == host.key for s in usable):
        return True, []
    if any(s.usage == 2 and s.ca == host.issuer for s in usable):
        if host.name in host.cert_names:
            return True, []
        return False, ["dane_ta_name_mismatch"]
    return False, ["tlsa_no_match"]


def address_rows(host: MxHost) -> list[dict]:
    rows = []
    for address in host.addresses:
        behaviour = host.behaviour[address]
        if behaviour != "ok":
            outcome, why = R.FAIL, [BEHAVIOUR_REASON[behaviour]]
        else:
            ok, why = tlsa_matches(host)
            outcome = R.PASS if ok else R.FAIL
        rows.append(
            _row("address", host.name, address=address, smtp=behaviour, dane=outcome, reasons=why)
        )
    return rows


def rollover(host: MxHost, previous: MxHost | None) -> tuple[str, list[str]]:
    usable = [s for s in host.tlsa if s.usage in (2, 3) and not s.malformed]
    if not usable or "ok" not in host.behaviour.values():
        return R.NOT_APPLICABLE, []  # no TLSA to roll, or no chain seen to compare with
    if previous is not None and previous.key != host.key:
        before = [s for s in previous.tlsa if s.usage in (2, 3) and not s.malformed]
        covered = any(s.usage == 3 and s.key == host.key for s in before) or any(
            s.usage == 2 and s.ca == host.issuer for s in before
        )
        if not covered:
            return R.BOTCHED, ["botched_rotation"]
    why = []
    pinned = previous is not None and any(
        s.usage == 2 and s.ca == previous.issuer for s in previous.tlsa
    )
    if pinned and previous.issuer != host.issuer:
        why.append("issuer_changed")
    keys = [s.key for s in usable if s.usage == 3]
    if len(keys) != len(set(keys)):
        why.append("duplicate_key")
    if any(s.usage == 2 and s.ca != host.issuer for s in usable):
        why.append("ta_not_ancestor")
    if len(usable) == 1:
        why.append("single_tlsa")
    if why:
        return R.AT_RISK, why
    if host.key in keys and any(s.usage == 2 for s in usable):
        return R.READY, ["ee_plus_issuer"]
    if host.key in keys and len(set(keys)) >= 2:
        return R.READY, ["ee_plus_next_ee"]
    return R.AT_RISK, ["single_tlsa"]


def host_row(w: World, host: MxHost, previous: MxHost | None) -> dict:
    notes: dict = {"addresses": list(host.addresses), "tlsa_count": len(host.tlsa)}
    if not host.zone_signed:
        return _row(
            "mx_host", host.name, dnssec=R.INSECURE, reasons=["no_ds"], dane=R.NOT_APPLICABLE,
            dane_reasons=["mx_host_insecure"], rollover=R.NOT_APPLICABLE, rollover_reasons=[],
            accepts_connections=True, **notes,
        )  # fmt: skip
    status, why = R.SECURE, []
    if host.tlsa_fault:
        status, why = (
            R.BOGUS,
            ["rrsig_invalid" if host.tlsa_fault == "rrsig_invalid" else "denial_bogus"],
        )
    accepts = any(b != "refused" for b in host.behaviour.values())
    state, state_why = rollover(host, previous)
    if status != R.SECURE:
        dane, dane_why = R.FAIL, ["tlsa_not_secure"]
        state, state_why = R.NOT_APPLICABLE, []
    elif not host.tlsa:
        dane, dane_why = R.NOT_APPLICABLE, ["no_tlsa"]
    elif all(s.usage not in (2, 3) or s.malformed for s in host.tlsa):
        malformed = any(s.malformed for s in host.tlsa)
        dane, dane_why = R.FAIL, ["tlsa_malformed" if malformed else "tlsa_unusable"]
    else:
        addresses = address_rows(host)
        failing = [r for r in addresses if r["dane"] != R.PASS]
        dane = R.FAIL if failing else R.PASS
        dane_why = sorted({c for r in failing for c in r["reasons"]})
    return _row(
        "mx_host", host.name, dnssec=status, reasons=why, dane=dane, dane_reasons=dane_why,
        rollover=state, rollover_reasons=state_why, accepts_connections=accepts, **notes,
    )  # fmt: skip


# --- domains -------------------------------------------------------------------------------------
def domain_status(d: Domain) -> tuple[str, list[str]]:
    if not d.signed:
        return R.INSECURE, ["no_ds"]
    if d.fault:
        status, why = FAULT_STATUS[d.fault]
        return status, list(why)
    return R.SECURE, []


def _hosts_of(w: World, d: Domain) -> list[tuple[int, MxHost]]:
    found = []
    for pref, name in w.mx_records(d):
        host = w.self_host(d) if d.mail in ("self", "self_dane") else w.host(name)
        assert host is not None, name
        found.append((pref, host))
    return found


def domain_row(w: World, d: Domain, host_rows: dict[str, dict], sources: list[str]) -> dict:
    status, why = domain_status(d)
    mx = w.mx_records(d)
    visible = status != R.INDETERMINATE
    if visible and not mx:
        why.append("no_mx")
    notes = []
    if d.signed and d.denial == "nsec3" and d.nsec3_iterations:
        notes += ["nsec3_iterations", "nsec3_salt"]
    dane, dane_why, state, state_why = R.NOT_APPLICABLE, [], R.NOT_APPLICABLE, []
    if status != R.SECURE:
        dane_why = ["mx_not_secure"]
    elif not mx:
        dane_why = ["no_mx"]
    else:
        hosts = _hosts_of(w, d)
        best = min(p for p, _ in hosts)
        primaries = [host_rows[h.name] for p, h in hosts if p == best]
        live = [r for r in primaries if r["accepts_connections"]]
        if not live:
            dane, dane_why = R.FAIL, ["connect_failed"]
        elif any(r["dane"] == R.FAIL for r in live):
            dane = R.FAIL
            dane_why = sorted({c for r in live if r["dane"] == R.FAIL for c in r["dane_reasons"]})
        elif any(r["dane"] == R.NOT_APPLICABLE for r in live):
            dane_why = sorted({c for r in live for c in r["dane_reasons"]})
        else:
            dane = R.PASS
        states = [r["rollover"] for r in live if r["rollover"] != R.NOT_APPLICABLE]
        for worst in (R.BOTCHED, R.AT_RISK, R.READY):
            if worst in states:
                state = worst
                state_why = sorted(
                    {c for r in live if r["rollover"] == worst for c in r["rollover_reasons"]}
                )
                break
    return _row(
        "domain", d.name, tld=d.tld, dnssec=status, reasons=why, dane=dane, dane_reasons=dane_why,
        rollover=state, rollover_reasons=state_why, signed=d.signed, notes=notes, registrar=d.registrar,
        mx=[h for _, h in mx] if visible else [], sources=sorted(sources),
    )  # fmt: skip


def _missing_row(name: dns.name.Name, sources: list[str]) -> dict:
    """A listed name that is not delegated today: its signed TLD proves NXDOMAIN."""
    return _row(
        "domain", name.to_text(), tld=name.labels[-2].decode(), dnssec=R.SECURE,
        reasons=["nxdomain"], dane=R.NOT_APPLICABLE, dane_reasons=["nxdomain"],
        rollover=R.NOT_APPLICABLE, rollover_reasons=[], signed=False, notes=[], mx=[],
        sources=sorted(sources),
    )  # fmt: skip


def _infra_domain(w: World, name: dns.name.Name) -> Domain:
    label = name.labels[0].decode()
    provider = MAIL_PROVIDERS.get(label)
    return Domain(
        name=name.to_text(), tld=INFRA_TLD.label, index=-1,
        signed=provider.signed if provider else True, algorithm=13,
        mail="none" if label == "nic" else label if provider else "cheapmail",
        dns="dnshost", fault=None, wildcard=False, denial="nsec",
    )  # fmt: skip


def truth_rows(w: World) -> Iterator[dict]:
    """Every observation of the date, domains first, in a stable order."""
    previous = world(w.seed, w.scale, w.date - dt.timedelta(days=1))
    cands = S.candidates(w)
    domains: list[tuple[dns.name.Name, Domain | None]] = []
    for name in sorted(cands):
        if name.labels[-2] == INFRA_TLD.label.encode():
            domains.append((name, _infra_domain(w, name)))
        else:
            domains.append((name, w.lookup_domain(name.labels)))
    hosts: dict[str, MxHost] = {}
    for _, d in domains:
        if d is None or domain_status(d)[0] == R.INDETERMINATE:
            continue
        if d.tld == INFRA_TLD.label:
            if d.mail in MAIL_PROVIDERS:
                first = w.provider_hosts(d.mail)[0]
                hosts[first.name] = first
            continue
        for _, host in _hosts_of(w, d):
            hosts[host.name] = host
    host_rows = {}
    for name, host in sorted(hosts.items()):
        prev = previous.host(name)
        host_rows[name] = host_row(w, host, prev)
    for name, d in domains:
        if d is None:
            yield _missing_row(name, cands[name])
        elif d.tld == INFRA_TLD.label:
            yield _infra_row(w, d, host_rows, cands[name])
        else:
            yield domain_row(w, d, host_rows, cands[name])
    for name in sorted(host_rows):
        yield host_rows[name]
    for name in sorted(host_rows):
        host = hosts[name]
        if host.zone_signed and host.tlsa:
            yield from address_rows(host)
    yield from nameserver_rows(w, [d for _, d in domains if d is not None])


def _infra_row(w: World, d: Domain, host_rows: dict[str, dict], sources: list[str]) -> dict:
    if d.mail in MAIL_PROVIDERS:
        first = w.provider_hosts(d.mail)[0]
        mx_hosts = {first.name: first}
        row = _row(
            "domain", d.name, tld=d.tld, dnssec=R.SECURE if d.signed else R.INSECURE,
            reasons=[] if d.signed else ["no_ds"], signed=d.signed, notes=[], mx=list(mx_hosts),
            sources=sorted(sources),
        )  # fmt: skip
        host = host_rows[first.name]
        if not d.signed:
            return {**row, "dane": R.NOT_APPLICABLE, "dane_reasons": ["mx_not_secure"],
                    "rollover": R.NOT_APPLICABLE, "rollover_reasons": []}  # fmt: skip
        live = host["accepts_connections"]
        return {
            **row,
            "dane": host["dane"] if live else R.FAIL,
            "dane_reasons": host["dane_reasons"] if live else ["connect_failed"],
            "rollover": host["rollover"],
            "rollover_reasons": host["rollover_reasons"],
        }
    mx = [] if d.mail == "none" else ["mx1.cheapmail.lab-net."]
    return _row(
        "domain", d.name, tld=d.tld, dnssec=R.SECURE, reasons=[] if mx else ["no_mx"],
        dane=R.NOT_APPLICABLE, dane_reasons=["no_tlsa"] if mx else ["no_mx"],
        rollover=R.NOT_APPLICABLE, rollover_reasons=[], signed=True, notes=[], mx=mx,
        sources=sorted(sources),
    )  # fmt: skip


def nameserver_rows(w: World, domains: list[Domain]) -> Iterator[dict]:
    servers = {n: (a, None) for n, a in {**ROOT_SERVERS, **TLD_SERVERS}.items()}
    servers.update(w.nameservers())
    for name, (address, fault) in sorted(servers.items()):
        yield _row("nameserver", name, address=address, dnssec=None, fault=fault,
                   reasons=NAMESERVER_REASONS.get(fault, []) if fault else [])  # fmt: skip
    for d in sorted((d for d in domains if d.dns == "self"), key=lambda d: d.name):
        for label in ("ns1", "ns2"):
            yield _row("nameserver", f"{label}.{d.name}", address=BLACKHOLE_ADDRESS,
                       dnssec=None, fault="timeout", reasons=["timeout"])  # fmt: skip


def write_truth(w: World, path: Path) -> int:
    """Write the date's ground truth as JSON lines; returns the number of rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    count = 0
    with tmp.open("w") as f:
        for row in truth_rows(w):
            f.write(json.dumps(row, sort_keys=True) + "\n")
            count += 1
    tmp.replace(path)
    return count
