"""CZDS zone files: one record per line, tab-separated, gzipped or plain, read as a stream.

A decompressing thread (ISA-L's igzip, several times faster than zlib) hands blocks of whole
lines to the compiled reader (`czds_native`), which leaves the lines it does not take as plain
to polars' CSV reader, the reference for every rule: the file is never held whole in memory and
no Python object is made per record.
"""

from __future__ import annotations

import functools
import hashlib
import queue
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
from isal import igzip

from survey_assets.sources import czds_native
from survey_assets.sources.records import (
    KEPT_TYPES,
    KNOWN_TYPES,
    ImportStats,
    SourceError,
    clean_owners,
    clean_types,
    rrsets,
)

BLOCK = 24 << 20  # bytes of text per parsed block: large enough to keep polars busy
# No record's line comes near this (rdata is at most 65,535 octets, four times that as text):
# a longer one means the file is not a zone file, and would make a block without bound.
MAX_LINE = 1 << 20
SOA_WITHIN = 1 << 16  # bytes at the start of a file where its SOA is looked for
COLUMNS = ["owner", "ttl", "class", "rtype", "rdata"]
HEADER = "\t".join(COLUMNS).encode() + b"\n"


class _Hashing:
    """A binary file that hashes what is read from it: the checksum costs no second pass."""

    def __init__(self, raw) -> None:
        self.raw, self.sha256 = raw, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha256.update(data)  # releases the GIL for large buffers
        return data

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        self.sha256.update(memoryview(buffer)[:n])
        return n

    def __getattr__(self, name: str):
        return getattr(self.raw, name)


def _blocks(path: Path, stats: ImportStats) -> Iterator[bytes]:
    """Blocks of whole lines, each ending in a newline, decompressed in a thread so that
    parsing overlaps decompression; the thread also checksums the file as it reads it."""
    handoff: queue.Queue = queue.Queue(maxsize=2)

    def produce() -> None:
        try:
            with open(path, "rb") as raw:
                hashed = _Hashing(raw)
                f = igzip.IGzipFile(fileobj=hashed, mode="rb") if _is_gzip(path) else hashed
                rest = b""
                while chunk := f.read(BLOCK):
                    cut = chunk.rfind(b"\n") + 1
                    if cut:
                        handoff.put(rest + memoryview(chunk)[:cut])  # one copy, not two
                        rest = chunk[cut:]
                    else:
                        rest += chunk
                    if len(rest) > MAX_LINE:
                        raise SourceError(f"a line longer than {MAX_LINE:,} bytes")
                if rest:
                    handoff.put(rest + b"\n")
                while hashed.read(1 << 20):  # bytes after the gzip stream's end still count
                    pass
            stats.sha256 = hashed.sha256.hexdigest()
            handoff.put(None)
        except (OSError, EOFError, zlib.error, igzip.BadGzipFile, SourceError) as exc:
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


def read_czds(
    path: Path, zone: str, stats: ImportStats, as_rrsets: bool = False
) -> Iterator[pl.DataFrame]:
    """The kept records of one CZDS file for `zone` (canonical, e.g. "lab-secure."), or with
    `as_rrsets` its RRsets (`records.rrsets`), as the lake keeps them.

    Blocks are parsed and checked two at a time in worker threads (polars releases the GIL),
    beside the decompressing thread; each block counts into its own stats, merged in order.
    """
    with ThreadPoolExecutor(PARSERS, thread_name_prefix="czds") as pool:
        pending: deque = deque()
        for index, block in enumerate(_blocks(path, stats)):
            task = pool.submit(_block_records, path, block, zone, index == 0, as_rrsets)
            pending.append(task)
            if len(pending) > PARSERS:
                yield _merged(pending.popleft().result(), stats)
        while pending:
            yield _merged(pending.popleft().result(), stats)
    if stats.records == 0 and stats.bad.get("out_of_zone"):
        raise SourceError(f"{path}: no record of {zone} in the file: is it for another zone?")


PARSERS = 2


def _merged(done: tuple[pl.DataFrame, ImportStats], stats: ImportStats) -> pl.DataFrame:
    frame, block_stats = done
    stats.merge(block_stats)
    return frame


def _block_records(
    path: Path, block: bytes, zone: str, first: bool, as_rrsets: bool = False
) -> tuple[pl.DataFrame, ImportStats]:
    """A block's RRsets by the compiled reader, which leaves any line that is not plain to
    the polars reader; records (and RRsets without the library) by the polars reader."""
    if first:
        _check_soa(path, block, zone)
    if not (as_rrsets and czds_native.available()):
        return _polars_block(block, zone, as_rrsets)
    try:
        read = _native_reader(zone).read(block)
    except czds_native.NativeError as exc:  # that feed fails; the day's others go on
        raise SourceError(f"{path}: {exc}") from exc
    stats = ImportStats(lines=read.lines, records=read.records, blank=read.blank, types=read.types)
    if not read.odd_lines:
        return read.frame, stats
    odd, odd_stats = _polars_block(read.odd_text, zone, as_rrsets=True)
    odd_stats.lines = 0  # counted in the block's
    stats.merge(odd_stats)
    return pl.concat([read.frame, odd]), stats


@functools.lru_cache(maxsize=64)
def _native_reader(zone: str) -> czds_native.BlockReader:
    return czds_native.BlockReader(zone, KNOWN_TYPES, KEPT_TYPES)


def _polars_block(block: bytes, zone: str, as_rrsets: bool) -> tuple[pl.DataFrame, ImportStats]:
    """A block (whole lines, ending in a newline) read by polars."""
    lines = block.count(b"\n")
    # A header of five columns: a block whose first line has fewer fields (a stray directive)
    # would otherwise set the number of columns for all of them.
    frame = pl.read_csv(
        HEADER + block,
        separator="\t",
        has_header=True,
        quote_char=None,
        columns=[0, 2, 3, 4],  # the TTL is not kept: not parsing it saves a fifth of the work
        schema_overrides=dict.fromkeys(COLUMNS, pl.String),
        truncate_ragged_lines=True,
        comment_prefix=None,
        encoding="utf8-lossy",  # bytes that are not UTF-8 become U+FFFD: such lines are refused
    )
    stats = ImportStats(lines=lines)  # every line but an empty one makes a row
    stats.blank += lines - frame.height
    lossy = pl.any_horizontal(pl.col(c).str.contains("\ufffd", literal=True) for c in frame.columns)
    # ASCII text (nearly every block) has nothing to replace: no scan of the columns for it.
    if not block.isascii() and frame.select(lossy.any()).item():
        frame = frame.with_columns(_lossy=lossy.fill_null(False))
        stats.reject("not_utf8", _line_text(frame.filter("_lossy")))
        frame = frame.filter(~pl.col("_lossy")).drop("_lossy")
    broken = frame.filter(pl.col("rdata").is_null() | pl.col("rtype").is_null())
    if broken.height:
        owners = broken["owner"].fill_null("")
        empty = owners.str.strip_chars() == ""
        stats.blank += int(empty.sum())
        owners = owners.filter(~empty)
        directives = owners.str.starts_with("$")
        if directives.any():
            stats.reject("directive", owners.filter(directives))
        if (~directives).any():
            stats.reject("not_a_record", owners.filter(~directives))
        frame = frame.filter(pl.col("rdata").is_not_null() & pl.col("rtype").is_not_null())
    classes = frame["class"].fill_null("")  # an empty field is no class at all
    if not (classes == "in").all():
        classes = classes.str.to_lowercase()
        odd = frame.filter(classes != "in")
        if odd.height:  # upper-case IN is fine
            stats.reject(
                "bad_class", odd["owner"].fill_null("") + "\t" + odd["class"].fill_null("")
            )
        frame = frame.filter(classes == "in")
    kept = clean_types(frame.select("owner", "rtype", "rdata"), stats)
    if not as_rrsets:
        return clean_owners(kept, zone, stats), stats
    # Owners are checked set by set, not line by line: half the work on a delegation's NS set.
    return clean_owners(rrsets(kept, counted=True), zone, stats).drop("_n"), stats


def _line_text(frame: pl.DataFrame) -> pl.Series:
    fields = [pl.col(c).fill_null("") for c in ("owner", "class", "rtype", "rdata")]
    return frame.select(pl.concat_str(fields, separator="\t")).to_series()


def _check_soa(path: Path, block: bytes, zone: str) -> None:
    """A file whose SOA names another zone is not this zone's file: refuse it whole. The SOA
    opens a zone file: it is looked for among the first lines only."""
    for line in block[:SOA_WITHIN].split(b"\n")[:-1]:
        fields = line.decode(errors="replace").split("\t")
        if len(fields) >= 5 and fields[3].strip().lower() == "soa":
            owner = fields[0].strip().lower()
            if owner != zone:
                raise SourceError(f"{path}: the file's SOA is for {owner}, not {zone}")
            return
