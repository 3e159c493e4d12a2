"""The scan assets on the lab, through Dagster: the lake's scan rows equal the truth."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest

from survey_assets.definitions import build
from survey_assets.lab import world as W
from survey_assets.lab.serve import Lab
from survey_assets.settings import Settings
from survey_assets_tests.conftest import free_port

DAYS = [W.date_of(0), W.date_of(1)]


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    root = tmp_path_factory.mktemp("scans")
    dns_port, smtp_port = free_port(), free_port("127.25.1.1")
    settings = Settings(
        data_dir=root, lab_scale="tiny", lab_dns_port=dns_port, lab_smtp_port=smtp_port
    )
    job = build(settings).resolve_implicit_global_asset_job_def()
    instance = dg.DagsterInstance.ephemeral()
    with Lab(scale="tiny", date=DAYS[0], workdir=root / "lab", dns_port=dns_port, smtp_port=smtp_port,
             write_zones=False) as lab:  # fmt: skip
        for day in DAYS:
            lab.set_date(day)
            assert job.execute_in_process(partition_key=day.isoformat(), instance=instance).success
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
