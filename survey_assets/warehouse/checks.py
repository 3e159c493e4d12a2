"""Data-quality checks over the warehouse: import spikes, gentle decay, contracts, freshness.

Each returns a `Finding`: passed or not, how bad ("WARN" or "ERROR"), a sentence, and the
observed values and thresholds for a person to read. The spike and decay logic itself lives in
the SQL models `mart_spikes` and `mart_decay`, so that the charts' annotations and the checks
come from the same rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb

WARN, ERROR = "WARN", "ERROR"


@dataclass
class Finding:
    passed: bool
    severity: str = WARN
    description: str = ""
    metadata: dict = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)  # the observations behind it


def _dicts(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _plain(value):
    return value.isoformat() if isinstance(value, dt.date) else value


def import_spikes(con: duckdb.DuckDBPyConnection) -> Finding:
    """Jumps in candidates: explained by an import → WARN (an annotation); unexplained → ERROR."""
    steps = _dicts(con, "SELECT * FROM mart_spikes ORDER BY date, scope")
    thresholds = {k: steps[0][k] for k in ("min_names", "min_pct")} if steps else {}
    rows = [{k: _plain(v) for k, v in r.items()} for r in steps if r["is_spike"]]
    unexplained = [r for r in rows if not r["explained"]]
    metadata = {**thresholds, "spikes": len(rows), "unexplained": len(unexplained)}
    if unexplained:
        worst = max(unexplained, key=lambda r: r["change"])
        return Finding(False, ERROR, (
            f"{len(unexplained)} unexplained jump(s) in candidates, e.g. {worst['scope']} on "
            f"{worst['date']}: {worst['before']} → {worst['after']} with no new import to explain it"
        ), metadata, rows)  # fmt: skip
    if rows:
        return Finding(False, WARN, "; ".join(
            f"{r['scope']} on {r['date']}: +{r['change']} names, from the import of "
            f"{', '.join(r['explained_by'])}" for r in rows
        ), metadata, rows)  # fmt: skip
    return Finding(True, description="no jump in candidates", metadata=metadata)


def gentle_decay(con: duckdb.DuckDBPyConnection) -> Finding:
    """Suffixes that lose names steadily → WARN with slope and window; a sudden drop → ERROR."""
    rows = [
        {k: _plain(v) for k, v in r.items()}
        for r in _dicts(con, "SELECT * FROM mart_decay ORDER BY suffix")
    ]
    params = ("window_days", "min_slope_pct", "drop_pct", "drop_names")
    metadata: dict = {k: rows[0][k] for k in params} if rows else {}
    drops = [r for r in rows if r["sudden_drop"]]
    decaying = [r for r in rows if r["decaying"]]
    metadata |= {"decaying": [r["suffix"] for r in decaying], "sudden_drops": len(drops)}
    if drops:
        return Finding(False, ERROR, "sudden drop: " + "; ".join(
            f"{r['suffix']} lost {r['worst_drop']} names ({r['worst_drop_pct']} %) in a day"
            for r in drops), metadata, drops)  # fmt: skip
    if decaying:
        return Finding(False, WARN, "; ".join(
            f"{r['suffix']} decays {r['slope_pct_per_day']} % a day from {r['window_start']} "
            f"to {r['window_end']}" for r in decaying), metadata, decaying)  # fmt: skip
    return Finding(True, description="no suffix decays", metadata=metadata)


SCAN_DATASETS = ("domain_scans", "mx_host_scans", "dane_verdicts")


def scan_freshness(con: duckdb.DuckDBPyConnection, today: dt.date | None = None) -> Finding:
    """Every day with candidates has its scans; and, given `today`, the newest day is recent."""
    views = {
        r[0] for r in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE schema_name = 'lake'").fetchall()
    }  # fmt: skip
    if "candidate_domains" not in views:
        return Finding(False, ERROR, "no candidate_domains in the lake")
    days = {
        r[0] for r in con.execute("SELECT DISTINCT date FROM lake.candidate_domains").fetchall()
    }
    missing = {}
    for dataset in SCAN_DATASETS:
        have = set()
        if dataset in views:
            have = {
                r[0] for r in con.execute(f"SELECT DISTINCT date FROM lake.{dataset}").fetchall()
            }
        if days - have:
            missing[dataset] = sorted(d.isoformat() for d in days - have)
    newest = max(days)
    metadata = {"newest_day": newest.isoformat(), "days": len(days), "missing": missing}
    if missing:
        return Finding(False, ERROR, "days without scans: " + "; ".join(
            f"{k}: {', '.join(v)}" for k, v in missing.items()), metadata)  # fmt: skip
    if today is not None and (today - newest).days > 1:
        return Finding(
            False, WARN, f"the newest scan is from {newest}, {today - newest} ago", metadata
        )
    return Finding(True, description=f"scans for every day up to {newest}", metadata=metadata)
