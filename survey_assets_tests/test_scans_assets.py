"""The scan assets on the lab, through Dagster: the lake's scan rows equal the truth."""

from __future__ import annotations

import json
import uuid

import dagster as dg
import polars as pl
import pytest

from survey_assets.defs.constants import DOMAIN_SCANS, SCAN_SHARDS
from survey_assets.lab import world as W
from survey_assets.lake.parquet import shard_of
from survey_assets_tests.conftest import free_port, materialize_days

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
def test_domain_scans_carry_each_candidates_suffix_and_parent_ds(materialized, day):
    """What the warehouse counts a day's domains by, so that it need not join the candidates."""
    lake = materialized / "lake"
    candidates = pl.read_parquet(lake / "candidate_domains" / f"date={day}" / "*.parquet")
    scans = pl.read_parquet(lake / "domain_scans" / f"date={day}" / "*.parquet")
    want = candidates.select("name", "suffix", parent_ds=pl.col("ds").list.len() > 0)
    assert scans.select("name", "suffix", "parent_ds").sort("name").equals(want.sort("name"))
    assert want["parent_ds"].any() and not want["parent_ds"].all()


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


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_one_file_per_shard_each_name_in_its_shard(materialized, day):
    for dataset in ("domain_scans", "mx_host_scans"):
        folder = materialized / "lake" / dataset / f"date={day}"
        files = sorted(folder.iterdir())
        assert [f.name for f in files] == [f"part-{i:04d}.parquet" for i in range(SCAN_SHARDS)]
        for index, path in enumerate(files):
            names = pl.read_parquet(path)["name"].to_list()
            assert all(shard_of(n, SCAN_SHARDS) == index for n in names), (dataset, index)
    assert not list((materialized / "lake" / ".staging").rglob("*.parquet"))


def _domain_scans_job():
    """domain_scans alone, from the environment's settings (reconstructable in a subprocess)."""
    from survey_assets.definitions import build
    from survey_assets.settings import Settings

    job = dg.define_asset_job("domain_scans_job", selection=[DOMAIN_SCANS])
    defs = dg.Definitions.merge(build(Settings.from_env()), dg.Definitions(jobs=[job]))
    return defs.resolve_job_def("domain_scans_job")


def test_a_failed_shard_is_retried_alone(materialized, tmp_path, monkeypatch):
    """A shard that cannot write its file fails (after its retries) while the others finish;
    the published day stays whole and untouched; re-executing the run from failure scans
    that shard alone, in its own process with its own lab, and publishes the whole day."""
    root, day = materialized, DAYS[1]
    # Nothing listens on these ports: every shard step starts a lab of its own.
    monkeypatch.setenv("SURVEY_DATA_DIR", str(root))
    monkeypatch.setenv("SURVEY_LAB_SCALE", "tiny")
    monkeypatch.setenv("SURVEY_LAB_DNS_PORT", str(free_port()))
    monkeypatch.setenv("SURVEY_LAB_SMTP_PORT", str(free_port("127.25.1.1")))
    partition = root / "lake" / "domain_scans" / f"date={day}"
    stale = pl.DataFrame({"name": ["stale.lab-vast."], "dnssec": ["bogus"]})
    stale.write_parquet(partition / "part-0099.parquet")  # as if a layout of 100 shards had been
    before = {p.name: p.read_bytes() for p in partition.iterdir()}

    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))
    run_id = str(uuid.uuid4())
    obstacle = root / "lake" / ".staging" / "domain_scans" / f"date={day}" / run_id
    (obstacle / "part-0003.parquet").mkdir(parents=True)  # a directory where shard 3's file goes
    first = _domain_scans_job().execute_in_process(
        partition_key=day.isoformat(), instance=instance, run_id=run_id, raise_on_error=False
    )
    assert not first.success
    failed = {e.step_key for e in first.all_events if e.event_type_value == "STEP_FAILURE"}
    assert failed == {"domain_scans.scan_domain_scans_shard[shard_03]"}
    retried = [e.step_key for e in first.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retried == ["domain_scans.scan_domain_scans_shard[shard_03]"] * 2
    done = {e.step_key for e in first.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert len([k for k in done if "_shard[" in k]) == SCAN_SHARDS - 1
    assert {p.name: p.read_bytes() for p in partition.iterdir()} == before  # nothing published

    (obstacle / "part-0003.parquet").rmdir()
    again = dg.execute_job(
        dg.reconstructable(_domain_scans_job),
        instance,
        tags=instance.get_run_by_id(run_id).tags,  # the partition, as the UI's re-execution does
        reexecution_options=dg.ReexecutionOptions.from_failure(run_id, instance),
    )
    assert again.success
    ran = {e.step_key for e in again.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert ran == {
        "domain_scans.scan_domain_scans_shard[shard_03]",
        "domain_scans.publish_domain_scans",
    }
    assert sorted(p.name for p in partition.iterdir()) == [
        f"part-{i:04d}.parquet" for i in range(SCAN_SHARDS)
    ]
    truth = [
        json.loads(x) for x in (root / "lab" / "truth" / f"{day}.jsonl").read_text().splitlines()
    ]
    expected = {r["name"]: (r["dnssec"], r["reasons"]) for r in truth if r["kind"] == "domain"}
    rows = pl.read_parquet(partition / "*.parquet")
    assert {r["name"]: (r["dnssec"], r["reasons"]) for r in rows.to_dicts()} == expected
    event = instance.get_latest_materialization_event(DOMAIN_SCANS)
    meta = event.asset_materialization.metadata
    assert meta["dagster/row_count"].value == len(expected) == rows.height
    assert meta["path"].value == str(partition)
    # The fast path decided the common shapes (secure, or insecure for want of a DS) only.
    common = sum(v in (("secure", []), ("insecure", ["no_ds"])) for v in expected.values())
    assert 0.8 * common <= meta["fast_path_domains"].value <= common
    assert not list((root / "lake" / ".staging" / "domain_scans").rglob("*.parquet"))
