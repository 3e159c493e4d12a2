"""SQL models: one SELECT per `.sql` file in `dbt_like_sql/` (staging/, then marts/), each one a
warehouse table named after its file. What a model reads is found by parsing its SQL (sqlglot,
DuckDB dialect), never listed by hand; models are built in dependency order.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp

from survey_assets.warehouse.lake import LAKE_SCHEMA

LAYERS = ("staging", "marts")
MODELS_DIR = Path(__file__).resolve().parents[2] / "dbt_like_sql"


class ModelError(Exception):
    """A model that cannot be built: names the file and the reason."""


@dataclass(frozen=True)
class Model:
    name: str  # the table it makes, in the `main` schema
    layer: str
    path: Path
    sql: str
    models: frozenset[str]  # other models it reads
    lake: frozenset[str]  # lake datasets it reads (as lake.<dataset>)
    error: str | None = None  # why it cannot be built: its asset fails with this
    materialized: str = "table"  # or "view", from a `-- materialized: view` line in its header


def _reads(path: Path, sql: str) -> tuple[set[str], set[str]]:
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise ModelError(f"{path}: does not parse: {exc}") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise ModelError(f"{path}: must hold exactly one SELECT")
    tree = statements[0]
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    models, lake = set(), set()
    for table in tree.find_all(exp.Table):
        if not table.name or isinstance(table.this, exp.Anonymous | exp.Func):
            continue  # a table function such as range() or read_parquet()
        if table.db == LAKE_SCHEMA:
            lake.add(table.name)
        elif not table.db and table.name not in ctes:
            models.add(table.name)
        elif table.db:
            raise ModelError(f"{path}: reads {table.db}.{table.name}: only lake.* and models")
    return models, lake


def _materialized(sql: str) -> str:
    """`view` when the model's leading comment says `materialized: view`: a row-per-name model
    that would only copy the lake is better read through than copied (dbt's view models)."""
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        key, _, value = line[2:].partition(":")
        if key.strip() == "materialized" and value.strip() in ("view", "table"):
            return value.strip()
    return "table"


def load_models(folder: Path = MODELS_DIR) -> list[Model]:
    """Every model under `folder`, each after what it reads. A model that does not parse, or
    reads a model that does not exist, is kept with its `error` (so its asset can fail with the
    file and the reason) and so is everything that reads it."""
    found: dict[str, Model] = {}
    for layer in LAYERS:
        for path in sorted((folder / layer).glob("*.sql")):
            sql = path.read_text(encoding="utf-8").strip().rstrip(";")
            model = Model(path.stem, layer, path, sql, frozenset(), frozenset(),
                          materialized=_materialized(sql))  # fmt: skip
            if path.stem in found:
                model = replace(model, error=f"{path}: a model named {path.stem} already exists")
            else:
                try:
                    models, lake = _reads(path, sql)
                    model = replace(model, models=frozenset(models), lake=frozenset(lake))
                except ModelError as exc:
                    model = replace(model, error=str(exc))
            found.setdefault(path.stem, model)
    order = graphlib.TopologicalSorter({m.name: m.models & found.keys() for m in found.values()})
    try:
        names = list(order.static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        for name in cycle:
            found[name] = replace(found[name], models=frozenset(), error=(
                f"{found[name].path}: models read each other in a cycle: {' -> '.join(cycle)}"))  # fmt: skip
        names = list(
            graphlib.TopologicalSorter({m.name: m.models for m in found.values()}).static_order()
        )
    for name in names:
        model = found[name]
        missing = model.models - found.keys()
        if model.error is None and missing:
            model = replace(
                model, error=f"{model.path}: reads {', '.join(sorted(missing))}: no such model"
            )
        broken = [m for m in model.models & found.keys() if found[m].error]
        if model.error is None and broken:
            model = replace(
                model,
                error=f"{model.path}: reads {', '.join(sorted(broken))}, which cannot be built",
            )
        found[name] = model
    return [found[name] for name in names if name in found]


def build_model(con: duckdb.DuckDBPyConnection, model: Model) -> tuple[int | None, list[tuple]]:
    """Materialize one model as a table (atomically: readers see the old or the new one) or a
    view; returns its row count (None for a view: counting would run it) and schema."""
    if model.error:
        raise ModelError(model.error)
    missing = model.lake - {
        r[0]
        for r in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE schema_name = ?", [LAKE_SCHEMA]
        ).fetchall()
    }
    if missing:
        raise ModelError(
            f"{model.path}: reads lake.{', lake.'.join(sorted(missing))}: no such dataset in the lake"
        )
    kind = "VIEW" if model.materialized == "view" else "TABLE"
    try:
        # A model that turns from table to view (or back) must drop what it was first.
        was = con.execute(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM duckdb_views() WHERE schema_name = 'main' "
            "AND view_name = $1) THEN 'VIEW' WHEN EXISTS (SELECT 1 FROM duckdb_tables() WHERE "
            "schema_name = 'main' AND table_name = $1) THEN 'TABLE' END",
            [model.name],
        ).fetchone()[0]
        if was and was != kind:
            con.execute(f"DROP {was} main.{model.name}")
        con.execute(f"CREATE OR REPLACE {kind} main.{model.name} AS {model.sql}")
        if kind == "VIEW":  # bind it now, so a broken view fails here, not in a reader
            con.execute(f"SELECT * FROM main.{model.name} LIMIT 0")
    except duckdb.Error as exc:
        raise ModelError(f"{model.path}: {exc}") from None
    rows = None if kind == "VIEW" else con.execute(
        f"SELECT count(*) FROM main.{model.name}").fetchone()[0]  # fmt: skip
    schema = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
        "AND schema_name = 'main' ORDER BY column_index",
        [model.name],
    ).fetchall()
    return rows, schema


def build_all(
    con: duckdb.DuckDBPyConnection, lake: Path, models: list[Model] | None = None
) -> dict:
    """The whole warehouse in one go (tests, benchmarks): views, then every model in order."""
    from survey_assets.warehouse.lake import create_views

    create_views(con, lake)
    return {m.name: build_model(con, m)[0] for m in (models or load_models())}
