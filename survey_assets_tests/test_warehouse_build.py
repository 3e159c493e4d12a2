"""Building the warehouse from an imperfect lake, and SQL models that cannot be built: each
problem is reported with what and why, and nothing partial is ever read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl
import pytest

from survey_assets.lake.parquet import replace_partition
from survey_assets.warehouse.lake import create_views
from survey_assets.warehouse.models import ModelError, build_model, load_models

DAY = dt.date(2026, 11, 1)


def _lake(tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    old = pl.DataFrame({"name": ["a.example."], "dnssec": ["secure"]})  # an older schema
    new = pl.DataFrame({"name": ["b.example."], "dnssec": ["bogus"], "zone": ["b.example."]})
    replace_partition(lake, "domain_scans", DAY, old)
    replace_partition(lake, "domain_scans", DAY + dt.timedelta(days=1), new)
    (lake / "domain_scans" / "date=2026-11-03").mkdir()  # an empty day
    # A killed run's leftover: not Parquet at all, and never to be read.
    (lake / "domain_scans" / "date=2026-11-02" / ".part-0001.999.tmp").write_bytes(b"PAR1 half")
    return lake


def test_views_read_whole_files_only_and_report_what_they_skip(tmp_path):
    lake = _lake(tmp_path)
    con = duckdb.connect()
    report = create_views(con, lake)
    assert report.views == {"domain_scans": 2}
    assert any("unfinished file" in s and ".tmp" in s for s in report.skipped)
    assert any("2026-11-03" in s and "empty partition" in s for s in report.skipped)
    rows = con.execute(
        "SELECT date, name, dnssec, zone FROM lake.domain_scans ORDER BY date"
    ).fetchall()
    assert rows == [
        (DAY, "a.example.", "secure", None),  # the older partition: NULL in the new column
        (DAY + dt.timedelta(days=1), "b.example.", "bogus", "b.example."),
    ]


def test_a_dataset_that_disappears_loses_its_view(tmp_path):
    lake = _lake(tmp_path)
    con = duckdb.connect()
    create_views(con, lake)
    for path in sorted((lake / "domain_scans").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (lake / "domain_scans").rmdir()
    assert create_views(con, lake).views == {}
    with pytest.raises(duckdb.CatalogException):
        con.execute("SELECT * FROM lake.domain_scans")


def test_domain_counts_from_scans_or_from_the_candidates(tmp_path):
    """A day is counted from its scans when they carry suffix and parent DS and are the
    candidates name for name; otherwise (scans of an older schema, no scans, candidates
    re-imported after the scan) from the candidates joined with their scans, as before."""
    lake = tmp_path / "lake"
    days = [DAY + dt.timedelta(days=i) for i in range(4)]
    ds = ["12345 13 2 AB"]
    for day in days:
        names = ["a.ex.", "c.ex."] if day == days[3] else ["a.ex.", "b.ex."]
        replace_partition(lake, "candidate_domains", day, pl.DataFrame({
            "name": names, "suffix": ["ex.", "ex."], "ds": [[], ds if names[1] == "b.ex." else []]}))  # fmt: skip
        replace_partition(lake, "dane_verdicts", day, pl.DataFrame({
            "kind": ["domain", "domain"], "name": ["a.ex.", "b.ex."],
            "dane": ["pass" if day == days[0] else "n/a", "n/a"]}))  # fmt: skip
    scans = pl.DataFrame({
        "name": ["a.ex.", "b.ex."], "dnssec": ["secure", "bogus"],
        "reasons": [[], ["rrsig_expired"]], "zone": ["a.ex.", "b.ex."],
        "mx": [["mx.a.ex."], []], "suffix": ["ex.", "ex."], "parent_ds": [False, True]})  # fmt: skip
    replace_partition(lake, "domain_scans", days[0], scans)
    replace_partition(lake, "domain_scans", days[1], scans.drop("suffix", "parent_ds"))  # older
    replace_partition(lake, "domain_scans", days[3], scans)  # days[2]: not scanned yet
    secure_a = ("ex.", True, "secure", True, "n/a", [], 1)
    bogus_b = ("ex.", True, "bogus", False, "n/a", ["rrsig_expired"], 1)
    unscanned = ("ex.", False, "indeterminate", False, "n/a", [], 1)
    want = {
        days[0]: sorted([("ex.", True, "secure", True, "pass", [], 1), bogus_b]),
        days[1]: sorted([secure_a, bogus_b]),
        days[2]: sorted([unscanned, ("ex.", True, "indeterminate", False, "n/a", [], 1)]),
        days[3]: sorted([secure_a, unscanned]),  # c.ex. is new, b.ex. gone
    }
    counted = {day: "scans" if day == days[0] else "candidates" for day in days}
    assert _domain_counts(lake, days) == (want, counted)
    # A lake whose scans are all older has no suffix or parent_ds column at all.
    for day in (days[0], days[3]):
        replace_partition(lake, "domain_scans", day, scans.drop("suffix", "parent_ds"))
    assert _domain_counts(lake, days) == (want, dict.fromkeys(days, "candidates"))


def _domain_counts(lake: Path, days: list[dt.date]) -> tuple[dict, dict]:
    """stg_domain_counts built on `lake`: each day's rows, and where the day was counted from."""
    con = duckdb.connect()
    create_views(con, lake)
    build_model(con, {m.name: m for m in load_models()}["stg_domain_counts"])
    rows, counted = {}, {}
    for day in days:
        found = con.execute(
            "SELECT suffix, signed, dnssec, has_mx, dane, reasons, domains, counted_from "
            "FROM stg_domain_counts WHERE date = ?", [day]).fetchall()  # fmt: skip
        rows[day] = sorted(r[:-1] for r in found)
        (counted[day],) = {r[-1] for r in found}
    return rows, counted


def _models(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "models"
    for name, sql in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql)
    return folder


def test_dependencies_come_from_the_sql(tmp_path):
    folder = _models(tmp_path, {
        "staging/stg_a.sql": "-- a\nSELECT name FROM lake.domain_scans",
        "marts/mart_b.sql": "WITH x AS (SELECT * FROM stg_a) SELECT * FROM x JOIN stg_a USING (name)",
        "marts/mart_c.sql": "SELECT count(*) AS n FROM mart_b, range(3)",
    })  # fmt: skip
    models = load_models(folder)
    assert [m.name for m in models] == ["stg_a", "mart_b", "mart_c"]
    by_name = {m.name: m for m in models}
    assert by_name["stg_a"].lake == {"domain_scans"} and not by_name["stg_a"].models
    assert by_name["mart_b"].models == {"stg_a"}  # the CTE x is not a table
    assert by_name["mart_c"].models == {"mart_b"}  # range() is a function, not a table
    assert all(m.error is None for m in models)


def test_broken_models_fail_with_the_file_and_the_reason(tmp_path):
    lake = _lake(tmp_path)
    folder = _models(tmp_path, {
        "staging/stg_ok.sql": "SELECT name FROM lake.domain_scans",
        "staging/stg_typo.sql": "SELEC name FROM lake.domain_scans",
        "staging/stg_no_lake.sql": "SELECT * FROM lake.nothing_here",
        "marts/mart_reads_typo.sql": "SELECT * FROM stg_typo",
        "marts/mart_reads_ghost.sql": "SELECT * FROM stg_ghost",
        "marts/mart_two.sql": "SELECT 1; SELECT 2",
        "marts/mart_bad_column.sql": "SELECT no_such_column FROM stg_ok",
    })  # fmt: skip
    models = {m.name: m for m in load_models(folder)}
    con = duckdb.connect()
    create_views(con, lake)
    assert build_model(con, models["stg_ok"])[0] == 2
    expected = {
        "stg_typo": "does not parse",
        "stg_no_lake": "lake.nothing_here: no such dataset",
        "mart_reads_typo": "reads stg_typo, which cannot be built",
        "mart_reads_ghost": "reads stg_ghost: no such model",
        "mart_two": "exactly one SELECT",
        "mart_bad_column": "no_such_column",
    }
    for name, reason in expected.items():
        with pytest.raises(ModelError) as caught:
            build_model(con, models[name])
        message = str(caught.value)
        assert str(models[name].path) in message and reason in message, message


def test_a_cycle_is_reported_for_each_model_in_it(tmp_path):
    folder = _models(tmp_path, {
        "marts/mart_x.sql": "SELECT * FROM mart_y",
        "marts/mart_y.sql": "SELECT * FROM mart_x",
        "marts/mart_z.sql": "SELECT 1 AS one",
    })  # fmt: skip
    models = {m.name: m for m in load_models(folder)}
    assert "cycle" in models["mart_x"].error and "cycle" in models["mart_y"].error
    assert models["mart_z"].error is None


def test_adding_a_file_adds_an_asset(tmp_path):
    """The Dagster wiring turns every model into an asset with the parsed dependencies."""
    import dagster as dg

    from survey_assets.defs.constants import LAKE_VIEWS
    from survey_assets.defs.warehouse.assets import model_asset

    folder = _models(tmp_path, {
        "staging/stg_a.sql": "-- The names, one a row.\nSELECT name FROM lake.domain_scans",
        "marts/mart_new.sql": "SELECT count(*) AS n FROM stg_a",
    })  # fmt: skip
    assets = [model_asset(m) for m in load_models(folder)]
    specs = {s.key.to_user_string(): s for a in assets for s in a.specs}
    assert set(specs) == {"stg_a", "mart_new"}
    assert {d.asset_key for d in specs["mart_new"].deps} == {dg.AssetKey("stg_a")}
    assert {d.asset_key for d in specs["stg_a"].deps} == {LAKE_VIEWS}
    assert specs["stg_a"].description == "The names, one a row."


def test_survey_sql_is_read_only_and_names_bad_input(tmp_path):
    from click.testing import CliRunner

    from survey_assets.cli import main

    lake = _lake(tmp_path)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    create_views(con, lake)
    con.close()
    env = {"SURVEY_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    done = runner.invoke(
        main, ["sql", "--format", "csv", "SELECT name FROM lake.domain_scans ORDER BY 1"], env=env
    )
    assert done.exit_code == 0 and done.output.splitlines() == ["name", "a.example.", "b.example."]
    refused = runner.invoke(main, ["sql", "CREATE TABLE t AS SELECT 1"], env=env)
    assert refused.exit_code != 0 and "read-only" in refused.output
    missing = runner.invoke(
        main, ["sql", "SELECT 1"], env={"SURVEY_DATA_DIR": str(tmp_path / "none")}
    )
    assert missing.exit_code != 0 and "no warehouse yet" in missing.output
