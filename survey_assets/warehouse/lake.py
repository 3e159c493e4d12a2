"""Views over the lake: one DuckDB view per dataset in the `lake` schema, reading only whole files.

Writers put every Parquet file in place by renaming a finished temporary file, so a view that
reads `*.parquet` never sees half a file; a killed run's `.tmp` leftovers and empty day folders
are reported, not read. Partitions written by an older schema read as NULL in the new columns
(`union_by_name`), so adding a column never breaks the history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

LAKE_SCHEMA = "lake"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass
class LakeReport:
    """What the views cover, and what was left out and why."""

    views: dict[str, int] = field(default_factory=dict)  # dataset -> Parquet files
    skipped: list[str] = field(default_factory=list)


def datasets(lake: Path) -> list[Path]:
    """The lake's dataset folders (not the staging area)."""
    if not lake.is_dir():
        return []
    return sorted(p for p in lake.iterdir() if p.is_dir() and not p.name.startswith("."))


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def create_views(con: duckdb.DuckDBPyConnection, lake: Path) -> LakeReport:
    """(Re)create `lake.<dataset>` for every dataset folder that holds at least one file."""
    report = LakeReport()
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {LAKE_SCHEMA}")
    existing = {
        r[0]
        for r in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE schema_name = ?", [LAKE_SCHEMA]
        ).fetchall()
    }
    for folder in datasets(lake):
        name = folder.name
        if not _IDENTIFIER.fullmatch(name):
            report.skipped.append(f"{folder}: not a dataset name")
            continue
        files = sorted(folder.rglob("*.parquet"))
        report.skipped += [f"{p}: unfinished file (a killed run?)" for p in folder.rglob("*.tmp")]
        report.skipped += [
            f"{d}: empty partition"
            for d in sorted(folder.glob("date=*"))
            if d.is_dir() and not any(d.rglob("*.parquet"))
        ]
        if not files:
            report.skipped.append(f"{folder}: no data")
            continue
        # The lake folder is the operator's setting, never scanned data; quoted all the same.
        pattern = _sql_string(str(folder / "**" / "*.parquet"))
        con.execute(
            f"CREATE OR REPLACE VIEW {LAKE_SCHEMA}.{name} AS SELECT * FROM read_parquet("
            f"{pattern}, hive_partitioning = true, union_by_name = true)"
        )
        report.views[name] = len(files)
        existing.discard(name)
    for stale in existing:  # a dataset that is gone must not keep serving old rows
        con.execute(f"DROP VIEW {LAKE_SCHEMA}.{stale}")
    return report
