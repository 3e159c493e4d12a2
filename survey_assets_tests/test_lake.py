"""The lake's sharded partitions: stable shards, staged files published whole."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl
import pytest

from survey_assets.lake.parquet import (
    partition_dir,
    publish_parts,
    read_partition,
    shard_of,
    stage_part,
    staging_dir,
    write_part,
)

DAY = dt.date(2026, 11, 3)


def test_shard_of_is_stable_and_spread():
    names = [f"d{i}.lab-vast." for i in range(4000)]
    shards = [shard_of(n, 8) for n in names]
    assert shards[:6] == [shard_of(n, 8) for n in names[:6]]  # pure
    assert shard_of("D0.LAB-VAST.", 8) == shards[0]  # DNS names compare without case
    counts = [shards.count(s) for s in range(8)]
    assert min(counts) > 400 and max(counts) < 600, counts
    # Pinned: a name must land in the same shard in every process and every release.
    assert [shard_of(f"x{i}.lab-secure.", 16) for i in range(6)] == [9, 2, 10, 1, 14, 13]


def _frame(names: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"name": names, "n": list(range(len(names)))})


def test_publish_replaces_a_partition_of_another_layout(tmp_path: Path):
    lake = tmp_path / "lake"
    for shard in range(5):  # an earlier run cut the day in five
        write_part(lake, "scans", DAY, _frame([f"old{shard}."]), shard)
    parts = [
        stage_part(lake, "scans", DAY, "run-a", shard, _frame([f"new{shard}a.", f"new{shard}b."]))
        for shard in range(2)
    ]
    assert read_partition(lake, "scans", DAY).height == 5  # staged files are invisible
    folder = publish_parts(lake, "scans", DAY, parts)
    assert folder == partition_dir(lake, "scans", DAY)
    assert sorted(p.name for p in folder.iterdir()) == ["part-0000.parquet", "part-0001.parquet"]
    assert sorted(read_partition(lake, "scans", DAY)["name"]) == [
        "new0a.", "new0b.", "new1a.", "new1b."]  # fmt: skip
    assert not staging_dir(lake, "scans", DAY, "run-a").exists()
    leftovers = [p for p in (lake / ".staging").rglob("*") if p.is_file()]
    assert not leftovers


def test_publish_gathers_parts_of_several_runs(tmp_path: Path):
    """A re-executed run publishes its own retried shard beside the parent run's others."""
    lake = tmp_path / "lake"
    parts = [stage_part(lake, "scans", DAY, "parent", 0, _frame(["a."]))]
    parts.append(stage_part(lake, "scans", DAY, "child", 1, _frame(["b."])))
    publish_parts(lake, "scans", DAY, parts)
    assert sorted(read_partition(lake, "scans", DAY)["name"]) == ["a.", "b."]
    assert not (lake / ".staging" / "scans" / f"date={DAY}").exists()


def test_publish_refuses_a_missing_part_and_keeps_the_old_day(tmp_path: Path):
    lake = tmp_path / "lake"
    write_part(lake, "scans", DAY, _frame(["old."]), 0)
    part = stage_part(lake, "scans", DAY, "run", 0, _frame(["new."]))
    gone = staging_dir(lake, "scans", DAY, "run") / "part-0001.parquet"
    with pytest.raises(FileNotFoundError, match="part-0001"):
        publish_parts(lake, "scans", DAY, [part, gone])
    assert read_partition(lake, "scans", DAY)["name"].to_list() == ["old."]


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path):
    lake = tmp_path / "lake"
    obstacle = staging_dir(lake, "scans", DAY, "run") / "part-0003.parquet"
    obstacle.mkdir(parents=True)  # a directory where the file must go
    with pytest.raises(OSError):
        stage_part(lake, "scans", DAY, "run", 3, _frame(["a."]))
    assert os.listdir(obstacle.parent) == ["part-0003.parquet"]
