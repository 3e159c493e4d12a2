"""Raw zone records as the sources layer keeps them, and the classes of bad input it counts.

Every reader (CZDS, master file, zone transfer, name list) yields polars frames of the same
shape: `owner` (presentation form, as found, trimmed), `rtype` (lower-case mnemonic), `rdata`
(presentation text). Only the record types that describe delegations are kept (NS, DS, glue A and
AAAA, SOA); the rest are counted. Names are checked as DNS names, never split on dots blindly.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdatatype
import polars as pl

KEPT_TYPES = ("ns", "ds", "a", "aaaa", "soa")
SCHEMA = {"owner": pl.String, "rtype": pl.String, "rdata": pl.String}
SAMPLES = 5

# Bad input, by class: the import takes the good lines and reports each class with samples.
BAD_CLASSES = {
    "not_a_record": "a line that is not `owner ttl class type rdata`",
    "directive": "a master-file directive ($ORIGIN, $TTL ...) where none belongs",
    "unknown_type": "a record type that is not a known mnemonic or TYPEnnn",
    "bad_name": "an owner that is not a valid DNS name (empty label, label > 63, name > 255 octets)",
    "out_of_zone": "an owner outside the zone the file is for",
    "bad_class": "a class other than IN",
    "not_utf8": "a line that is not UTF-8 text",
}
KNOWN_TYPES = frozenset(
    t.name.lower() for t in dns.rdatatype.RdataType if not t.name.startswith("TYPE")
)


class SourceError(Exception):
    """A source file that cannot be imported at all: names the file and the problem."""


@dataclass
class ImportStats:
    """What one file (or transfer) held: lines, kept records, and bad lines by class."""

    lines: int = 0
    records: int = 0
    sha256: str = ""  # of the file as read, when the reader computes it on the way
    blank: int = 0
    types: Counter = field(default_factory=Counter)
    bad: Counter = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)

    def reject(self, cls: str, lines: list[str] | pl.Series, count: int | None = None) -> None:
        assert cls in BAD_CLASSES, cls
        values = lines.to_list() if isinstance(lines, pl.Series) else list(lines)
        self.bad[cls] += len(values) if count is None else count
        keep = self.samples.setdefault(cls, [])
        keep.extend(v[:200] for v in values[: SAMPLES - len(keep)])

    def merge(self, other: ImportStats) -> None:
        """Add another part's counts (blocks are checked apart, in parallel)."""
        self.lines += other.lines
        self.records += other.records
        self.blank += other.blank
        self.types.update(other.types)
        for cls, n in other.bad.items():
            self.reject(cls, other.samples.get(cls, []), n)

    def as_metadata(self) -> dict:
        return {
            "lines": self.lines,
            "records_kept": self.records,
            "blank_lines": self.blank,
            "types": dict(self.types.most_common()),
            "bad": {
                cls: {"count": n, "samples": self.samples.get(cls, [])}
                for cls, n in self.bad.items()
            },
        }


def canonical_name(text: str) -> str | None:
    """The canonical (lower-case, dnspython-escaped) absolute form, or None when not a name."""
    try:
        name = dns.name.from_text(text.strip())
    except (dns.exception.DNSException, UnicodeError):
        return None
    return name.canonicalize().to_text()


def clean(frame: pl.DataFrame, zone: str | None, stats: ImportStats) -> pl.DataFrame:
    """Validate and normalize one batch of (owner, rtype, rdata); count what is dropped and why.

    `zone` is the file's zone in canonical form ("lab-secure.") or None for name lists. Each
    step has a cheap test for the common case (lower case, no padding, no escapes), so a clean
    file costs a few vectorized scans.
    """
    return clean_owners(clean_types(frame, stats), zone, stats)


def clean_types(frame: pl.DataFrame, stats: ImportStats) -> pl.DataFrame:
    """The records of the kept types, with type mnemonics in lower case; counts the types."""
    # Types are few: inspect the distinct values, and rewrite the column only when one is odd.
    counts = frame["rtype"].value_counts()
    if counts["rtype"].str.contains(r"[A-Z\s]").any():
        frame = frame.with_columns(pl.col("rtype").str.strip_chars().str.to_lowercase())
        counts = frame["rtype"].value_counts()
    known = counts["rtype"].is_in(list(KNOWN_TYPES)) | counts["rtype"].str.contains(r"^type\d+$")
    if not known.all():
        odd = counts.filter(~known)["rtype"].to_list()
        unknown = frame.filter(pl.col("rtype").is_in(odd))
        stats.reject("unknown_type", _lines(unknown), unknown.height)
    stats.types.update(dict(counts.filter(known).iter_rows()))
    return frame.filter(pl.col("rtype").is_in(KEPT_TYPES))


def clean_owners(frame: pl.DataFrame, zone: str | None, stats: ImportStats) -> pl.DataFrame:
    """Owners as canonical DNS names, inside `zone`; counts the records kept. Takes records,
    or RRsets with their record counts (`rrsets(..., counted=True)`)."""
    frame = normalize_owners(frame, stats)
    if zone is not None and zone != "." and frame.height:
        inside = (pl.col("owner") == zone) | pl.col("owner").str.ends_with("." + zone)
        outside = frame.filter(~inside)
        if outside.height:
            stats.reject("out_of_zone", _lines(outside), _records(outside))
            frame = frame.filter(inside)
    stats.records += _records(frame)
    return frame


def _records(frame: pl.DataFrame) -> int:
    return int(frame["_n"].sum()) if "_n" in frame.columns else frame.height


def normalize_owners(frame: pl.DataFrame, stats: ImportStats) -> pl.DataFrame:
    """Lower-case plain names in bulk; names with escapes or odd lengths go through dnspython.

    One pass over the owners finds the rows that need any care; a clean block costs just that.
    """
    suspect = (
        pl.col("owner").str.contains(r"[A-Z\s\\]|\.\.|^\.|[^.]{64}")
        | ~pl.col("owner").str.ends_with(".")
        | (pl.col("owner").str.len_bytes() > 254)
    )
    if not frame.select(suspect.any()).item():
        return frame
    frame = frame.with_columns(suspect.alias("_suspect"))
    plain = frame.filter(~pl.col("_suspect")).drop("_suspect")
    care = frame.filter(pl.col("_suspect")).drop("_suspect")
    return pl.concat([plain, _normalize_suspects(care, stats)])


def _normalize_suspects(frame: pl.DataFrame, stats: ImportStats) -> pl.DataFrame:
    frame = frame.with_columns(pl.col("owner").str.strip_chars().str.to_lowercase())
    odd = (
        pl.col("owner").str.contains("\\", literal=True)
        | pl.col("owner").str.contains("..", literal=True)
        | pl.col("owner").str.contains(r"[^.]{64}")
        | ~pl.col("owner").str.ends_with(".")
        | (pl.col("owner").str.len_bytes() > 254)
        | pl.col("owner").str.starts_with(".")
    )
    slow = frame.filter(odd)
    if not slow.height:
        return frame
    fixed = slow.with_columns(
        pl.col("owner").map_elements(canonical_name, return_dtype=pl.String).alias("canonical")
    )
    bad = fixed.filter(pl.col("canonical").is_null())
    if bad.height:
        stats.reject("bad_name", _lines(bad.drop("canonical")), _records(bad))
    good = (
        fixed.filter(pl.col("canonical").is_not_null())
        .with_columns(owner="canonical")
        .drop("canonical")
    )
    return pl.concat([frame.filter(~odd), good])


RRSET_SEPARATOR = "\n"  # between the records of an RRset's rdata: no record's text holds one


def rrsets(frame: pl.DataFrame, counted: bool = False) -> pl.DataFrame:
    """Records as RRsets: each run of rows with the same owner and type becomes one row, its
    rdata the run's record data, distinct, sorted and joined by newlines.

    Zone files keep an owner's records of one type together, so a delegation's NS set is one
    row: the candidate query reads one row per delegation and no set has to be rebuilt from
    records. A set cut in two (by a batch boundary, or a file that repeats an owner further on)
    makes two rows, which the candidate query merges. With `counted`, a column `_n` holds
    each set's number of records.
    """
    if frame.height < 2:
        return frame.with_columns(_n=pl.lit(1, pl.UInt32)) if counted else frame
    # A row continues the set of the row before it when both have the same owner and type:
    # two string comparisons with the shifted columns, no run ids or hashing in the common case.
    owner, rtype, rdata, same = pl.col("owner"), pl.col("rtype"), pl.col("rdata"), pl.col("_same")
    frame = frame.with_columns(_same=((owner == owner.shift()) & (rtype == rtype.shift())))
    frame = frame.with_columns(same.fill_null(False))
    if not frame["_same"].any():  # no set of two records: nothing to join
        frame = frame.drop("_same")
        return frame.with_columns(_n=pl.lit(1, pl.UInt32)) if counted else frame
    if frame.select((same & (rdata <= rdata.shift())).any()).item():
        frame = (
            frame.with_columns(_run=(~same).cum_sum())
            .unique(["_run", "rdata"])
            .sort("_run", "rdata")
            .with_columns(_same=(pl.col("_run") == pl.col("_run").shift()).fill_null(False))
            .drop("_run")
        )
    # Sets of one or two records (nearly all) are joined by shifting, longer ones by grouping.
    frame = frame.with_columns(
        _two=same.shift(-1).fill_null(False),
        _more=(same.shift(-1) & same.shift(-2)).fill_null(False),
        _next=rdata.shift(-1),
    )
    joined = pl.concat_str(rdata, pl.lit(RRSET_SEPARATOR), "_next")
    sets = frame.filter(~same & ~pl.col("_more")).select(
        "owner",
        "rtype",
        rdata=pl.when("_two").then(joined).otherwise(rdata),
        _n=pl.col("_two").cast(pl.UInt32) + 1,
    )
    if frame["_more"].any():
        runs = frame.with_columns(_run=(~same).cum_sum())
        longer = runs.filter(~same & pl.col("_more"))["_run"]
        rest = (
            runs.filter(pl.col("_run").is_in(longer.implode()))
            .group_by("_run", maintain_order=True)
            .agg(pl.col("owner").first(), pl.col("rtype").first(), rdata)
            .select(
                "owner",
                "rtype",
                pl.col("rdata").list.join(RRSET_SEPARATOR),
                _n=pl.col("rdata").list.len().cast(pl.UInt32),
            )
        )
        sets = pl.concat([sets, rest])
    return sets if counted else sets.drop("_n")


def _lines(frame: pl.DataFrame) -> pl.Series:
    """Bad records as lines for the samples (an RRset by its first record)."""
    first = pl.col("rdata").str.split(RRSET_SEPARATOR).list.first()
    return frame.select(
        pl.concat_str([pl.col("owner"), pl.col("rtype"), first], separator="\t", ignore_nulls=True)
    ).to_series()
