"""A day's captures and verdicts as lake frames: the shapes `certificate_captures` and
`dane_verdicts` write, built from (and only from) what the scans and captures hold.

No Dagster here: the assets in `defs/dane/` read the lake, call these, and write the lake.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import polars as pl

from survey_assets.dane.verdict import (
    AddressCapture,
    HostInput,
    HostVerdict,
    domain_verdict,
    host_verdict,
)
from survey_assets.smtp.client import Capture

CAPTURE_SCHEMA: dict[str, pl.DataType] = {
    "host": pl.String,
    "address": pl.String,
    "port": pl.Int32,
    "reason": pl.String,
    "stage": pl.String,
    "detail": pl.String,
    "chain": pl.List(pl.Binary),
    "tls_version": pl.String,
    "cipher": pl.String,
    "transcript": pl.List(pl.Struct({"command": pl.String, "code": pl.Int32})),
    "starttls_offered": pl.Boolean,
    "attempts": pl.Int32,
    "bytes_read": pl.Int64,
    "started": pl.String,
    "connect_seconds": pl.Float64,
    "tls_seconds": pl.Float64,
    "total_seconds": pl.Float64,
    "temporary": pl.Boolean,
}

RECORD = pl.Struct({"index": pl.Int32, "text": pl.String, "usage": pl.Int32,
                    "status": pl.String, "depths": pl.List(pl.Int32)})  # fmt: skip
CERTIFICATE = pl.Struct({
    "depth": pl.Int32, "sha256": pl.String, "spki_sha256": pl.String, "subject": pl.String,
    "issuer": pl.String, "not_before": pl.String, "not_after": pl.String, "error": pl.String,
})  # fmt: skip
VERDICT_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String,  # domain | mx_host | address, as the lab's truth
    "name": pl.String,
    "address": pl.String,
    "dnssec": pl.String,
    "dane": pl.String,
    "dane_reasons": pl.List(pl.String),
    "rollover": pl.String,
    "rollover_reasons": pl.List(pl.String),
    "accepts_connections": pl.Boolean,
    "primaries": pl.List(pl.String),  # domain: its primary MX hosts
    "leaf_spki_sha256": pl.List(pl.String),  # mx_host: the keys it served today
    "records": pl.List(RECORD),  # address: what became of each TLSA record
    "certificates": pl.List(CERTIFICATE),  # address: the chain it presented
    "notes": pl.List(pl.String),
}


def capture_frame(captures: Iterable[Capture], unresolved: Iterable[str] = ()) -> pl.DataFrame:
    """One row per capture, plus one per host with TLSA that has no address to contact."""
    rows = [c.as_row() for c in captures]
    for host in unresolved:
        rows.append({"host": host, "address": None, "reason": "connect_failed", "stage": "dns",
                     "detail": "no A or AAAA record", "chain": [], "transcript": [],
                     "attempts": 0, "total_seconds": 0.0})  # fmt: skip
    return pl.DataFrame(rows, schema=CAPTURE_SCHEMA)


def mx_preferences(mx: list[str], evidence: list[str]) -> list[tuple[int, str]]:
    """(preference, host) from the MX records kept as evidence; every host primary when the
    evidence does not say (an older row, a record that does not parse)."""
    found: dict[str, int] = {}
    for text in evidence or []:
        for line in text.splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[3] == "MX" and fields[4].isdigit():
                found.setdefault(fields[5].lower(), int(fields[4]))
    return [(found.get(h.lower(), 0), h) for h in mx or []]


def host_inputs(hosts: pl.DataFrame, captures: pl.DataFrame | None) -> dict[str, HostInput]:
    """The MX host scans joined with the captures of their addresses."""
    by_host: dict[str, list[AddressCapture]] = {}
    if captures is not None:
        for row in captures.select("host", "address", "reason", "chain").iter_rows(named=True):
            if row["address"] is None:
                by_host.setdefault(row["host"], []).append(AddressCapture("", "connect_failed"))
                continue
            by_host.setdefault(row["host"], []).append(
                AddressCapture(row["address"], row["reason"], tuple(row["chain"] or ()))
            )
    return {
        row["name"]: HostInput(
            name=row["name"], dnssec=row["dnssec"], tlsa=tuple(row["tlsa"] or ()),
            captures=tuple(by_host.get(row["name"], ())),
        )
        for row in hosts.select("name", "dnssec", "tlsa").iter_rows(named=True)
    }  # fmt: skip


def verdicts(
    hosts: pl.DataFrame, captures: pl.DataFrame, domains: pl.DataFrame, now: dt.datetime,
    previous_hosts: pl.DataFrame | None = None, previous_captures: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict[str, HostVerdict]]:  # fmt: skip
    """The day's verdict rows (domains, MX hosts, addresses) and the host verdicts by name."""
    today = host_inputs(hosts, captures)
    before = host_inputs(previous_hosts, previous_captures) if previous_hosts is not None else {}
    judged = {name: host_verdict(h, before.get(name), now) for name, h in today.items()}
    rows: list[dict] = []
    for row in domains.select("name", "dnssec", "reasons", "mx", "evidence").iter_rows(named=True):
        mx = mx_preferences(row["mx"], row["evidence"])
        v = domain_verdict(row["name"], row["dnssec"], mx, judged, row["reasons"] or ())
        rows.append({"kind": "domain", "name": v.name, "dnssec": row["dnssec"], "dane": v.dane,
                     "dane_reasons": v.dane_reasons, "rollover": v.rollover,
                     "rollover_reasons": v.rollover_reasons, "primaries": v.primaries})  # fmt: skip
    for name, v in judged.items():
        rows.append({"kind": "mx_host", "name": name, "dnssec": v.dnssec, "dane": v.dane,
                     "dane_reasons": v.dane_reasons, "rollover": v.rollover,
                     "rollover_reasons": v.rollover_reasons,
                     "accepts_connections": v.accepts_connections,
                     "leaf_spki_sha256": v.leaf_spki_sha256})  # fmt: skip
    for name, v in judged.items():
        for a in v.addresses:
            if not a.address:
                continue
            detail = a.as_dict()
            rows.append({"kind": "address", "name": name, "address": a.address, "dane": a.dane,
                         "dane_reasons": a.reasons, "records": detail["records"],
                         "certificates": detail["certificates"], "notes": detail["notes"]})  # fmt: skip
    return pl.DataFrame(rows, schema=VERDICT_SCHEMA), judged
