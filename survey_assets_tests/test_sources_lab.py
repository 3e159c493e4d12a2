"""The sources layer on the lab: four kinds of source, several days, held against the truth."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from survey_assets.defs.constants import CANDIDATE_DOMAINS, RAW_ZONE_LISTS, ZONE_DOWNLOADS
from survey_assets.lab import world as W
from survey_assets_tests.conftest import materialize_days

DAYS = [W.date_of(d) for d in range(0, 9)]  # covers the list's first import (day 5) and decay


@pytest.fixture(scope="module")
def lake_days(tmp_path_factory):
    """Materialize the sources layer for each day in order, with the lab serving that day."""
    root = tmp_path_factory.mktemp("survey")
    results = materialize_days(root, DAYS, [ZONE_DOWNLOADS, RAW_ZONE_LISTS, CANDIDATE_DOMAINS])
    truth = {day: [json.loads(x) for x in (root / "lab" / "truth" / f"{day}.jsonl").read_text().splitlines()]
             for day in DAYS}  # fmt: skip
    return root, results, truth


def _candidates(root, day) -> pl.DataFrame:
    return pl.read_parquet(root / "lake" / "candidate_domains" / f"date={day}" / "*.parquet")


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_candidates_equal_the_truth(lake_days, day):
    root, _, truth = lake_days
    expected = {r["name"] for r in truth[day] if r["kind"] == "domain"}
    got = set(_candidates(root, day)["name"])
    assert got == expected, (sorted(got - expected)[:10], sorted(expected - got)[:10])


def test_sources_and_provenance_match_the_truth(lake_days):
    root, _, truth = lake_days
    day = DAYS[-1]
    rows = {r["name"]: r for r in _candidates(root, day).to_dicts()}
    for t in truth[day]:
        if t["kind"] == "domain":
            assert sorted(rows[t["name"]]["sources"]) == t["sources"], t["name"]


def test_import_spike_is_explained_by_first_seen(lake_days):
    """The name list's first import (day 5) is the first-seen date of every name it brought."""
    root, results, _ = lake_days
    spike = W.date_of(W.Day.LIST_IMPORT)
    before, after = _candidates(root, spike - dt.timedelta(days=1)), _candidates(root, spike)
    assert after.height > before.height * 1.05
    new = after.join(before.select("name"), on="name", how="anti")
    first = new.select("name", "provenance").explode("provenance").unnest("provenance")
    from_list = first.filter(pl.col("source") == "passive-dns")
    assert from_list.height == new.filter(pl.col("sources").list.contains("passive-dns")).height
    assert set(from_list["first_seen"]) == {spike}
    later = (
        _candidates(root, DAYS[-1])
        .select("name", "provenance")
        .explode("provenance")
        .unnest("provenance")
    )
    listed = later.filter(pl.col("source") == "passive-dns")
    assert set(listed["first_seen"]) == {spike} and set(listed["last_seen"]) == {
        spike
    }  # weekly list
    meta = results[spike].asset_materializations_for_node("candidate_domains")[0].metadata
    assert meta["added"].value == new.height


def test_decay_shows_as_removals(lake_days):
    root, results, truth = lake_days
    for prev, day in zip(DAYS, DAYS[1:], strict=False):
        old = set(_candidates(root, prev).filter(pl.col("tld") == "lab-fade.")["name"])
        new = set(_candidates(root, day).filter(pl.col("tld") == "lab-fade.")["name"])
        expected_gone = {
            r["name"] for r in truth[prev] if r["kind"] == "domain" and r["tld"] == "lab-fade"
        } - {r["name"] for r in truth[day] if r["kind"] == "domain"}
        assert old - new == expected_gone
    meta = results[DAYS[-1]].asset_materializations_for_node("candidate_domains")[0].metadata
    removed = meta["removed_sample"].value
    assert all(r["last_seen"] == str(DAYS[-2]) for r in removed)


def test_delegation_details_come_from_the_zones(lake_days):
    root, _, _ = lake_days
    w = W.World(1, "tiny", DAYS[-1])
    rows = {r["name"]: r for r in _candidates(root, DAYS[-1]).to_dicts()}
    checked = 0
    for tld in W.TLDS:
        if tld.source == "list":
            continue
        for index, _ in list(w.domain_names(tld))[:30]:
            d = w.domain(tld.label, index)
            row = rows[d.name]
            assert row["ns"] == sorted(n.lower() for n in w.ns_records(d)), d.name
            assert bool(row["ds"]) == d.signed, d.name
            assert bool(row["glue"]) == (d.dns == "self"), d.name
            checked += 1
    assert checked > 100


def test_raw_import_provenance(lake_days):
    root, results, _ = lake_days
    imports = pl.read_parquet(root / "lake" / "zone_imports" / f"date={DAYS[-1]}" / "*.parquet")
    assert set(imports["source"]) == {"czds", "registry-files", "open-axfr"}  # the list is weekly
    assert (imports["status"] == "ok").all()
    assert imports.filter(pl.col("kind") != "axfr")["sha256"].str.len_chars().min() == 64
    listed = pl.read_parquet(
        root / "lake" / "zone_imports" / f"date={W.date_of(W.Day.LIST_IMPORT)}" / "*.parquet"
    )
    bad = json.loads(listed.filter(pl.col("source") == "passive-dns")["bad"][0])
    assert bad["bad_name"]["count"] == len(W.INVALID_LIST_LINES)


def test_no_scratch_files_are_left(lake_days):
    root, _, _ = lake_days
    leftovers = [
        p
        for p in (root / "lake").rglob("*")
        if p.is_file() and ("/.staging/" in str(p) or p.suffix == ".tmp")
    ]
    assert leftovers == []


def test_the_lab_files_went_through_the_compiled_reader(lake_days):
    """The candidates above equal the truth with the compiled CZDS reader doing the reading
    (it lowers the lab's upper-case owners itself; the padded ones go through polars)."""
    _, results, _ = lake_days
    meta = results[DAYS[0]].asset_materializations_for_node("raw_zone_lists")[0].metadata
    assert meta["czds_reader"].value == "compiled (rust/czds_reader)"
