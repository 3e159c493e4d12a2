"""CZDS zone files: one record per line, tab-separated, gzipped or plain, read as a stream.

A decompressing thread (ISA-L's igzip, several times faster than zlib) hands blocks of whole
lines to polars, which parses each block with its multi-threaded CSV reader: the file is never
held whole in memory and no Python object is made per record.
"""

from __future__ import annotations

import queue
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
from isal import igzip

from survey_assets.sources.records import ImportStats, SourceError, clean

BLOCK = 24 << 20  # bytes of text per parsed block: large enough to keep polars busy
COLUMNS = ["owner", "ttl", "class", "rtype", "rdata"]


def _blocks(path: Path) -> Iterator[bytes]:
    """Blocks of whole lines, decompressed in a thread so parsing overlaps decompression."""
    handoff: queue.Queue = queue.Queue(maxsize=2)

    def produce() -> None:
        try:
            opener = igzip.open if _is_gzip(path) else open
            with opener(path, "rb") as f:
                rest = b""
                while chunk := f.read(BLOCK):
                    cut = chunk.rfind(b"\n") + 1
                    if cut == 0:
                        rest += chunk
                        continue
                    handoff.put(rest + chunk[:cut])
                    rest = chunk[cut:]
                if rest:
                    handoff.put(rest + b"\n")
            handoff.put(None)
        except (OSError, EOFError, zlib.error, igzip.BadGzipFile) as exc:
            handoff.put(exc)

    worker = threading.Thread(target=produce, name=f"gunzip {path.name}", daemon=True)
    worker.start()
    while (item := handoff.get()) is not None:
        if isinstance(item, BaseException):
            raise SourceError(f"{path}: damaged file: {item}") from item
        yield item
    worker.join()


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def read_czds(path: Path, zone: str, stats: ImportStats) -> Iterator[pl.DataFrame]:
    """The kept records of one CZDS file for `zone` (canonical, e.g. "lab-secure.").

    Two blocks are parsed at once (polars releases the GIL), beside the decompressing thread.
    """
    with ThreadPoolExecutor(PARSERS, thread_name_prefix="czds") as pool:
        pending: deque = deque()
        blocks = _blocks(path)
        for index, block in enumerate(blocks):
            pending.append((index, pool.submit(_parse, block)))
            if len(pending) < PARSERS:
                continue
            index, parsed = pending.popleft()
            yield _finish(path, parsed.result(), zone, stats, first=index == 0)
        while pending:
            index, parsed = pending.popleft()
            yield _finish(path, parsed.result(), zone, stats, first=index == 0)
    if stats.records == 0 and stats.bad.get("out_of_zone"):
        raise SourceError(f"{path}: no record of {zone} in the file: is it for another zone?")


PARSERS = 2


def _parse(block: bytes) -> tuple[int, pl.DataFrame]:
    frame = pl.read_csv(
        block,
        separator="\t",
        has_header=False,
        quote_char=None,
        new_columns=COLUMNS,
        schema_overrides=dict.fromkeys(COLUMNS, pl.String),
        truncate_ragged_lines=True,
        comment_prefix=None,
    )
    return block.count(b"\n"), frame


def _finish(
    path: Path, parsed: tuple[int, pl.DataFrame], zone: str, stats: ImportStats, first: bool
) -> pl.DataFrame:
    lines, frame = parsed
    if first:  # the SOA opens a zone file
        _check_soa(path, frame, zone)
    stats.lines += lines
    stats.blank += lines - frame.height
    broken = frame.filter(pl.col("rdata").is_null() | pl.col("rtype").is_null())
    if broken.height:
        first = broken["owner"].fill_null("")
        empty = first.str.strip_chars() == ""
        stats.blank += int(empty.sum())
        first = first.filter(~empty)
        directives = first.str.starts_with("$")
        if directives.any():
            stats.reject("directive", first.filter(directives))
        if (~directives).any():
            stats.reject("not_a_record", first.filter(~directives))
        frame = frame.filter(pl.col("rdata").is_not_null() & pl.col("rtype").is_not_null())
    classes = frame["class"]
    if not (classes == "in").all():
        classes = classes.str.to_lowercase()
        odd = frame.filter(classes != "in")
        stats.reject("bad_class", odd["owner"] + "\t" + odd["class"])
        frame = frame.filter(classes == "in")
    return clean(frame.select("owner", "rtype", "rdata"), zone, stats)


def _check_soa(path: Path, frame: pl.DataFrame, zone: str) -> None:
    """A file whose SOA names another zone is not this zone's file: refuse it whole."""
    soa = frame.filter(pl.col("rtype").str.to_lowercase() == "soa")
    if soa.height:
        owner = soa["owner"][0].strip().lower()
        if owner != zone:
            raise SourceError(f"{path}: the file's SOA is for {owner}, not {zone}")
