"""Import a day's zone lists into the lake, with provenance, atomically per source.

Layout: `lake/raw_zone_lists/date=D/source=S/zone=Z/part-*.parquet` (owner, rtype, rdata; the
zone is `*` for name lists) and
`lake/zone_imports/date=D/part-0000.parquet` (one row per feed: a file or a transferred zone).
Each source's day is built in `lake/.staging/` and renamed into place when complete, so a reader
never sees half an import and a re-run replaces exactly that source's day. A damaged feed is
reported (status "failed", with the file and the problem) and the rest of the day goes on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from survey_assets.sources.config import Source, SourcesConfig
from survey_assets.sources.records import ImportStats, SourceError, rrsets

RAW_DATASET = "raw_zone_lists"
IMPORTS_DATASET = "zone_imports"
PART_ROWS = 1_000_000  # rows per part file: pending rows keep their blocks' text alive
LIST_ZONE = "*"  # the feed key of name lists, which belong to no zone


@dataclass
class FeedResult:
    """What importing one feed (a file, or one zone by transfer) gave."""

    source: str
    kind: str
    feed: str
    zone: str
    status: str = "ok"
    error: str = ""
    sha256: str = ""
    size: int = 0
    seconds: float = 0.0
    stats: ImportStats = field(default_factory=ImportStats)

    def row(self, imported_at: dt.datetime) -> dict:
        return {
            "source": self.source,
            "kind": self.kind,
            "feed": self.feed,
            "zone": self.zone,
            "status": self.status,
            "error": self.error,
            "sha256": self.sha256,
            "bytes": self.size,
            "lines": self.stats.lines,
            "records": self.stats.records,
            "blank_lines": self.stats.blank,
            "bad": json.dumps(self.stats.as_metadata()["bad"], sort_keys=True),
            "types": json.dumps(dict(self.stats.types), sort_keys=True),
            "imported_at": imported_at,
            "seconds": round(self.seconds, 3),
        }


class PartWriter:
    """Writes frames as Parquet parts of about PART_ROWS rows, in a background thread."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder, self.prefix = folder, prefix
        self.pending: list[pl.DataFrame] = []
        self.rows = 0
        self.parts = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="parquet")
        self._writes: list[Future] = []

    def add(self, frame: pl.DataFrame) -> None:
        if frame.height:
            self.pending.append(frame)
            self.rows += frame.height
            if self.rows >= PART_ROWS:
                self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        frame = pl.concat(self.pending)
        path = self.folder / f"part-{self.prefix}-{self.parts:04d}.parquet"
        # zstd level 1: smaller than the default level here, and a third faster to write.
        write = frame.write_parquet
        self._writes.append(self._pool.submit(write, path, compression="zstd", compression_level=1))
        self.parts += 1
        self.pending, self.rows = [], 0

    def close(self) -> None:
        self.flush()
        self._pool.shutdown(wait=True)
        for write in self._writes:
            write.result()


def feeds(source: Source, date: dt.date) -> list[tuple[str, str, Path | None]]:
    """(feed name, zone, path) of what a source has for the day; empty when nothing arrived."""
    if source.kind == "axfr":
        return [(z, _zone(z), None) for z in source.zones]
    folder = source.folder(date)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.endswith(".tmp")):
        name = path.name
        if source.kind == "czds" and name.endswith((".txt.gz", ".txt", ".zone.gz")):
            found.append((name, _zone(name.split(".txt")[0].split(".zone")[0]), path))
        elif source.kind == "zonefile" and name.endswith((".zone", ".zone.gz")):
            found.append((name, _zone(name.split(".zone")[0]), path))
        elif source.kind == "list" and name.endswith((".txt", ".txt.gz")):
            found.append((name, LIST_ZONE, path))
    return found


def _zone(label: str) -> str:
    return label.lower().rstrip(".") + "."


def read_feed(
    source: Source, zone: str, path: Path | None, stats: ImportStats
) -> Iterator[pl.DataFrame]:
    """A feed's RRsets (`records.rrsets`), batch by batch, as the lake keeps them."""
    if source.kind == "czds":
        from survey_assets.sources.czds import read_czds

        return read_czds(path, zone, stats, as_rrsets=True)  # grouped in the parsing threads
    return map(rrsets, _read_records(source, zone, path, stats))


def _read_records(
    source: Source, zone: str, path: Path | None, stats: ImportStats
) -> Iterator[pl.DataFrame]:
    if source.kind == "zonefile":
        from survey_assets.sources.masterfile import read_masterfile

        return read_masterfile(path, zone, stats)
    if source.kind == "list":
        from survey_assets.sources.namelist import read_namelist

        return read_namelist(path, stats)
    from survey_assets.sources.axfr import read_axfr

    address, port = source.server()
    return read_axfr(address, port, zone, stats)


def import_source(source: Source, date: dt.date, lake: Path) -> list[FeedResult]:
    """Import everything a source has for the day; replaces that source's day in the lake."""
    results = []
    staging = lake / ".staging" / uuid.uuid4().hex
    folder = staging / f"source={source.name}"
    folder.mkdir(parents=True)
    try:
        for index, (feed, zone, path) in enumerate(feeds(source, date)):
            result = FeedResult(source.name, source.kind, feed, zone)
            began = time.monotonic()
            feed_folder = folder / f"zone={zone}"
            feed_folder.mkdir(exist_ok=True)
            writer = PartWriter(feed_folder, f"{index:03d}")
            try:
                if path is not None:
                    result.size = path.stat().st_size
                for frame in read_feed(source, zone, path, result.stats):
                    writer.add(frame)
                writer.close()
                if path is not None:  # the CZDS reader checksums the file as it reads it
                    result.sha256 = result.stats.sha256 or _sha256(path)
            except SourceError as exc:
                writer.close()
                for part in feed_folder.glob(f"part-{index:03d}-*.parquet"):
                    part.unlink()
                result.status, result.error = "failed", str(exc)
                if path is not None:
                    result.sha256 = _sha256(path)
            result.seconds = time.monotonic() - began
            results.append(result)
        if results:
            _publish(
                folder, lake / RAW_DATASET / f"date={date.isoformat()}" / f"source={source.name}"
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return results


def import_day(
    config: SourcesConfig, date: dt.date, lake: Path, imported_at: dt.datetime
) -> list[FeedResult]:
    """Import every source's day and write the provenance of every feed."""
    results: list[FeedResult] = []
    for source in config.sources:
        results += import_source(source, date, lake)
    rows = [r.row(imported_at) for r in results]
    frame = pl.DataFrame(rows, schema=IMPORT_SCHEMA) if rows else pl.DataFrame(schema=IMPORT_SCHEMA)
    from survey_assets.lake.parquet import replace_partition

    replace_partition(lake, IMPORTS_DATASET, date, frame)
    return results


IMPORT_SCHEMA = {
    "source": pl.String,
    "kind": pl.String,
    "feed": pl.String,
    "zone": pl.String,
    "status": pl.String,
    "error": pl.String,
    "sha256": pl.String,
    "bytes": pl.Int64,
    "lines": pl.Int64,
    "records": pl.Int64,
    "blank_lines": pl.Int64,
    "bad": pl.String,
    "types": pl.String,
    "imported_at": pl.Datetime("us", "UTC"),
    "seconds": pl.Float64,
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _publish(staged: Path, final: Path) -> None:
    """Swap a finished folder into place: a reader sees the old day or the new one, never half."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(staged, final)
    shutil.rmtree(old, ignore_errors=True)
