"""The lake: `lake/<dataset>/date=YYYY-MM-DD/part-<shard>.parquet`, written atomically.

Every file is written under a temporary name in its own folder and renamed into place, so a
reader that globs `*.parquet` never sees half a file, and re-running a partition replaces it.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl


def partition_dir(lake: Path, dataset: str, date: dt.date) -> Path:
    return lake / dataset / f"date={date.isoformat()}"


def write_part(
    lake: Path, dataset: str, date: dt.date, frame: pl.DataFrame, shard: int = 0
) -> Path:
    """Write one shard of a day's partition; returns the final path."""
    folder = partition_dir(lake, dataset, date)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"part-{shard:04d}.parquet"
    tmp = folder / f".part-{shard:04d}.{os.getpid()}.tmp"
    frame.write_parquet(tmp, compression="zstd", statistics=True)
    os.replace(tmp, final)
    return final


def replace_partition(lake: Path, dataset: str, date: dt.date, frame: pl.DataFrame) -> Path:
    """Write a whole partition as one shard, removing shards a previous run left behind."""
    path = write_part(lake, dataset, date, frame, 0)
    for stale in path.parent.glob("part-*.parquet"):
        if stale != path:
            stale.unlink()
    return path


def read_partition(lake: Path, dataset: str, date: dt.date) -> pl.DataFrame:
    files = sorted(partition_dir(lake, dataset, date).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no {dataset} partition for {date.isoformat()} in {lake}")
    return pl.read_parquet(files)
