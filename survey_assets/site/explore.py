"""The explore index: every domain of the last days with its latest status (DNSSEC, MX hosts
with their TLSA answer, per-address DANE outcome, rollover readiness) and its daily history,
as static files the explore page loads by itself: no server code, no query at read time.

The index is split into shards by a hash of the name (FNV-1a, 32 bits, over its UTF-8 bytes;
site.js computes the same), so a page loads one small file per lookup whatever the survey's
size. Each shard is a script, `window.surveyExplore.shard(n, {...})`, rather than a bare JSON
file: a page opened from a plain folder (file://) may run scripts next to it but not fetch()
them. The payload is JSON, with `<`, `>` and `&` escaped, and site.js puts every value into
the page as text.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field

import duckdb

from survey_assets.charts.data import fetch
from survey_assets.charts.render import html_json

NAMES_PER_SHARD = 1000
MAX_SHARDS = 4096
HISTORY_DAYS = 60  # days of history each domain carries


def fnv1a(text: str) -> int:
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def shard_count(names: int) -> int:
    return max(1, min(MAX_SHARDS, math.ceil(names / NAMES_PER_SHARD)))


def shard_of(name: str, shards: int) -> int:
    return fnv1a(name) % shards


@dataclass
class ExploreIndex:
    shards: int
    entries: dict[str, dict] = field(default_factory=dict)  # name -> entry
    first_day: str | None = None
    last_day: str | None = None
    missing: list[str] = field(default_factory=list)  # tables it could not read

    def shard_files(self) -> dict[int, str]:
        """Shard number -> the script that hands its entries to the page."""
        grouped: dict[int, dict] = defaultdict(dict)
        for name, entry in self.entries.items():
            grouped[shard_of(name, self.shards)][name] = entry
        return {
            n: f"window.surveyExplore.shard({n},{html_json(grouped.get(n, {}))});\n"
            for n in range(self.shards)
        }

    def manifest(self) -> str:
        info = {"shards": self.shards, "names": len(self.entries), "first_day": self.first_day,
                "last_day": self.last_day}  # fmt: skip
        return f"window.surveyExplore.manifest({html_json(info)});\n"


def build_index(
    con: duckdb.DuckDBPyConnection | None, tables: set[str], history_days: int = HISTORY_DAYS
) -> ExploreIndex:
    """The index of every domain seen in the last `history_days` days of mart_domain_history;
    MX host details come from stg_mx_hosts and stg_addresses when the warehouse has them."""
    index = ExploreIndex(shards=1)
    if con is None or "mart_domain_history" not in tables:
        index.missing.append("mart_domain_history")
        return index
    last = con.execute("SELECT max(date) FROM mart_domain_history").fetchone()[0]
    if last is None:
        return index
    since = last - dt.timedelta(days=history_days - 1)
    rows = fetch(
        con,
        "SELECT * FROM mart_domain_history WHERE date >= ? ORDER BY name, date",
        [since],
    )
    index.first_day = min(r["date"] for r in rows)
    index.last_day = last.isoformat()
    hosts = _hosts(con, tables, since, index.missing)
    by_name: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_name[row["name"]].append(row)
    for name, history in by_name.items():
        latest = history[-1]
        index.entries[name] = {
            "latest": latest,
            "hosts": [
                hosts.get((latest["date"], _host_name(mx)), {"host": _host_name(mx)})
                for mx in latest["mx"] or []
            ],
            "history": [
                {k: h[k] for k in ("date", "signed", "dnssec", "reasons", "dane", "rollover")}
                for h in history
            ],
        }
    index.shards = shard_count(len(index.entries))
    return index


def _host_name(mx: str) -> str:
    """An MX entry may be `preference host` or just the host."""
    return mx.split()[-1] if mx else mx


def _hosts(
    con: duckdb.DuckDBPyConnection, tables: set[str], since: dt.date, missing: list[str]
) -> dict[tuple[str, str], dict]:
    if "stg_mx_hosts" not in tables:
        missing.append("stg_mx_hosts")
        return {}
    hosts = {
        (r["date"], r["host"]): r
        for r in fetch(
            con,
            "SELECT date, host, provider, dnssec, reasons, tlsa, dane, dane_reasons, rollover, "
            "rollover_reasons, accepts_connections, domains FROM stg_mx_hosts WHERE date >= ?",
            [since],
        )
    }
    for host in hosts.values():
        host["addresses"] = []
    if "stg_addresses" not in tables:
        missing.append("stg_addresses")
        return hosts
    for r in fetch(
        con,
        "SELECT date, host, address, dane, dane_reasons, capture_failure, tls_version "
        "FROM stg_addresses WHERE date >= ? ORDER BY date, host, address",
        [since],
    ):
        if (r["date"], r["host"]) in hosts:
            hosts[r["date"], r["host"]]["addresses"].append(r)
    return hosts
