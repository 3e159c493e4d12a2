"""A day's candidate domains: every name delegated directly below a public suffix, with its NS,
DS and glue from the zones that delegate it, and when each source first and last listed it.

A day uses the newest successful import of each feed (a source's file or zone) on or before that
day, so a weekly list keeps counting between publications and a damaged file falls back to the
previous day's copy. All of it is one DuckDB query over the lake's Parquet files.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from survey_assets.lake.parquet import partition_dir
from survey_assets.sources import suffixes
from survey_assets.sources.importer import IMPORTS_DATASET, RAW_DATASET

DATASET = "candidate_domains"
LIST_LEVELS = 4  # a listed name may sit this many labels below its registrable domain
BUCKET = 1_000_000  # candidate names written per part file


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


def _glob(lake: Path, dataset: str, depth: int) -> str:
    return str(lake / dataset / "/".join(["*"] * depth) / "*.parquet")


def _suffix_flags(relation: str, column: str) -> str:
    """SQL adding `<column>_suffix` (is `column` a public suffix?) to a relation by joins."""
    return f"""
        SELECT r.*, is_suffix(r.{column}, e.name IS NOT NULL, w.name IS NOT NULL, x.name IS NOT NULL)
               AS {column}_suffix
        FROM {relation} r
        LEFT JOIN psl_exact e ON e.name = r.{column}
        LEFT JOIN psl_wild w ON w.name = dns_parent(r.{column})
        LEFT JOIN psl_exception x ON x.name = r.{column}
    """


def build_candidates(con: duckdb.DuckDBPyConnection, lake: Path, date: dt.date) -> CandidateReport:
    """Compute and write `candidate_domains` for `date`; returns what a person wants to know."""
    day = date.isoformat()
    imports = _glob(lake, IMPORTS_DATASET, 1)
    raw = _glob(lake, RAW_DATASET, 3)
    if not list((lake / IMPORTS_DATASET).glob("date=*/*.parquet")):
        raise FileNotFoundError(
            f"no zone imports in {lake / IMPORTS_DATASET}: run raw_zone_lists first"
        )
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW imports AS
        SELECT * FROM read_parquet('{imports}', hive_partitioning = true, union_by_name = true);
        CREATE OR REPLACE TABLE latest AS
        SELECT source, zone, any_value(kind) AS kind, max(date) AS imported
        FROM imports WHERE status = 'ok' AND date <= DATE '{day}' GROUP BY source, zone;
        CREATE OR REPLACE TEMP VIEW raw AS
        SELECT * FROM read_parquet('{raw}', hive_partitioning = true, union_by_name = true);
        CREATE OR REPLACE TEMP VIEW today AS
        SELECT r.source, r.zone, r.owner, r.rtype, r.rdata, l.imported, l.kind
        FROM raw r JOIN latest l ON r.source = l.source AND r.zone = l.zone AND r.date = l.imported;
    """)
    buckets = _delegations(con, "today", "named")
    # DS and glue, keyed by the candidate they would belong to (glue: one or two labels up).
    con.execute(f"""
        CREATE OR REPLACE TABLE extras AS
        SELECT hash(owner) % {buckets} AS bucket, owner AS name, owner, rtype, rdata
        FROM today WHERE rtype = 'ds'
        UNION ALL
        SELECT hash(up) % {buckets}, up, owner, rtype, rdata
        FROM (SELECT dns_parent(owner) AS up, * FROM today WHERE rtype IN ('a', 'aaaa'))
        UNION ALL
        SELECT hash(dns_parent(up)) % {buckets}, dns_parent(up), owner, rtype, rdata
        FROM (SELECT dns_parent(owner) AS up, * FROM today WHERE rtype IN ('a', 'aaaa'))
    """)
    prev_path = partition_dir(lake, DATASET, date - dt.timedelta(days=1))
    prev_files = sorted(prev_path.glob("*.parquet"))
    if prev_files:
        con.execute(f"""
            CREATE OR REPLACE TABLE seen AS
            SELECT name, p.source, p.first_seen
            FROM (SELECT name, unnest(provenance) AS p FROM read_parquet({[str(f) for f in prev_files]}));
        """)
    elif con.execute(f"SELECT count(*) FROM imports WHERE date < DATE '{day}'").fetchone()[0] == 0:
        con.execute(
            "CREATE OR REPLACE TABLE seen AS SELECT NULL::VARCHAR AS name, NULL::VARCHAR AS source, NULL::DATE AS first_seen LIMIT 0"
        )
    else:  # a cold start: the first sighting comes from every import so far
        con.execute(f"""
            CREATE OR REPLACE TABLE history AS
            SELECT r.source, r.zone, r.owner, r.rtype, r.rdata, r.date AS imported, i.kind
            FROM raw r JOIN (SELECT DISTINCT source, zone, date, kind FROM imports
                             WHERE status = 'ok' AND date <= DATE '{day}') i
              ON r.source = i.source AND r.zone = i.zone AND r.date = i.date
            WHERE r.rtype IN ('ns', 'name');
        """)
        _delegations(con, "history", "named_history")
        con.execute("""
            CREATE OR REPLACE TABLE seen AS
            SELECT name, source, min(imported) AS first_seen FROM named_history GROUP BY ALL;
        """)
    out = partition_dir(lake, DATASET, date)
    out.mkdir(parents=True, exist_ok=True)
    # Names are cut into buckets by hash so that no step holds more than about BUCKET names.
    written = []
    for bucket in range(buckets):
        con.execute(f"""
            CREATE OR REPLACE TEMP VIEW named_b AS SELECT * FROM named WHERE bucket = {bucket};
            CREATE OR REPLACE TEMP VIEW extras_b AS SELECT * FROM extras WHERE bucket = {bucket};
        """)
        tmp = out / f".part-{bucket:04d}.{os.getpid()}.tmp"
        con.execute(f"""
            COPY (
              WITH per_source AS (
                SELECT name, source, any_value(suffix) AS suffix, max(imported) AS last_seen
                FROM named_b GROUP BY name, source
              ),
              ns AS (
                SELECT name, list_sort(list(DISTINCT lower(rdata))) AS ns
                FROM named_b WHERE rtype = 'ns' GROUP BY name
              ),
              ds AS (
                SELECT e.name, list_sort(list_distinct(list(e.rdata))) AS ds
                FROM extras_b e SEMI JOIN named_b n ON n.name = e.name
                WHERE e.rtype = 'ds' GROUP BY e.name
              ),
              glue AS (  -- glue sits one or two labels below the delegation it serves
                SELECT e.name, list_sort(list_distinct(list(e.owner || ' ' || upper(e.rtype) || ' ' || e.rdata))) AS glue
                FROM extras_b e SEMI JOIN named_b n ON n.name = e.name
                WHERE e.rtype IN ('a', 'aaaa') GROUP BY e.name
              ),
              provenance AS (
                SELECT p.name, any_value(p.suffix) AS suffix,
                       list_sort(list({{'source': p.source,
                                        'first_seen': coalesce(s.first_seen, p.last_seen),
                                        'last_seen': p.last_seen}})) AS provenance
                FROM per_source p LEFT JOIN seen s ON s.name = p.name AND s.source = p.source
                GROUP BY p.name
              )
              SELECT p.name, p.suffix,
                     dns_tld(p.name) AS tld,
                     coalesce(ns.ns, []) AS ns, coalesce(ds.ds, []) AS ds, coalesce(glue.glue, []) AS glue,
                     list_transform(p.provenance, lambda x: x.source) AS sources,
                     list_min(list_transform(p.provenance, lambda x: x.first_seen)) AS first_seen,
                     list_max(list_transform(p.provenance, lambda x: x.last_seen)) AS last_seen,
                     p.provenance
              FROM provenance p
              LEFT JOIN ns USING (name) LEFT JOIN ds USING (name) LEFT JOIN glue USING (name)
              ORDER BY p.name
            ) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)
        """)
        final = out / f"part-{bucket:04d}.parquet"
        os.replace(tmp, final)
        written.append(final)
    for stale in out.glob("part-*.parquet"):
        if stale not in written:
            stale.unlink()
    return _report(con, out, prev_files)


def _delegations(con: duckdb.DuckDBPyConnection, source_table: str, target: str) -> int:
    """`target`: (name, suffix, source, imported, rtype, rdata) for every candidate sighting.

    From zones: an NS owner other than the apex whose parent is a public suffix and which is not
    one itself. From lists: a listed name's registrable ancestor (up to LIST_LEVELS labels up).
    """
    levels = " UNION ALL ".join(
        f"SELECT source, imported, owner, rtype, rdata, {k} AS level, "
        + ("owner" if k == 0 else "dns_parent(" * k + "owner" + ")" * k)
        + f" AS name FROM {source_table} WHERE kind = 'list'"
        for k in range(LIST_LEVELS)
    )
    con.execute(f"""
        CREATE OR REPLACE TABLE {target}_zones AS
        SELECT source, imported, owner AS name, rtype, rdata
        FROM {source_table} WHERE kind <> 'list' AND rtype = 'ns' AND owner <> zone;
        CREATE OR REPLACE TABLE {target}_lists AS
        SELECT * FROM ({levels}) WHERE name <> '';
        CREATE OR REPLACE TABLE {target}_flags AS
        WITH distinct_names AS (
            SELECT DISTINCT name, dns_parent(name) AS parent
            FROM (SELECT name FROM {target}_zones UNION ALL SELECT name FROM {target}_lists)
        ),
        n1 AS ({_suffix_flags("distinct_names", "name")}),
        n2 AS ({_suffix_flags("n1", "parent")})
        SELECT name, parent AS suffix FROM n2 WHERE parent_suffix AND NOT name_suffix;
    """)
    names = con.execute(f"SELECT count(*) FROM {target}_flags").fetchone()[0]
    buckets = max(1, -(-names // BUCKET))
    con.execute(f"""
        CREATE OR REPLACE TABLE {target} AS
        SELECT hash(name) % {buckets} AS bucket, * FROM (
            SELECT z.name, f.suffix, z.source, z.imported, z.rtype, z.rdata
            FROM {target}_zones z JOIN {target}_flags f USING (name)
            UNION ALL
            SELECT l.name, f.suffix, l.source, l.imported, l.rtype, l.rdata
            FROM {target}_lists l JOIN {target}_flags f USING (name)
            QUALIFY l.level = min(l.level) OVER (PARTITION BY l.source, l.owner)
        );
        DROP TABLE {target}_zones; DROP TABLE {target}_lists;
    """)
    return buckets


def _report(con: duckdb.DuckDBPyConnection, out: Path, prev_files: list[Path]) -> CandidateReport:
    final = out / "*.parquet"
    rows = con.execute(f"SELECT count(*) FROM '{final}'").fetchone()[0]
    report = CandidateReport(out, rows)
    report.per_suffix = dict(
        con.execute(
            f"SELECT suffix, count(*) FROM '{final}' GROUP BY ALL ORDER BY 2 DESC, 1"
        ).fetchall()
    )
    report.per_source = dict(
        con.execute(
            f"SELECT s, count(*) FROM (SELECT unnest(sources) AS s FROM '{final}') GROUP BY ALL ORDER BY 1"
        ).fetchall()
    )
    report.anomalies = dict(
        zip(
            ("apex_ns", "ds_without_ns", "ns_not_below_suffix"),
            con.execute("""
                SELECT count(*) FILTER (WHERE rtype = 'ns' AND owner = zone AND kind <> 'list'),
                       count(DISTINCT owner) FILTER (WHERE rtype = 'ds' AND owner NOT IN
                           (SELECT owner FROM today WHERE rtype = 'ns')),
                       (SELECT count(DISTINCT owner) FROM today
                        WHERE kind <> 'list' AND rtype = 'ns' AND owner <> zone) -
                       (SELECT count(DISTINCT name) FROM named WHERE rtype = 'ns')
                FROM today
            """).fetchone(),
            strict=True,
        )
    )
    report.feeds = [
        dict(zip(("source", "zone", "kind", "imported"), r, strict=True))
        for r in con.execute(
            "SELECT source, zone, kind, imported::VARCHAR FROM latest ORDER BY 1, 2"
        ).fetchall()
    ]
    if prev_files:
        prev = f"read_parquet({[str(f) for f in prev_files]})"
        report.added = con.execute(
            f"SELECT count(*) FROM '{final}' ANTI JOIN {prev} USING (name)"
        ).fetchone()[0]
        report.removed = con.execute(
            f"SELECT count(*) FROM {prev} ANTI JOIN '{final}' USING (name)"
        ).fetchone()[0]
        report.added_sample = [
            r[0]
            for r in con.execute(
                f"SELECT name FROM '{final}' ANTI JOIN {prev} USING (name) ORDER BY name LIMIT 10"
            ).fetchall()
        ]
        report.removed_sample = con.execute(
            f"SELECT name, last_seen::VARCHAR FROM {prev} ANTI JOIN '{final}' USING (name) ORDER BY name LIMIT 10"
        ).fetchall()
    else:
        report.added = rows
    return report
