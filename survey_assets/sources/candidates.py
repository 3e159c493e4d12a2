"""A day's candidate domains: every name delegated directly below a public suffix, with its NS,
DS and glue from the zones that delegate it, and when each source first and last listed it.

A day uses the newest successful import of each feed (a source's file or zone) on or before that
day, so a weekly list keeps counting between publications and a damaged file falls back to the
previous day's copy.

The work is done in three steps, in bounded memory whatever the size of the zones:

1. The feeds' RRsets become *sightings* (`sightings.py`), each keyed by a name: zones' NS sets,
   DS sets and glue (read by polars, file by file), lists' names at their registrable domain
   (DuckDB), and, on a cold start, earlier imports. Nothing is grouped or sorted.
2. They are cut by a 64-bit hash of the name into a power-of-two number of buckets of about
   BUCKET_ROWS rows, kept in scratch Arrow files (in memory when one bucket holds the day).
3. Each bucket is merged by polars into one row per candidate, with the hashes as keys, beside
   the previous day's part of the same bucket (each name's provenance so far), and written as
   one part file while the next bucket merges. The import keeps RRsets, so a delegation is one
   NS row and most names need no more than copying their sets.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import queue
import resource
import shutil
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import dns.name
import duckdb
import polars as pl
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from survey_assets.lake.parquet import partition_dir, publish_parts, staging_dir
from survey_assets.sources import sightings as S
from survey_assets.sources import suffixes
from survey_assets.sources.importer import IMPORTS_DATASET, RAW_DATASET
from survey_assets.sources.records import RRSET_SEPARATOR
from survey_assets.sources.sightings import DS, EARLIER, GLUE, LISTED, NS, Feed

DATASET = "candidate_domains"
BUCKET_ROWS = 500_000  # sightings merged in memory at a time
BATCH_ROWS = 500_000  # sightings per batch out of DuckDB
SAMPLE = 10

PROVENANCE = pl.Struct({"source": pl.String, "first_seen": pl.Date, "last_seen": pl.Date})
SCHEMA = {
    "name": pl.String,
    "suffix": pl.String,
    "tld": pl.String,
    "ns": pl.List(pl.String),
    "ds": pl.List(pl.String),
    "glue": pl.List(pl.String),
    "sources": pl.List(pl.String),
    "first_seen": pl.Date,
    "last_seen": pl.Date,
    "provenance": pl.List(PROVENANCE),
}
_NO_NAMES = pl.lit([], dtype=pl.List(pl.String))


@dataclass
class CandidateReport:
    path: Path
    rows: int
    per_suffix: dict[str, int] = field(default_factory=dict)
    per_source: dict[str, int] = field(default_factory=dict)
    added: int = 0
    removed: int = 0
    added_sample: list[str] = field(default_factory=list)
    removed_sample: list[tuple[str, str]] = field(default_factory=list)  # name, last seen
    anomalies: dict[str, int] = field(default_factory=dict)
    feeds: list[dict] = field(default_factory=list)


def connect(
    extra_suffixes: tuple[str, ...] = (), memory_limit: str = "2GB", spill: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the suffix tables and DNS-name macros; it spills to `spill`
    (a folder) rather than fail when a day's work outgrows `memory_limit`."""
    database = ":memory:"
    if spill is not None:  # a scratch database file: its tables live on disk, not in memory
        spill.mkdir(parents=True, exist_ok=True)
        database = str(spill / f"candidates-{os.getpid()}.duckdb")
        for stale in (Path(database), Path(database + ".wal")):
            stale.unlink(missing_ok=True)
    con = duckdb.connect(database)
    con.execute(f"SET memory_limit = '{memory_limit}'; SET preserve_insertion_order = false")
    if spill is not None:
        con.execute(f"SET temp_directory = '{spill}'")
    con.execute("SET enable_progress_bar = false")
    suffixes.register(con, extra_suffixes)
    con.execute(r"""
        CREATE OR REPLACE TEMP MACRO is_suffix(n, exact, wild, exception) AS
            exact OR (wild AND NOT exception) OR dns_single_label(n);
    """)
    return con


def discard(con: duckdb.DuckDBPyConnection) -> None:
    """Close a connection and delete its scratch database file, if it has one."""
    files = [row[2] for row in con.execute("PRAGMA database_list").fetchall() if row[2]]
    con.close()
    for name in files:
        for path in (Path(name), Path(name + ".wal")):
            path.unlink(missing_ok=True)


def name_hash(names: pl.Expr) -> pl.Expr:
    """A name's 64-bit hash: its bucket, and its key in the merge (checked against the name).
    polars keeps it stable within a version; the previous day's parts are checked to have been
    cut with the same one before they are read as buckets."""
    return names.hash()


# --- step 2: buckets ------------------------------------------------------------------------


class _Buckets:
    """Sightings cut by a hash of the name: scratch Arrow files, or memory for one bucket."""

    def __init__(self, folder: Path, count: int) -> None:
        self.folder, self.count = folder, count
        self.writers: dict[int, ipc.RecordBatchFileWriter] = {}
        self.frames: list[pl.DataFrame] = []
        _allow_open_files(count + 256)  # a .com-sized day has some 500 buckets open at once

    def add(self, frame: pl.DataFrame) -> None:
        frame = frame.with_columns(h=name_hash(pl.col("name")))
        if self.count == 1:
            self.frames.append(frame)
            return
        bucket = (pl.col("h") % self.count).cast(pl.UInt32).alias("bucket")
        for (index,), part in (
            frame.with_columns(bucket)
            .partition_by("bucket", as_dict=True, include_key=False)
            .items()
        ):
            table = part.to_arrow()
            if index not in self.writers:  # uncompressed: lz4 would cost a tenth more time
                self.writers[index] = ipc.new_file(self._path(index), table.schema)
            self.writers[index].write_table(table)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()

    def take(self, index: int) -> pl.DataFrame | None:
        """A bucket's sightings (once: its scratch file is removed)."""
        if self.count == 1:
            frames, self.frames = self.frames, []
            return pl.concat(frames) if frames else None
        if index not in self.writers:
            return None
        path = self._path(index)
        with ipc.open_file(path) as reader:
            frame = pl.from_arrow(reader.read_all())
        path.unlink()
        return frame

    def _path(self, index: int) -> Path:
        return self.folder / f"bucket-{index:05d}.arrow"


def _allow_open_files(wanted: int) -> None:
    """Raise the soft limit on open files towards `wanted` (never above the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, ceiling), hard))


# --- step 3: merge (polars) -----------------------------------------------------------------


@dataclass
class _Counts:
    """What the report sums over buckets."""

    rows: int = 0
    per_suffix: Counter = field(default_factory=Counter)
    per_source: Counter = field(default_factory=Counter)
    added: int = 0
    added_sample: list[str] = field(default_factory=list)
    removed: int = 0
    removed_sample: list[tuple[str, str]] = field(default_factory=list)
    ds_without_ns: int = 0
    ns_not_below_suffix: int = 0

    def add(self, other: _Counts) -> None:
        self.rows += other.rows
        self.per_suffix.update(other.per_suffix)
        self.per_source.update(other.per_source)
        self.added += other.added
        self.removed += other.removed
        self.added_sample = sorted(self.added_sample + other.added_sample)[:SAMPLE]
        self.removed_sample = sorted(self.removed_sample + other.removed_sample)[:SAMPLE]
        self.ds_without_ns += other.ds_without_ns
        self.ns_not_below_suffix += other.ns_not_below_suffix


class _Collision(Exception):
    """Two names of a bucket share a hash: merge that bucket by name instead."""


def merge_bucket(
    sightings: pl.DataFrame,
    earlier: pl.DataFrame | None,
    counts: _Counts,
    previous_day: bool,
    key: str = "h",
) -> pl.DataFrame:
    """One row per candidate among a bucket's sightings, in the order of the sightings (names
    seen more than once last).

    `earlier` holds each name's first day per source so far (h, name, source, p_first, and
    p_last: the previous day's last_seen of the name), or is None on the first day;
    `previous_day` says it is the previous day's (so that names added and removed are counted).
    Rows are matched by `key`, the names' hash, and checked to be the same name.
    """
    f, k, cand = sightings, pl.col("k"), pl.col("cand")
    keys = [key] if key == "name" else [key, "name"]
    seen = f.filter(((k == NS) | (k == LISTED)) & cand).select(
        *keys, "suffix", "source", last="day", ns="data"
    )
    ds = f.filter(k == DS).select(*keys, ds="data")
    with_ns = f.filter(k == NS).select(*keys, "cand")
    counts.ns_not_below_suffix += with_ns.filter(~cand)["name"].n_unique()
    counts.ds_without_ns += ds.filter(~pl.col(key).is_in(with_ns[key].implode()))["name"].n_unique()
    # Names seen once, with at most one DS set and one earlier source (nearly all), are copied;
    # the others (several sources, a set cut in two) are merged by name in _merge_slowly.
    slow = pl.concat(
        [_repeated(seen, key), _repeated(ds, key)]
        + ([_repeated(earlier, key)] if earlier is not None else [])
    ).unique()
    picked = pl.col(key).is_in(slow.implode())
    slow_seen = seen.filter(picked) if slow.len() else seen.clear()
    slow_earlier = None
    if earlier is not None:
        slow_earlier = earlier.filter(picked) if slow.len() else earlier.clear()
    quick = seen.filter(~pl.col(key).is_in(slow.implode())) if slow.len() else seen
    quick = quick.join(
        ds.rename({"name": "ds_name"}) if key != "name" else ds,
        on=key,
        how="left",
        maintain_order="left",
    )
    first = pl.col("last")
    if earlier is not None:
        quick = quick.join(
            earlier.select(*keys, p_src="source", p_first="p_first").rename(
                {"name": "e_name"} if key != "name" else {}
            ),
            on=key,
            how="left",
            maintain_order="left",
        )
        first = pl.when(pl.col("p_src") == pl.col("source")).then("p_first").otherwise("last")
    if key != "name":
        _check_same_names(quick, ["ds_name"] + (["e_name"] if earlier is not None else []))
    if previous_day and earlier is not None:
        _count_changes(seen, quick, slow_seen, earlier, slow_earlier, key, counts)
    quick = quick.select(
        *keys,
        "suffix",
        ns=pl.col("ns").str.split(RRSET_SEPARATOR).fill_null(_NO_NAMES),
        ds=pl.col("ds").str.split(RRSET_SEPARATOR).fill_null(_NO_NAMES),
        sources=pl.concat_list("source"),
        first_seen=first,
        last_seen="last",
        provenance=pl.concat_list(pl.struct(source="source", first_seen=first, last_seen="last")),
    )
    if slow.len():
        slowly = _merge_slowly(slow_seen, ds.filter(picked), slow_earlier, key)
        quick = pl.concat(
            [quick, slowly.select(quick.columns)]
        )  # after the others: still one order
    rows = _with_glue(quick, f.filter(k == GLUE).select(*keys, glue="data"), key)
    rows = rows.with_columns(tld=_tlds(rows["suffix"])).select(list(SCHEMA))
    counts.rows += rows.height
    counts.per_suffix.update(dict(rows["suffix"].value_counts().iter_rows()))
    counts.per_source.update(
        dict(rows.select(pl.col("sources").explode())["sources"].value_counts().iter_rows())
    )
    return rows


def _repeated(frame: pl.DataFrame, key: str) -> pl.Series:
    """The keys that `frame` holds more than once."""
    if frame[key].n_unique() == frame.height:
        return frame[key].clear()
    return frame.filter(pl.col(key).is_duplicated())[key].unique()


def _check_same_names(frame: pl.DataFrame, columns: list[str]) -> None:
    same = [pl.col(c).is_null() | (pl.col(c) == pl.col("name")) for c in columns]
    if not frame.select(pl.all_horizontal(same).all()).item():
        raise _Collision


def _count_changes(
    seen: pl.DataFrame,
    quick: pl.DataFrame,
    slow_seen: pl.DataFrame,
    earlier: pl.DataFrame,
    slow_earlier: pl.DataFrame,
    key: str,
    counts: _Counts,
) -> None:
    """Names added since the previous day and names gone, with samples. A name seen once is
    added when the join found no earlier sighting of it (`p_src`); the others are few."""
    added = pl.concat(
        [
            quick.filter(pl.col("p_src").is_null())["name"],
            slow_seen.filter(~pl.col(key).is_in(slow_earlier[key].implode())).unique(key)["name"],
        ]
    )
    removed = earlier.filter(~pl.col(key).is_in(seen[key].implode())).unique(key)
    counts.added += added.len()
    counts.removed += removed.height
    counts.added_sample = sorted(counts.added_sample + added.bottom_k(SAMPLE).to_list())[:SAMPLE]
    pairs = [
        (n, str(d))
        for n, d in removed.bottom_k(SAMPLE, by="name").select("name", "p_last").iter_rows()
    ]
    counts.removed_sample = sorted(counts.removed_sample + pairs)[:SAMPLE]


def _merge_slowly(
    seen: pl.DataFrame, ds: pl.DataFrame, earlier: pl.DataFrame | None, key: str
) -> pl.DataFrame:
    """Names seen by several sources, or with an NS or DS set cut in two, or earlier seen by
    several sources: sets merged, provenance per source. Matched by name (they are few)."""
    per_source = seen.group_by("name", "source").agg(last_seen=pl.col("last").max())
    if earlier is not None:
        per_source = per_source.join(
            earlier.group_by("name", "source").agg(pl.col("p_first").min()),
            on=["name", "source"],
            how="left",
        )
    else:
        per_source = per_source.with_columns(p_first=pl.lit(None, pl.Date))
    provenance = (
        per_source.select(
            "name",
            "source",
            first_seen=pl.coalesce("p_first", "last_seen"),
            last_seen="last_seen",
        )
        .sort("name", "source")
        .group_by("name", maintain_order=True)
        .agg(
            sources=pl.col("source"),
            first_seen=pl.col("first_seen").min(),
            last_seen=pl.col("last_seen").max(),
            provenance=pl.struct("source", "first_seen", "last_seen"),
        )
    )
    names = seen.group_by("name").agg(pl.col(c).first() for c in {key, "suffix"} - {"name"})
    out = names.join(provenance, on="name", how="left")
    for column, frame in (("ns", seen), ("ds", ds)):
        out = out.join(
            _merged_sets(frame.select("name", column), "name", column), on="name", how="left"
        )
        out = out.with_columns(pl.col(column).fill_null(_NO_NAMES))
    return out.sort(key)


def _merged_sets(frame: pl.DataFrame, by: str | list[str], column: str) -> pl.DataFrame:
    """(by, column): the union of each name's sets of `column`, distinct and sorted."""
    by = [by] if isinstance(by, str) else by
    return (
        frame.filter(pl.col(column).is_not_null())
        .select(*by, pl.col(column).str.split(RRSET_SEPARATOR))
        .explode(column)
        .unique()
        .sort(*by, column)
        .group_by(by, maintain_order=True)
        .agg(pl.col(column))
    )


def _with_glue(rows: pl.DataFrame, glue: pl.DataFrame, key: str) -> pl.DataFrame:
    if not glue.height:
        return rows.with_columns(glue=_NO_NAMES)
    keys = [key] if key == "name" else [key, "name"]
    merged = _merged_sets(glue, keys, "glue")
    if key != "name":
        merged = merged.rename({"name": "g_name"})
    rows = rows.join(merged, on=key, how="left", maintain_order="left")
    if key != "name":
        _check_same_names(rows, ["g_name"])
        rows = rows.drop("g_name")
    return rows.with_columns(pl.col("glue").fill_null(_NO_NAMES))


def _tlds(suffix: pl.Series) -> pl.Series:
    """The TLD of each suffix (its last label), worked out once per distinct suffix."""
    distinct = suffix.unique().drop_nulls().to_list()
    mapping = {s: dns.name.Name(dns.name.from_text(s).labels[-2:]).to_text() for s in distinct}
    return suffix.replace_strict(mapping, return_dtype=pl.String)


def _merge(
    sightings: pl.DataFrame, earlier: pl.DataFrame | None, counts: _Counts, previous_day: bool
) -> pl.DataFrame:
    bucket = _Counts()
    try:
        rows = merge_bucket(sightings, earlier, bucket, previous_day)
    except _Collision:  # a 64-bit hash shared by two names: match this bucket's rows by name
        bucket = _Counts()
        rows = merge_bucket(sightings, earlier, bucket, previous_day, key="name")
    counts.add(bucket)
    return rows


# --- the day ----------------------------------------------------------------------------------


def build_candidates(con: duckdb.DuckDBPyConnection, lake: Path, date: dt.date) -> CandidateReport:
    """Compute and write `candidate_domains` for `date`; returns what a person wants to know."""
    day = date.isoformat()
    imports = str(lake / IMPORTS_DATASET / "*" / "*.parquet")
    if not list((lake / IMPORTS_DATASET).glob("date=*/*.parquet")):
        raise FileNotFoundError(
            f"no zone imports in {lake / IMPORTS_DATASET}: run raw_zone_lists first"
        )
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW imports AS
        SELECT * FROM read_parquet('{imports}', hive_partitioning = true, union_by_name = true);
        CREATE OR REPLACE TEMP TABLE latest AS
        SELECT source, zone, any_value(kind) AS kind, max(date) AS imported
        FROM imports WHERE status = 'ok' AND date <= DATE '{day}' GROUP BY source, zone;
    """)
    feeds = _feeds(lake, con.execute("SELECT * FROM latest ORDER BY 1, 2").fetchall())
    rows = _rows(feeds)
    previous = _PreviousDay(partition_dir(lake, DATASET, date - dt.timedelta(days=1)))
    history: list[Feed] = []
    if previous.parts:
        rows = max(rows, previous.rows)
    elif _value(con, f"SELECT count(*) FROM imports WHERE date < DATE '{day}'"):
        history = _feeds(
            lake,
            con.execute(f"""
                SELECT DISTINCT source, zone, kind, date FROM imports
                WHERE status = 'ok' AND date <= DATE '{day}' ORDER BY ALL
            """).fetchall(),
        )
        rows += _rows(history)
    count = _bucket_count(rows)
    through_buckets = bool(history)  # earlier sightings that come with today's
    if previous.parts and not previous.aligned(count):
        through_buckets = True
        count = _bucket_count(rows + previous.rows)
    suffix_sets, zone_counts = S.Suffixes(con), S.ZoneCounts()
    queries = []
    if any(f.is_list for f in feeds):
        queries.append(S.list_sightings(S.list_views(con, "today_lists", feeds)))
    if any(f.is_list for f in history):
        queries.append(S.list_sightings(S.list_views(con, "history_lists", history), EARLIER))
    if previous.parts and not previous.direct:
        queries.append(S.previous_day_sightings(previous.parts))
    scratch = lake / ".staging" / f"candidates-{uuid.uuid4().hex}"
    scratch.mkdir(parents=True)
    run = uuid.uuid4().hex
    counts = _Counts()
    try:
        buckets = _Buckets(scratch, count)
        try:
            zones = itertools.chain(
                S.zone_sightings(feeds, suffix_sets, zone_counts),
                S.zone_sightings(history, suffix_sets, S.ZoneCounts(), earlier=True),
            )
            for frame in itertools.chain(
                _ahead(zones, "candidates-zones"),
                _batches(con, "\nUNION ALL\n".join(queries)) if queries else (),
            ):
                buckets.add(frame)
        finally:
            buckets.close()

        def inputs(index: int) -> tuple[pl.DataFrame, pl.DataFrame | None]:
            sightings = buckets.take(index)
            if sightings is None:
                sightings = pl.DataFrame(schema=_SIGHTINGS)
            if previous.direct:
                return sightings, previous.earlier(index, count)
            return sightings, _earlier_rows(sightings) if through_buckets else None

        parts: list[Future] = []
        with (
            ThreadPoolExecutor(1, thread_name_prefix="candidates-read") as reader,
            ThreadPoolExecutor(1, thread_name_prefix="candidates-write") as writer,
        ):
            # A bucket is merged while the next one is read and the previous one written.
            following = reader.submit(inputs, 0)
            for index in range(count):
                sightings, before = following.result()
                if index + 1 < count:
                    following = reader.submit(inputs, index + 1)
                merged = _merge(sightings, before, counts, bool(previous.parts))
                del sightings, before
                if parts:
                    parts[-1].result()  # one part in the writer at a time: memory stays bounded
                parts.append(writer.submit(_stage, lake, date, run, index, merged))
                del merged
        out = publish_parts(lake, DATASET, date, [p.result() for p in parts])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _report(out, counts, zone_counts, feeds, bool(previous.parts))


def _feeds(lake: Path, rows: list[tuple]) -> list[Feed]:
    """Feeds ((source, zone, kind, date) rows) with the files of their import."""
    feeds = []
    for source, zone, kind, date in rows:
        folder = lake / RAW_DATASET / f"date={date}" / f"source={source}" / f"zone={zone}"
        feeds.append(Feed(source, zone, kind, date, tuple(sorted(folder.glob("*.parquet")))))
    return feeds


def _rows(feeds: list[Feed]) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for feed in feeds for f in feed.files)


def _bucket_count(rows: int) -> int:
    """Enough buckets for about BUCKET_ROWS sightings each: a power of two, so that the count
    changes seldom and the previous day's parts still map onto today's buckets when it does."""
    return 1 << max(0, -(-rows // BUCKET_ROWS) - 1).bit_length()


_SIGHTINGS = {**S.SCHEMA, "h": pl.UInt64}


def _earlier_rows(sightings: pl.DataFrame) -> pl.DataFrame:
    """The earlier sightings among a bucket's: each name's first day per source."""
    return (
        sightings.filter(pl.col("k") == EARLIER)
        .group_by("h", "name", "source")
        .agg(p_first=pl.col("day").min(), p_last=pl.col("last").max())
    )


class _PreviousDay:
    """The previous day's candidates. Written in as many parts as buckets, each part holding
    the names of its bucket, they are read part by part, without going through the buckets,
    when today's bucket count divides theirs or theirs divides it (both are powers of two)."""

    def __init__(self, folder: Path) -> None:
        self.parts = sorted(folder.glob("part-*.parquet"))
        self.rows = sum(pq.ParquetFile(p).metadata.num_rows for p in self.parts)
        self.direct = False

    def aligned(self, count: int) -> bool:
        """Whether each part holds just the names whose hash is its index modulo the number of
        parts (so they were cut with today's hash): then `direct` reading is possible."""
        n = len(self.parts)
        if n & (n - 1) or [p.name for p in self.parts] != [
            f"part-{i:04d}.parquet" for i in range(n)
        ]:
            return False
        for index, part in enumerate(self.parts):
            names = pl.read_parquet(part, columns=["name"], n_rows=64)["name"]
            if not pl.select(name_hash(pl.lit(names)) % n == index).to_series().all():
                return False
        self.direct = True
        return True

    def earlier(self, index: int, count: int) -> pl.DataFrame:
        """The earlier sightings of bucket `index` of `count`: (h, name, source, p_first, p_last)."""
        n = len(self.parts)
        step = min(n, count)
        frames = [
            pl.read_parquet(part, columns=["name", "last_seen", "provenance"])
            for i, part in enumerate(self.parts)
            if i % step == index % step
        ]
        frame = pl.concat(frames).with_columns(h=name_hash(pl.col("name")))
        if n < count:
            frame = frame.filter(pl.col("h") % count == index)
        return (
            frame.rename({"last_seen": "p_last"})
            .explode("provenance")
            .unnest("provenance")
            .select("h", "name", "source", "p_last", p_first="first_seen")
        )


def _value(con: duckdb.DuckDBPyConnection, query: str):
    return con.execute(query).fetchall()[0][0]


def _batches(con: duckdb.DuckDBPyConnection, query: str) -> Iterator[pl.DataFrame]:
    """The query's result in batches, computed by DuckDB in a thread of its own (a streamed
    result runs on one thread) while the caller cuts the previous batch into buckets."""
    reader = con.sql(query).to_arrow_reader(BATCH_ROWS)
    for batch in _ahead(iter(reader), "candidates-sightings"):
        if batch.num_rows:
            yield pl.from_arrow(batch)


def _ahead(items: Iterator, name: str) -> Iterator:
    """`items`, each computed in a thread while the caller handles the one before (polars,
    pyarrow and DuckDB release the GIL: the two cores work side by side)."""
    handoff: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                handoff.put(item)
                if stop.is_set():
                    return
            handoff.put(None)
        except BaseException as exc:  # handed over, raised in the caller
            handoff.put(exc)

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while (item := handoff.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # let a producer blocked on a full queue see the stop
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.1)
        worker.join()


def _stage(lake: Path, date: dt.date, run: str, index: int, frame: pl.DataFrame) -> Path:
    folder = staging_dir(lake, DATASET, date, run)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{index:04d}.parquet"
    # pyarrow writes these list columns in half the time polars takes; zstd level 1 is a third
    # faster than the default level and about as small here.
    pq.write_table(
        frame.to_arrow(),
        path,
        compression="zstd",
        compression_level=1,
        write_statistics=_STATISTICS,
        use_dictionary=_DICTIONARY,
    )
    return path


_STATISTICS = ["name", "suffix", "tld", "first_seen", "last_seen"]  # none on lists
# Dictionaries where values repeat; names, DS and glue are nearly all distinct, and a dictionary
# tried and given up costs a fifth of the writing.
_DICTIONARY = [
    "suffix", "tld", "ns.list.element", "sources.list.element", "first_seen", "last_seen",
    "provenance.list.element.source", "provenance.list.element.first_seen",
    "provenance.list.element.last_seen",
]  # fmt: skip


def _report(
    out: Path,
    counts: _Counts,
    zone_counts: S.ZoneCounts,
    feeds: list[Feed],
    previous_day: bool,
) -> CandidateReport:
    report = CandidateReport(out, counts.rows)
    report.per_suffix = dict(sorted(counts.per_suffix.items(), key=lambda kv: (-kv[1], kv[0])))
    report.per_source = dict(sorted(counts.per_source.items()))
    report.anomalies = {
        "apex_ns": zone_counts.apex_ns,
        "ds_without_ns": counts.ds_without_ns,
        "ns_not_below_suffix": counts.ns_not_below_suffix,
    }
    report.feeds = [
        {"source": f.source, "zone": f.zone, "kind": f.kind, "imported": f.imported.isoformat()}
        for f in feeds
    ]
    if previous_day:
        report.added, report.removed = counts.added, counts.removed
        report.added_sample = counts.added_sample
        report.removed_sample = counts.removed_sample
    else:
        report.added = counts.rows
    return report
