"""Sightings: each mention of a name in a day's feeds that the candidate domains are made from.

A sighting is one row keyed by a name (`name`), saying what it is (`k`): a zone's NS set for its
owner, a list's name at its registrable domain, a DS set, glue (keyed by the name one or two
labels above its owner), or an earlier sighting (the first day a source listed the name). Each
carries whether its name is delegated directly below a public suffix (`cand`) and that suffix.

Zones are read by polars, file by file: nearly every owner in a zone file is a child of the
zone, whose parent is the zone itself, so the public-suffix test is a set lookup of the owner
and one of the zone; other owners take the general path (labels split with escapes in mind).
Lists, far smaller, go through DuckDB (a listed name may sit several labels down).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from survey_assets.sources.records import RRSET_SEPARATOR

NS, LISTED, DS, GLUE, EARLIER = 0, 1, 2, 3, 4
LIST_LEVELS = 4  # a listed name may sit this many labels below its registrable domain
SCHEMA = {
    "k": pl.UInt8,
    "name": pl.String,
    "cand": pl.Boolean,
    "suffix": pl.String,
    "source": pl.String,
    "day": pl.Date,  # a sighting's import, or an earlier sighting's first day
    "last": pl.Date,  # an earlier sighting's last day (the previous day's last_seen)
    "data": pl.String,  # the RRset: NS targets in lower case, DS records, glue lines
}
_LABEL = r"^(?:[^.\\]|\\.)+\."  # a name's first label, escapes kept whole
_UPPER = [chr(c) for c in range(ord("A"), ord("Z") + 1)]


@dataclass(frozen=True)
class Feed:
    """One imported feed's files: a source's zone (or list) on the day it was imported."""

    source: str
    zone: str
    kind: str
    imported: dt.date
    files: tuple[Path, ...]

    @property
    def is_list(self) -> bool:
        return self.kind == "list"


class Suffixes:
    """The public-suffix tables of a DuckDB connection (`suffixes.register`), as polars sets."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        names = {
            table: [r[0] for r in con.execute(f"SELECT name FROM {table}").fetchall()]
            for table in ("psl_exact", "psl_wild", "psl_exception")
        }
        self.exact, self.wild, self.exception = (
            pl.Series(names[t], dtype=pl.String).implode()  # one list: what `is_in` takes
            for t in ("psl_exact", "psl_wild", "psl_exception")
        )
        self.wild_bases = frozenset(names["psl_wild"])

    def flagged(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` with `suffix` (its name's parent) and `cand` (the parent is a public suffix
        and the name is not). Labels are split with escapes in mind (`a\\.b.example.`)."""
        name = pl.col("name")
        parent = name.str.replace(_LABEL, "")
        frame = frame.with_columns(suffix=parent).with_columns(
            _grand=pl.col("suffix").str.replace(_LABEL, "")
        )
        parent, grand = pl.col("suffix"), pl.col("_grand")
        return frame.with_columns(
            cand=self._is_suffix(parent, grand, grand.is_in(self.wild))
            & ~self._is_suffix(name, parent, parent.is_in(self.wild))
        ).drop("_grand")

    def _is_suffix(self, name: pl.Expr, parent: pl.Expr, wild: pl.Expr) -> pl.Expr:
        single_label = (name != "") & (parent == "")
        return name.is_in(self.exact) | (wild & ~name.is_in(self.exception)) | single_label

    def below(self, zone: str) -> tuple[bool, bool]:
        """(whether `zone` is a public suffix, whether it is a wildcard base): what the test
        needs of a zone's children."""
        name = pl.col("name")
        parent = name.str.replace(_LABEL, "")
        is_suffix = self._is_suffix(name, parent, parent.is_in(self.wild))
        zone_is_suffix = pl.DataFrame({"name": [zone]}).select(is_suffix).item()
        return bool(zone_is_suffix), zone in self.wild_bases


@dataclass
class ZoneCounts:
    apex_ns: int = 0  # NS records at a zone's apex (not delegations)


def zone_sightings(
    feeds: list[Feed], suffixes: Suffixes, counts: ZoneCounts, earlier: bool = False
) -> Iterator[pl.DataFrame]:
    """The sightings of the zones among `feeds`, a frame per file: NS sets (the apex's counted
    aside), DS sets and glue; with `earlier`, only the candidates' NS sets, as earlier
    sightings (a cold start's history)."""
    for feed in feeds:
        if feed.is_list:
            continue
        for path in feed.files:
            records = pl.read_parquet(path, columns=["owner", "rtype", "rdata"])
            yield from _file_sightings(records, feed, suffixes, counts, earlier)


def _file_sightings(
    records: pl.DataFrame, feed: Feed, suffixes: Suffixes, counts: ZoneCounts, earlier: bool
) -> Iterator[pl.DataFrame]:
    rtype, owner = pl.col("rtype"), pl.col("owner")
    apex = records.filter((rtype == "ns") & (owner == feed.zone))
    if not earlier:
        counts.apex_ns += int(apex["rdata"].str.count_matches(RRSET_SEPARATOR).sum()) + apex.height
    sets = records.filter(((rtype == "ns") & (owner != feed.zone)) | (rtype == "ds"))
    if earlier:
        sets = sets.filter(rtype == "ns")
    sets = sets.select(
        k=pl.when(rtype == "ns").then(pl.lit(NS, pl.UInt8)).otherwise(pl.lit(DS, pl.UInt8)),
        name=owner,
        data=pl.col("rdata"),
    )
    sets = _flag_children(sets, feed.zone, suffixes)
    if earlier:
        earliest = sets.filter("cand").with_columns(k=pl.lit(EARLIER, pl.UInt8)).drop("data")
        yield _shaped(earliest, feed)
        return
    yield _shaped(_lower_ns(sets), feed)
    glue = records.filter(rtype.is_in(["a", "aaaa"]))
    if glue.height:
        yield _shaped(_glue(glue, suffixes), feed)


def _flag_children(frame: pl.DataFrame, zone: str, suffixes: Suffixes) -> pl.DataFrame:
    """`suffixes.flagged`, with a short way for the zone's children (nearly all owners)."""
    if zone == ".":
        return suffixes.flagged(frame)
    label = pl.col("name").str.head(-len(zone))  # "child." of "child.<zone>"
    child = pl.col("name").str.ends_with("." + zone) & ~label.str.head(-1).str.contains_any(
        [".", "\\"]
    )
    frame = frame.with_columns(_child=child)
    children = frame.filter("_child").drop("_child")
    others = frame.filter(~pl.col("_child")).drop("_child")
    zone_is_suffix, zone_is_wild = suffixes.below(zone)
    name = pl.col("name")
    is_suffix = name.is_in(suffixes.exact)
    if zone_is_wild:
        is_suffix = is_suffix | ~name.is_in(suffixes.exception)
    children = children.with_columns(suffix=pl.lit(zone), cand=pl.lit(zone_is_suffix) & ~is_suffix)
    if not others.height:
        return children
    return pl.concat([children, suffixes.flagged(others)])


def _lower_ns(frame: pl.DataFrame) -> pl.DataFrame:
    """NS targets in lower case; a set that had capitals is sorted and made distinct again."""
    capitals = (pl.col("k") == NS) & pl.col("data").str.contains_any(_UPPER)
    marked = frame.with_columns(_upper=capitals)
    if not marked["_upper"].any():
        return frame
    fixed = marked.filter("_upper").with_columns(
        data=pl.col("data")
        .str.to_lowercase()
        .str.split(RRSET_SEPARATOR)
        .list.unique()
        .list.sort()
        .list.join(RRSET_SEPARATOR)
    )
    return pl.concat([marked.filter(~pl.col("_upper")), fixed]).drop("_upper")


def _glue(records: pl.DataFrame, suffixes: Suffixes) -> pl.DataFrame:
    """Glue lines ("owner A address"), keyed by the names one and two labels above the owner,
    where that name is a candidate."""
    lines = records.select(
        "owner", rdata=pl.col("rdata").str.split(RRSET_SEPARATOR), rtype="rtype"
    ).explode("rdata")
    lines = lines.select(
        "owner",
        data=pl.concat_str("owner", pl.col("rtype").str.to_uppercase(), "rdata", separator=" "),
    )
    up = pl.col("owner").str.replace(_LABEL, "")
    keyed = pl.concat(
        [
            lines.select(name=up, data="data"),
            lines.select(name=up.str.replace(_LABEL, ""), data="data"),
        ]
    )
    return suffixes.flagged(keyed).filter("cand").with_columns(k=pl.lit(GLUE, pl.UInt8))


def _shaped(frame: pl.DataFrame, feed: Feed) -> pl.DataFrame:
    return frame.select(
        pl.col("k"),
        pl.col("name"),
        pl.col("cand"),
        pl.col("suffix"),
        source=pl.lit(feed.source, pl.String),
        day=pl.lit(feed.imported, pl.Date),
        last=pl.lit(None, pl.Date),
        data=pl.col("data") if "data" in frame.columns else pl.lit(None, pl.String),
    )


# --- lists, and earlier sightings that are not the previous day's parts (DuckDB) ------------


def list_views(con: duckdb.DuckDBPyConnection, view: str, feeds: list[Feed]) -> str:
    """A view `view` of the RRsets of the lists among `feeds`; returns its name."""
    files = [_literal(f) for feed in feeds if feed.is_list for f in feed.files]
    if not files:
        con.execute(f"""
            CREATE OR REPLACE TEMP VIEW {view} AS
            SELECT NULL::VARCHAR AS owner, NULL::VARCHAR AS source, NULL::DATE AS day LIMIT 0
        """)
        return view
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW {view} AS
        SELECT owner, source, date AS day
        FROM read_parquet({files}, hive_partitioning = true,
                          hive_types = {{'date': DATE, 'source': VARCHAR, 'zone': VARCHAR}})
    """)
    return view


def list_sightings(lists: str, k: int = LISTED) -> str:
    """Sightings (columns of SCHEMA) of a list view's names at their registrable domain: the
    nearest ancestor that sits directly below a public suffix (up to LIST_LEVELS labels up)."""
    levels = " UNION ALL ".join(
        f"SELECT source, day, owner, {n} AS level, "
        + ("owner" if n == 0 else "dns_parent(" * n + "owner" + ")" * n)
        + f" AS name FROM {lists}"
        for n in range(LIST_LEVELS)
    )
    return f"""
        SELECT {k}::UTINYINT AS k, name, true AS cand, suffix, source, day,
               NULL::DATE AS last, NULL::VARCHAR AS data
        FROM ({_flagged(f"SELECT * FROM ({levels}) WHERE name <> ''")})
        WHERE cand
        QUALIFY level = min(level) OVER (PARTITION BY source, owner)
    """


def _flagged(relation: str) -> str:
    """`relation` (with a `name` column) plus `suffix` and `cand`, as `Suffixes.flagged`."""
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


def previous_day_sightings(files: list[Path]) -> str:
    """Earlier sightings from the previous day's candidates, one per name and source."""
    return f"""
        SELECT {EARLIER}::UTINYINT AS k, name, NULL::BOOLEAN AS cand, NULL::VARCHAR AS suffix,
               p.source, p.first_seen AS day, last_seen AS last, NULL::VARCHAR AS data
        FROM (SELECT name, last_seen, unnest(provenance) AS p
              FROM read_parquet({[_literal(f) for f in files]}))
    """


def _literal(path: Path) -> str:
    """A path DuckDB reads as itself, not as a glob: a list's folder is `zone=*`."""
    return re.sub(r"([*?\[])", r"[\1]", str(path))
