"""A day's candidate domains: every name delegated directly below a public suffix, with its NS,
DS and glue from the zones that delegate it, and when each source first and last listed it.

A day uses the newest successful import of each feed (a source's file or zone) on or before that
day, so a weekly list keeps counting between publications and a damaged file falls back to the
previous day's copy.

The work is done in three steps, in bounded memory whatever the size of the zones:

1. One DuckDB query turns the feeds' RRsets into *sightings*, each keyed by a name: a zone's NS
   sets, marked with whether the owner is delegated directly below a public suffix (joins with
   the small suffix tables), a list's names at their registrable domain, DS sets, glue (keyed by
   the names one and two labels above it), and the previous day's provenance (the day each
   source first listed the name). Nothing is grouped or sorted: the rows stream out in batches.
2. The batches are cut by a hash of the name into buckets of about BUCKET_ROWS rows, kept in
   scratch Arrow files (in memory when one bucket holds the day).
3. Each bucket is sorted by (hash, name), so a name's sightings lie together, and merged by
   polars into one row per candidate: one part file per bucket. The import keeps RRsets, so a
   delegation is one NS row and most names need no more than copying their sets.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
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
from survey_assets.sources import suffixes
from survey_assets.sources.importer import IMPORTS_DATASET, RAW_DATASET
from survey_assets.sources.records import RRSET_SEPARATOR

DATASET = "candidate_domains"
LIST_LEVELS = 4  # a listed name may sit this many labels below its registrable domain
BUCKET_ROWS = 500_000  # sightings merged in memory at a time
BATCH_ROWS = 500_000  # sightings per batch out of DuckDB
SAMPLE = 10

# What a sighting of a name is (column `k`).
NS, LISTED, DS, GLUE, EARLIER = 0, 1, 2, 3, 4

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


# --- step 1: sightings (DuckDB) -------------------------------------------------------------


def _flagged(relation: str) -> str:
    """`relation` (with a `name` column) plus `suffix` (the name's parent) and `cand`: is the
    name delegated directly below a public suffix (its parent is one, and it is not)?"""
    return f"""
        SELECT r.*, r.parent AS suffix,
               is_suffix(r.parent, coalesce(p.exact, false), coalesce(g.wild, false),
                         coalesce(p.exception, false))
               AND NOT is_suffix(r.name, coalesce(n.exact, false), coalesce(p.wild, false),
                                 coalesce(n.exception, false)) AS cand
        FROM (SELECT *, dns_parent(name) AS parent FROM ({relation})) r
        LEFT JOIN psl_all p ON p.name = r.parent
        LEFT JOIN psl_all g ON g.name = dns_parent(r.parent)
        LEFT JOIN psl_all n ON n.name = r.name
    """


def _zone_sightings(feeds: str) -> str:
    """(k, name, source, day, data, suffix, cand) from the zones of `feeds`: NS sets (not the
    apex's) and DS sets in one pass, then glue keyed by the names one and two labels up (only
    where that is a candidate). NS targets in lower case: a set that had capitals is sorted
    and made distinct again."""
    glue = (
        "owner || ' ' || upper(rtype) || ' ' || "
        "replace(rdata, chr(10), chr(10) || owner || ' ' || upper(rtype) || ' ')"
    )
    records = f"""
        SELECT CASE WHEN rtype = 'ns' THEN {NS} ELSE {DS} END AS k, owner AS name, source,
               imported AS day,
               CASE WHEN rtype = 'ds' OR lower(rdata) = rdata THEN rdata
                    ELSE array_to_string(list_sort(list_distinct(
                         string_split(lower(rdata), chr(10)))), chr(10)) END AS data
        FROM {feeds}_zones WHERE (rtype = 'ns' AND owner <> zone) OR rtype = 'ds'
        UNION ALL
        SELECT {GLUE}, unnest([dns_parent(owner), dns_parent(dns_parent(owner))]), source,
               imported, {glue}
        FROM {feeds}_zones WHERE rtype IN ('a', 'aaaa')
    """
    return f"SELECT * FROM ({_flagged(records)}) WHERE k <> {GLUE} OR cand"


def _list_sightings(feeds: str) -> str:
    """(name, source, day, suffix) from the lists of `feeds`: a listed name's registrable ancestor, the
    nearest one that sits directly below a public suffix (up to LIST_LEVELS labels up)."""
    levels = " UNION ALL ".join(
        f"SELECT source, imported AS day, owner, {k} AS level, "
        + ("owner" if k == 0 else "dns_parent(" * k + "owner" + ")" * k)
        + f" AS name FROM {feeds}_lists"
        for k in range(LIST_LEVELS)
    )
    return f"""
        SELECT name, source, day, suffix
        FROM ({_flagged(f"SELECT * FROM ({levels}) WHERE name <> ''")})
        WHERE cand
        QUALIFY level = min(level) OVER (PARTITION BY source, owner)
    """


def _sightings(today: str, earlier: str | None) -> str:
    """Every sighting of the day, in the columns the merge reads: k, name, cand, suffix, source,
    day (a sighting's import, or an earlier sighting's first day), last (the previous day's
    last_seen of the name) and data (the RRset)."""
    parts = [
        f"""SELECT k::UTINYINT AS k, name, cand, suffix, source, day, NULL::DATE AS last, data
            FROM ({_zone_sightings(today)})""",
        f"""SELECT {LISTED}::UTINYINT, name, true, suffix, source, day, NULL::DATE, NULL::VARCHAR
            FROM ({_list_sightings(today)})""",
    ]
    if earlier is not None:
        parts.append(earlier)
    return "\nUNION ALL\n".join(parts)


def _earlier_from_history(history: str) -> str:
    """A cold start (no previous day): each name's first day per source, from every import."""
    return f"""
        SELECT {EARLIER}::UTINYINT, name, NULL::BOOLEAN, NULL::VARCHAR, source, min(day),
               NULL::DATE, NULL::VARCHAR
        FROM (SELECT name, source, day FROM ({_zone_sightings(history)}) WHERE k = {NS} AND cand
              UNION ALL SELECT name, source, day FROM ({_list_sightings(history)}))
        GROUP BY name, source
    """


def _earlier_from_previous_day(files: list[Path]) -> str:
    return f"""
        SELECT {EARLIER}::UTINYINT, name, NULL::BOOLEAN, NULL::VARCHAR, p.source, p.first_seen,
               last_seen, NULL::VARCHAR
        FROM (SELECT name, last_seen, unnest(provenance) AS p
              FROM read_parquet({[str(f) for f in files]}))
    """


def _feed_rows(
    con: duckdb.DuckDBPyConnection, lake: Path, view: str, feeds: list[tuple]
) -> tuple[str, int]:
    """Views `<view>_zones` and `<view>_lists` of the RRsets of `feeds` ((source, zone, kind,
    date) each), each reading only its own files; returns `view` and the number of rows."""
    rows = 0
    for kind in ("zones", "lists"):
        files = [
            str(f)
            for source, zone, feed_kind, date in feeds
            if (feed_kind == "list") == (kind == "lists")
            for f in sorted(
                (lake / RAW_DATASET / f"date={date}" / f"source={source}" / f"zone={zone}").glob(
                    "*.parquet"
                )
            )
        ]
        if not files:
            con.execute(f"""
                CREATE OR REPLACE TEMP VIEW {view}_{kind} AS
                SELECT NULL::VARCHAR AS owner, NULL::VARCHAR AS rtype, NULL::VARCHAR AS rdata,
                       NULL::VARCHAR AS source, NULL::VARCHAR AS zone, NULL::DATE AS imported
                LIMIT 0
            """)
            continue
        con.execute(f"""
            CREATE OR REPLACE TEMP VIEW {view}_{kind} AS
            SELECT owner, rtype, rdata, source, zone, date AS imported
            FROM read_parquet({files}, hive_partitioning = true,
                              hive_types = {{'date': DATE, 'source': VARCHAR, 'zone': VARCHAR}})
        """)
        rows += _value(con, f"SELECT count(*) FROM read_parquet({files})")
    return view, rows


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
    """One row per candidate among a bucket's sightings, in the order of the names' hashes.

    `earlier` holds each name's first day per source so far (h, name, source, p_first, and
    p_last: the previous day's last_seen of the name), or is None on the first day;
    `previous_day` says it is the previous day's (so that names added and removed are counted).
    Rows are matched by `key`, the names' hash, and checked to be the same name.
    """
    f, k, cand = sightings, pl.col("k"), pl.col("cand")
    keys = [key] if key == "name" else [key, "name"]
    seen = (
        f.filter(((k == NS) | (k == LISTED)) & cand)
        .select(*keys, "suffix", "source", last="day", ns="data")
        .sort(key)
    )
    ds = f.filter(k == DS).select(*keys, ds="data")
    with_ns = f.filter(k == NS).select(*keys, "cand")
    counts.ns_not_below_suffix += with_ns.filter(~cand)["name"].n_unique()
    counts.ds_without_ns += ds.filter(~pl.col(key).is_in(with_ns[key].implode()))["name"].n_unique()
    if previous_day and earlier is not None:
        _count_changes(seen, earlier, key, counts)
    # Names seen once, with at most one DS set and one earlier source (nearly all), are copied;
    # the others (several sources, a set cut in two) are merged by name in _merge_slowly.
    slow = pl.concat(
        [_repeated(seen, key, is_sorted=True), _repeated(ds, key)]
        + ([_repeated(earlier, key)] if earlier is not None else [])
    ).unique()
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
        picked = pl.col(key).is_in(slow.implode())
        slowly = _merge_slowly(
            seen.filter(picked),
            ds.filter(picked),
            earlier.filter(picked) if earlier is not None else None,
            key,
        )
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


def _repeated(frame: pl.DataFrame, key: str, is_sorted: bool = False) -> pl.Series:
    """The keys that `frame` holds more than once."""
    if is_sorted:
        if not frame.select((pl.col(key) == pl.col(key).shift()).any()).item():
            return frame[key].clear()
    elif frame[key].n_unique() == frame.height:
        return frame[key].clear()
    return frame.filter(pl.col(key).is_duplicated())[key].unique()


def _check_same_names(frame: pl.DataFrame, columns: list[str]) -> None:
    for column in columns:
        if not frame.select(
            (pl.col(column).is_null() | (pl.col(column) == pl.col("name"))).all()
        ).item():
            raise _Collision


def _count_changes(seen: pl.DataFrame, earlier: pl.DataFrame, key: str, counts: _Counts) -> None:
    """Names added since the previous day and names gone, with samples."""
    added = seen.filter(~pl.col(key).is_in(earlier[key].implode())).unique(key)
    removed = earlier.filter(~pl.col(key).is_in(seen[key].implode())).unique(key)
    counts.added += added.height
    counts.removed += removed.height
    sample = added.select(pl.col("name").bottom_k(SAMPLE))["name"].to_list()
    counts.added_sample = sorted(counts.added_sample + sample)[:SAMPLE]
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
    feeds = con.execute("SELECT source, zone, kind, imported FROM latest ORDER BY 1, 2").fetchall()
    today, rows = _feed_rows(con, lake, "today", feeds)
    previous = _PreviousDay(partition_dir(lake, DATASET, date - dt.timedelta(days=1)))
    earlier = None
    if previous.parts:
        rows = max(rows, previous.rows)
    elif _value(con, f"SELECT count(*) FROM imports WHERE date < DATE '{day}'"):
        history = con.execute(f"""
            SELECT DISTINCT source, zone, kind, date FROM imports
            WHERE status = 'ok' AND date <= DATE '{day}' ORDER BY ALL
        """).fetchall()
        view, history_rows = _feed_rows(con, lake, "history", history)
        earlier = _earlier_from_history(view)
        rows += history_rows
    count = _bucket_count(rows)
    if previous.parts and not previous.aligned(count):
        earlier = _earlier_from_previous_day(previous.parts)  # sent through the buckets
        count = _bucket_count(rows + previous.rows)
    scratch = lake / ".staging" / f"candidates-{uuid.uuid4().hex}"
    scratch.mkdir(parents=True)
    run = uuid.uuid4().hex
    counts = _Counts()
    try:
        buckets = _Buckets(scratch, count)
        try:
            for batch in _batches(con, _sightings(today, earlier)):
                buckets.add(batch)
        finally:
            buckets.close()
        parts: list[Future] = []
        with ThreadPoolExecutor(1, thread_name_prefix="candidates-write") as writer:
            for index in range(count):  # a bucket is merged while the previous one is written
                sightings = buckets.take(index)
                if sightings is None:
                    sightings = pl.DataFrame(schema=_SIGHTINGS)
                if previous.direct:
                    before = previous.earlier(index, count)
                else:
                    before = _earlier_rows(sightings) if earlier is not None else None
                merged = _merge(sightings, before, counts, bool(previous.parts))
                del sightings, before
                if parts:
                    parts[-1].result()  # one part in the writer at a time: memory stays bounded
                parts.append(writer.submit(_stage, lake, date, run, index, merged))
                del merged
        out = publish_parts(lake, DATASET, date, [p.result() for p in parts])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _report(con, out, counts, feeds, bool(previous.parts))


def _bucket_count(rows: int) -> int:
    """Enough buckets for about BUCKET_ROWS sightings each: a power of two, so that the count
    changes seldom and the previous day's parts still map onto today's buckets when it does."""
    return 1 << max(0, -(-rows // BUCKET_ROWS) - 1).bit_length()


_SIGHTINGS = {
    "k": pl.UInt8,
    "name": pl.String,
    "cand": pl.Boolean,
    "suffix": pl.String,
    "source": pl.String,
    "day": pl.Date,
    "last": pl.Date,
    "data": pl.String,
    "h": pl.UInt64,
}


def _earlier_rows(sightings: pl.DataFrame) -> pl.DataFrame:
    return sightings.filter(pl.col("k") == EARLIER).select(
        "h", "name", "source", p_first="day", p_last="last"
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
    handoff: queue.Queue = queue.Queue(maxsize=1)

    def produce() -> None:
        try:
            for batch in reader:
                handoff.put(batch)
            handoff.put(None)
        except BaseException as exc:  # handed over, raised in the caller
            handoff.put(exc)

    worker = threading.Thread(target=produce, name="candidates-sightings", daemon=True)
    worker.start()
    while (item := handoff.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        if item.num_rows:
            yield pl.from_arrow(item)
    worker.join()


def _stage(lake: Path, date: dt.date, run: str, index: int, frame: pl.DataFrame) -> Path:
    folder = staging_dir(lake, DATASET, date, run)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{index:04d}.parquet"
    # pyarrow writes these list columns in half the time polars takes; zstd level 1 is a third
    # faster than the default level and about as small here.
    scalars = ["name", "suffix", "tld", "first_seen", "last_seen"]  # no statistics on lists
    pq.write_table(
        frame.to_arrow(), path, compression="zstd", compression_level=1, write_statistics=scalars
    )
    return path


APEX_NS = """
    SELECT coalesce(sum(length(rdata) - length(replace(rdata, chr(10), '')) + 1), 0)
    FROM today_zones WHERE rtype = 'ns' AND owner = zone
"""  # NS records at a zone's apex: their RRsets' lines


def _report(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    counts: _Counts,
    feeds: list[tuple],
    previous_day: bool,
) -> CandidateReport:
    report = CandidateReport(out, counts.rows)
    report.per_suffix = dict(sorted(counts.per_suffix.items(), key=lambda kv: (-kv[1], kv[0])))
    report.per_source = dict(sorted(counts.per_source.items()))
    apex_ns = _value(con, APEX_NS)
    report.anomalies = {
        "apex_ns": int(apex_ns),
        "ds_without_ns": counts.ds_without_ns,
        "ns_not_below_suffix": counts.ns_not_below_suffix,
    }
    report.feeds = [
        {"source": s, "zone": z, "kind": k, "imported": d.isoformat()} for s, z, k, d in feeds
    ]
    if previous_day:
        report.added, report.removed = counts.added, counts.removed
        report.added_sample = counts.added_sample
        report.removed_sample = counts.removed_sample
    else:
        report.added = counts.rows
    return report
