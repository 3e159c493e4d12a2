"""The scan assets on the lab, through Dagster: the lake's scan rows equal the truth."""

from __future__ import annotations

import json

import polars as pl
import pytest

from survey_assets.lab import world as W
from survey_assets_tests.conftest import materialize_days

DAYS = [W.date_of(0), W.date_of(1)]


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    root = tmp_path_factory.mktemp("scans")
    materialize_days(root, DAYS)
    return root


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_scans_equal_the_truth(materialized, day):
    root = materialized
    truth = [
        json.loads(x) for x in (root / "lab" / "truth" / f"{day}.jsonl").read_text().splitlines()
    ]
    for kind, dataset in (("domain", "domain_scans"), ("mx_host", "mx_host_scans")):
        expected = {r["name"]: (r["dnssec"], r["reasons"]) for r in truth if r["kind"] == kind}
        rows = pl.read_parquet(root / "lake" / dataset / f"date={day}" / "*.parquet")
        got = {r["name"]: (r["dnssec"], r["reasons"]) for r in rows.to_dicts()}
        assert got == expected, [(n, expected.get(n), got.get(n)) for n in set(got) ^ set(expected) or
                                 [n for n in got if got[n] != expected.get(n)]][:10]  # fmt: skip
    hosts = pl.read_parquet(root / "lake" / "mx_host_scans" / f"date={day}" / "*.parquet")
    assert hosts.filter(pl.col("name") == "mx1.bigdane.lab-net.")["domains"][0] > 10


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_nameserver_probes_equal_the_truth(materialized, day):
    root = materialized
    truth = [
        json.loads(x) for x in (root / "lab" / "truth" / f"{day}.jsonl").read_text().splitlines()
    ]
    expected = {(r["name"], r["address"]): r["reasons"] for r in truth if r["kind"] == "nameserver"}
    rows = pl.read_parquet(root / "lake" / "nameserver_probes" / f"date={day}" / "*.parquet")
    got = {(r["name"], r["address"]): r["reasons"] for r in rows.to_dicts()}
    assert got == expected, sorted((k, expected.get(k), got.get(k)) for k in set(got) | set(expected)
                                   if got.get(k) != expected.get(k))[:12]  # fmt: skip
