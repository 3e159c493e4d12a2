"""Re-running a day (its daily assets, then the warehouse) gives identical tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from survey_assets.lab import world as W
from survey_assets_tests.conftest import (
    SURVEY_DAYS,
    materialize_days,
    materialize_warehouse,
)

# The session's lab_survey fixture (14 lab days) is built by whichever test asks first.
pytestmark = pytest.mark.timeout(1800)


# What a run measures about itself (when it imported, how long a capture took) may differ.
RUN_TIMES = ("imported_at", "seconds", "total_seconds")


def tables(path: Path, leave_out: tuple[str, ...] = RUN_TIMES) -> dict[str, tuple]:
    """Every table's row count and an order-independent checksum of its rows, without the
    columns `leave_out` names."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()]  # fmt: skip
        keep = f"COLUMNS(lambda c: c NOT IN {leave_out})"
        return {
            n: con.execute(
                f"SELECT count(*), sum(hash(t::VARCHAR)) FROM (SELECT {keep} FROM main.{n}) t"
            ).fetchone()
            for n in sorted(names)
        }


def _copy(lab_survey: Path, root: Path) -> Path:
    shutil.copytree(lab_survey, root, ignore=shutil.ignore_patterns("dagster", "lab"))
    return root


@pytest.mark.parametrize("day", [W.date_of(SURVEY_DAYS - 1), W.date_of(W.Day.LIST_IMPORT)], ids=str)
def test_re_running_a_day_gives_identical_tables(lab_survey, tmp_path, day):
    root = _copy(lab_survey, tmp_path / "data")
    before = tables(root / "warehouse.duckdb")
    from survey_assets.definitions import build
    from survey_assets.settings import Settings

    graph = build(Settings(data_dir=root, lab_scale="tiny")).resolve_asset_graph()
    daily = {k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is not None}
    materialize_days(root, [day], selection=daily)
    assert materialize_warehouse(root).success
    assert tables(root / "warehouse.duckdb") == before
