"""Rows from the warehouse as plain JSON values: what chart specs and the site carry.

Mart names are the project's own identifiers (checked against a pattern before they reach SQL);
anything from scanned data travels as bound parameters or as data values, never as SQL text.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Iterable
from pathlib import Path

import duckdb

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def json_value(value: object) -> object:
    """A value JSON and Vega-Lite read the same way: dates as ISO strings, decimals as floats,
    NaN as null (JSON has no NaN), lists and structs converted inside."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    return value


def fetch(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [
        {n: json_value(v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()
    ]


def tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The warehouse's models in the main schema, tables or views (a model may be either)."""
    return {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
    }


def mart_rows(con: duckdb.DuckDBPyConnection, mart: str, order: Iterable[str] = ()) -> list[dict]:
    """Every row of one model, in a stable order (the given columns, then all of them)."""
    if not _IDENTIFIER.fullmatch(mart) or not all(_IDENTIFIER.fullmatch(c) for c in order):
        raise ValueError(f"not a model or column name: {mart!r} {list(order)!r}")
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
            [mart],
        ).fetchall()
    )
    # Lists and structs cannot be ordered portably; plain columns make the order total enough.
    keys = list(order) + [c for c in types if c not in order]
    keys = [k for k in keys if "[]" not in types.get(k, "") and "STRUCT" not in types.get(k, "")]
    order_by = f" ORDER BY {', '.join(keys)}" if keys else ""
    return fetch(con, f"SELECT * FROM main.{mart}{order_by}")


def open_warehouse(path: Path) -> duckdb.DuckDBPyConnection | None:
    """A read-only connection, or None when there is no warehouse yet (the survey's first day)."""
    if not path.exists():
        return None
    return duckdb.connect(str(path), read_only=True)
