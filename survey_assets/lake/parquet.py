"""The lake: `lake/<dataset>/date=YYYY-MM-DD/part-<shard>.parquet`, written atomically.

Every file is written under a temporary name in its own folder and renamed into place, so a
reader that globs `*.parquet` never sees half a file, and re-running a partition replaces it.
A partition written by several steps (one file per shard) is staged in `lake/.staging/` and
published whole: the new folder takes the old one's place in one rename, so a reader sees the
old day or the new day, never a mix of shard files from two runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import hashlib
import os
import shutil
import uuid
from pathlib import Path

import polars as pl


def partition_dir(lake: Path, dataset: str, date: dt.date) -> Path:
    return lake / dataset / f"date={date.isoformat()}"


def staging_dir(lake: Path, dataset: str, date: dt.date, run: str) -> Path:
    """Where one run stages its shard files of a partition: outside every reader's glob."""
    return lake / ".staging" / dataset / f"date={date.isoformat()}" / run


def shard_of(name: str, shards: int) -> int:
    """The shard of a name: a stable hash, so a name lands in the same shard every day and in
    every process (Python's hash() is salted per process; polars' may change between versions)."""
    digest = hashlib.blake2b(name.lower().encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def _write(folder: Path, shard: int, frame: pl.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"part-{shard:04d}.parquet"
    tmp = folder / f".part-{shard:04d}.{os.getpid()}.tmp"
    try:
        frame.write_parquet(tmp, compression="zstd", statistics=True)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def write_part(
    lake: Path, dataset: str, date: dt.date, frame: pl.DataFrame, shard: int = 0
) -> Path:
    """Write one shard of a day's partition; returns the final path."""
    return _write(partition_dir(lake, dataset, date), shard, frame)


def stage_part(
    lake: Path, dataset: str, date: dt.date, run: str, shard: int, frame: pl.DataFrame
) -> Path:
    """Write one shard of a partition in the run's staging folder (see `publish_parts`)."""
    return _write(staging_dir(lake, dataset, date, run), shard, frame)


def publish_parts(lake: Path, dataset: str, date: dt.date, parts: list[Path]) -> Path:
    """Make the staged `parts` the whole partition at once; returns the partition's folder.

    The parts are moved (renamed) into a fresh folder, which then swaps places with the
    partition's folder: whatever the old partition held (another shard layout, a half-finished
    earlier run's leftovers) disappears in the same instant the new shards appear.
    """
    final = partition_dir(lake, dataset, date)
    fresh = lake / ".staging" / dataset / f"publish-{uuid.uuid4().hex}"
    fresh.mkdir(parents=True)
    for part in parts:
        if not part.exists():
            shutil.rmtree(fresh, ignore_errors=True)
            raise FileNotFoundError(f"staged shard {part} is gone: run the whole partition again")
        os.replace(part, fresh / part.name)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        _exchange(fresh, final)  # `fresh` now holds the old partition
        shutil.rmtree(fresh, ignore_errors=True)
    else:
        os.rename(fresh, final)
    for folder in {p.parent for p in parts}:  # the runs' staging folders, now empty
        with contextlib.suppress(OSError):
            folder.rmdir()
            folder.parent.rmdir()
            folder.parent.parent.rmdir()
    return final


_RENAME_EXCHANGE, _AT_FDCWD = 2, -100


def _exchange(a: Path, b: Path) -> None:
    """Swap two folders: one atomic renameat2(RENAME_EXCHANGE) on Linux; elsewhere (or on a
    file system without it) two renames, with a moment in which the partition is missing but
    never mixed."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is not None:
        flags = ctypes.c_uint(_RENAME_EXCHANGE)
        if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), flags) == 0:
            return
    parked = a.with_name(a.name + ".old")
    os.rename(b, parked)
    os.rename(a, b)
    os.rename(parked, a)


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
