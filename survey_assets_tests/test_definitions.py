"""The one Definitions object loads, and its assets materialize a lab day into the lake."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import polars as pl

from survey_assets.definitions import build
from survey_assets.defs.constants import (
    DAILY,
    LAB_TRUTH,
    WAREHOUSE_GROUP,
    WAREHOUSE_POOL,
    ZONE_DOWNLOADS,
)
from survey_assets.lab import world as W
from survey_assets.lab.truth import truth_rows
from survey_assets.settings import Settings


def test_definitions_load():
    from survey_assets.definitions import defs

    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert {ZONE_DOWNLOADS, LAB_TRUTH} <= keys
    graph = defs.resolve_asset_graph()
    for key in keys:
        spec = defs.resolve_assets_def(key)
        assert spec.descriptions_by_key[key], f"{key} has no docstring"
        if graph.get(key).group_name == WAREHOUSE_GROUP:
            # Rebuilt whole from the lake, one writer at a time.
            assert spec.partitions_def is None and spec.op.pool == WAREHOUSE_POOL
        elif graph.get(key).group_name != "charts" and key.path[0] != "site":
            assert spec.partitions_def == DAILY, key


def test_materialize_one_lab_day(tmp_path):
    settings = Settings(data_dir=tmp_path, lab_scale="tiny")
    date = dt.date(2026, 11, 6)  # the name list's first publication day
    job = (
        build(settings)
        .resolve_implicit_global_asset_job_def()
        .get_subset(asset_selection={ZONE_DOWNLOADS, LAB_TRUTH})
    )
    result = job.execute_in_process(
        partition_key=date.isoformat(), instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    downloads = tmp_path / "downloads"
    assert (downloads / "passive-dns" / date.isoformat() / "passive-dns.txt").exists()
    assert (downloads / "czds" / date.isoformat() / "lab-secure.txt.gz").exists()
    assert (downloads / "registry-files" / date.isoformat() / "lab-optout.zone.gz").exists()
    lake = pl.read_parquet(tmp_path / "lake" / "lab_truth" / f"date={date}" / "*.parquet")
    expected = list(truth_rows(W.World(1, "tiny", date)))
    assert lake.height == len(expected)
    assert [json.loads(r) for r in lake["row"]] == expected
    # Re-running the partition replaces it exactly.
    assert job.execute_in_process(
        partition_key=date.isoformat(), instance=dg.DagsterInstance.ephemeral()
    ).success
    assert pl.read_parquet(tmp_path / "lake" / "lab_truth" / f"date={date}" / "*.parquet").equals(
        lake
    )
