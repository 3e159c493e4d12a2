"""The compiled CZDS block reader (`rust/czds_reader`, built by `make native`), through ctypes.

One call per block of whole lines turns the plain lines into RRset rows, as Arrow string
columns written straight into buffers allocated here, and copies out the lines it did not
take as plain; `czds._block_records` sends those through the polars reader, the reference for
every rule. Without the library (a plain `pip install`), the polars reader reads every line.
"""

from __future__ import annotations

import ctypes
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

LIBRARY = Path(__file__).with_name("libczds_reader.so")
_COUNTS = ("lines", "rows", "records", "blank", "odd_lines", "odd_bytes",
           "owner_bytes", "rtype_bytes", "rdata_bytes", "types_bytes")  # fmt: skip
_TYPES_CAP = 1 << 16  # "mnemonic count" lines: the reader counts at most 1,024 types
# The C library's allocator for the blocks' buffers: measured on the 20 M-line file, the
# import took a tenth less CPU than with pyarrow's default (mimalloc).
_POOL = pa.system_memory_pool()
_SHORTEST = 10  # bytes of the shortest line the reader takes ("a.\t\tin\tns\tx"), newline aside


class _Counts(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in _COUNTS]


class NativeError(RuntimeError):
    """The compiled reader refused a block: a buffer too small, or a fault inside it."""


def _load() -> ctypes.CDLL | None:
    if not LIBRARY.exists():
        logging.getLogger(__name__).warning(
            "%s is not built (make native): CZDS files are read by the slower polars reader",
            LIBRARY,
        )
        return None
    lib = ctypes.CDLL(str(LIBRARY))
    lib.czds_read_block.restype = ctypes.c_int32
    lib.czds_read_block.argtypes = [
        *[ctypes.c_void_p, ctypes.c_size_t] * 4,  # block, zone, known types, kept types
        *[ctypes.c_void_p] * 6,  # offsets and data of owner, rtype, rdata
        *[ctypes.c_size_t] * 4,  # rows, data, rtype data and type-count capacities
        ctypes.c_void_p,
        ctypes.c_size_t,  # the odd lines' text and its capacity
        ctypes.c_void_p,  # type counts out
        ctypes.POINTER(_Counts),
    ]
    return lib


_LIB = _load()


def available() -> bool:
    return _LIB is not None


@dataclass
class Block:
    """What the compiled reader made of one block."""

    frame: pl.DataFrame  # RRsets: owner, rtype, rdata
    lines: int  # lines in the block
    types: Counter  # records by type mnemonic, over the lines taken
    records: int  # records in `frame`, after duplicates are dropped
    blank: int  # empty lines
    odd_lines: int  # lines not taken as plain, left to the polars reader
    odd_text: bytes  # those lines, each ending in a newline


def _buffer(size: int) -> pa.Buffer:
    return pa.allocate_buffer(size, memory_pool=_POOL)


class BlockReader:
    """Reads blocks of one zone's CZDS file: the zone and the type lists are encoded once."""

    def __init__(self, zone: str, known: frozenset[str], kept: tuple[str, ...]) -> None:
        self.zone = zone.encode()
        self.known = "\n".join(sorted(known)).encode()
        self.kept = "\n".join(kept).encode()
        self.longest_kept = max(map(len, kept))

    def read(self, block: bytes) -> Block:
        """`block` holds whole lines (the last one may lack its newline)."""
        assert _LIB is not None
        # Bounds, not sizes: pages of a buffer that are never written are never mapped.
        rows_cap = len(block) // _SHORTEST + 1
        data_cap = len(block)
        offsets = [_buffer(4 * (rows_cap + 1)) for _ in range(3)]
        owner, rdata = _buffer(data_cap), _buffer(data_cap)
        rtype_cap = self.longest_kept * rows_cap
        rtype = _buffer(rtype_cap)
        odd = _buffer(data_cap + 1)  # each odd line with a newline
        types = _buffer(_TYPES_CAP)
        counts = _Counts()
        code = _LIB.czds_read_block(
            block,
            len(block),
            self.zone,
            len(self.zone),
            self.known,
            len(self.known),
            self.kept,
            len(self.kept),
            offsets[0].address,
            owner.address,
            offsets[1].address,
            rtype.address,
            offsets[2].address,
            rdata.address,
            rows_cap,
            data_cap,
            rtype_cap,
            _TYPES_CAP,
            odd.address,
            data_cap + 1,
            types.address,
            ctypes.byref(counts),
        )
        if code != 0:
            raise NativeError(f"the compiled CZDS reader failed with code {code}")

        def column(i: int, data: pa.Buffer, used: int) -> pa.Array:
            return pa.Array.from_buffers(pa.string(), counts.rows, [None, offsets[i], data[:used]])

        frame = pl.from_arrow(
            pa.table(
                {
                    "owner": column(0, owner, counts.owner_bytes),
                    "rtype": column(1, rtype, counts.rtype_bytes),
                    "rdata": column(2, rdata, counts.rdata_bytes),
                }
            )
        )
        tally = Counter()
        for line in types[: counts.types_bytes].to_pybytes().decode().splitlines():
            mnemonic, count = line.split(" ")
            tally[mnemonic] = int(count)
        odd_text = odd[: counts.odd_bytes].to_pybytes()  # just the bytes written
        return Block(
            frame, counts.lines, tally, counts.records, counts.blank, counts.odd_lines, odd_text
        )
