"""Name lists (passive-DNS exports and the like): one name a line, read in batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
from isal import igzip

from survey_assets.sources.records import SCHEMA, ImportStats, SourceError, clean

BATCH = 1 << 20  # lines


def read_namelist(path: Path, stats: ImportStats) -> Iterator[pl.DataFrame]:
    """Each valid name as an owner (rtype "name"); blank lines and `#` comments are skipped."""
    opener = igzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="surrogateescape") as f:
            while lines := f.readlines(BATCH * 32):
                stats.lines += len(lines)
                names = [line.strip() for line in lines]
                kept = [n for n in names if n and not n.startswith("#")]
                stats.blank += len(names) - len(kept)
                frame = pl.DataFrame(
                    {"owner": [_absolute(n) for n in kept], "rtype": "ns", "rdata": ""},
                    schema=SCHEMA,
                )
                yield clean(frame, None, stats).with_columns(pl.lit("name").alias("rtype"))
    except (OSError, EOFError, UnicodeError) as exc:
        raise SourceError(f"{path}: damaged file: {exc}") from None


def _absolute(name: str) -> str:
    return name if name.endswith(".") and not name.endswith("\\.") else name + "."
