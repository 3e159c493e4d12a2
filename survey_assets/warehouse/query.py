"""Read-only queries against the warehouse, printed as a table, CSV or JSON (`survey sql`)."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
from pathlib import Path

import duckdb

FORMATS = ("table", "csv", "json")


class QueryError(Exception):
    """A query that cannot run: names the warehouse or the problem."""


def run_query(
    warehouse: Path, sql: str, params: list | None = None
) -> tuple[list[str], list[tuple]]:
    """Run one statement on a read-only connection: nothing a query does can change the data."""
    if not warehouse.exists():
        raise QueryError(
            f"{warehouse}: no warehouse yet: run `make demo` or materialize lake_views"
        )
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error as exc:
        raise QueryError(f"{warehouse}: cannot open: {exc}") from None
    try:
        cursor = con.execute(sql, params or [])
        if cursor.description is None:
            return [], []
        return [d[0] for d in cursor.description], cursor.fetchall()
    except duckdb.Error as exc:
        raise QueryError(str(exc).strip()) from None
    finally:
        con.close()


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _json_value(value: object) -> object:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def render(columns: list[str], rows: list[tuple], fmt: str = "table") -> str:
    if fmt == "json":
        records = [{c: _json_value(v) for c, v in zip(columns, r, strict=True)} for r in rows]
        return json.dumps(records, indent=2, default=str)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else _json_value(v) for v in r] for r in rows])
        return out.getvalue().rstrip("\n")
    cells = [[_text(v) for v in r] for r in rows]
    numeric = [
        all(isinstance(r[i], int | float | decimal.Decimal) or r[i] is None for r in rows) and rows
        for i in range(len(columns))
    ]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    body = [line(list(columns)), line(["-" * w for w in widths])] + [line(r) for r in cells]
    return "\n".join(body + [f"({len(rows)} row{'s' if len(rows) != 1 else ''})"])


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_queries(readme: Path = README) -> list[str]:
    """The README's "Ten useful queries": the docs, the tests and the benchmark run one text."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("### Ten useful queries", 1)[1].split("\n#", 1)[0]
    return [block.split("```", 1)[0].strip() for block in section.split("```sql")[1:]]
