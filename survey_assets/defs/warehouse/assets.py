"""Warehouse assets: the lake's views, then one table per SQL model in dbt_like_sql/.

Adding a `.sql` file adds an asset: its upstream assets come from the tables its query reads.
"""

import contextlib
from pathlib import Path

import dagster as dg

from survey_assets.defs.constants import (
    CANDIDATE_DOMAINS,
    CERTIFICATE_CAPTURES,
    DANE_VERDICTS,
    DOMAIN_SCANS,
    LAB_TRUTH,
    LAKE_VIEWS,
    MX_HOST_SCANS,
    NAMESERVER_PROBES,
    RAW_ZONE_LISTS,
    WAREHOUSE_FILE,
    WAREHOUSE_GROUP,
    WAREHOUSE_JOB,
    WAREHOUSE_POOL,
)
from survey_assets.defs.metadata import md_table
from survey_assets.defs.resources import SurveySettings
from survey_assets.warehouse import access
from survey_assets.warehouse.lake import create_views
from survey_assets.warehouse.models import MODELS_DIR, Model, build_model, load_models

LAKE_ASSETS = [RAW_ZONE_LISTS, CANDIDATE_DOMAINS, DOMAIN_SCANS, MX_HOST_SCANS, NAMESERVER_PROBES,
               CERTIFICATE_CAPTURES, DANE_VERDICTS, LAB_TRUTH]  # fmt: skip


@contextlib.contextmanager
def warehouse(survey: SurveySettings, read_only: bool = False):
    """The warehouse, under its file lock (`warehouse/access.py`) besides the pool."""
    with access.connect(Path(survey.data_dir) / WAREHOUSE_FILE, read_only) as con:
        if not read_only:  # rows of a table need no order: lets DuckDB write in parallel
            con.execute("SET preserve_insertion_order = false")
        yield con


@dg.asset(key=LAKE_VIEWS, deps=LAKE_ASSETS, group_name=WAREHOUSE_GROUP, pool=WAREHOUSE_POOL,
          kinds={"duckdb"})  # fmt: skip
def lake_views(survey: SurveySettings) -> dg.MaterializeResult:
    """One view per lake dataset (`lake.<dataset>`) over its whole, finished Parquet files;
    unfinished files and empty partitions are reported and never read."""
    with warehouse(survey) as con:
        report = create_views(con, survey.lake)
    return dg.MaterializeResult(
        metadata={
            "views": md_table(("view", "files"), sorted(report.views.items())),
            "skipped": dg.MetadataValue.json(report.skipped),
            "warehouse": dg.MetadataValue.path(str(Path(survey.data_dir) / WAREHOUSE_FILE)),
        }
    )


def _description(model: Model) -> str:
    lines = [line[2:].strip() for line in model.sql.splitlines()
             if line.startswith("--") and not line[2:].strip().startswith("materialized:")]  # fmt: skip
    return " ".join(lines) or f"The {model.layer} model {model.name}."


def model_asset(model: Model) -> dg.AssetsDefinition:
    deps = [dg.AssetKey(m) for m in sorted(model.models)] + ([LAKE_VIEWS] if model.lake else [])

    @dg.asset(key=dg.AssetKey(model.name), deps=deps, group_name=WAREHOUSE_GROUP,
              pool=WAREHOUSE_POOL, kinds={"duckdb", "sql"}, description=_description(model))  # fmt: skip
    def _model(survey: SurveySettings) -> dg.MaterializeResult:
        with warehouse(survey) as con:
            rows, schema = build_model(con, model)
            preview = con.execute(f"SELECT * FROM main.{model.name} LIMIT 10")
            columns = [d[0] for d in preview.description]
            sample = preview.fetchall()
        counted = {"dagster/row_count": rows} if rows is not None else {}
        return dg.MaterializeResult(
            metadata={
                **counted,
                "materialized": model.materialized,
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(name, kind) for name, kind in schema]
                ),
                "preview": md_table(columns, sample),
                "sql": dg.MetadataValue.path(str(model.path)),
            }
        )

    return _model


MODELS = load_models(MODELS_DIR)
MODEL_ASSETS = [model_asset(m) for m in MODELS]

# Rebuild the warehouse (and the charts and site that read it) from what the lake holds now.
warehouse_build = dg.define_asset_job(
    WAREHOUSE_JOB, selection=dg.AssetSelection.groups(WAREHOUSE_GROUP).downstream()
)
