"""Opening the warehouse file: one writer or any number of readers at a time, across processes.

DuckDB lets one process write a database file, or several processes read it, and refuses any
other at once (`Could not set lock on file ... Conflicting lock is held`). The `warehouse`
Dagster pool runs one warehouse step at a time, but on Dagster's default SQLite storage two
runs starting at the same instant can both claim the pool's one slot (seen in
`test_warehouse_concurrency.py`: two runs' first steps started together). So the survey's
steps also take an advisory lock on a file beside the warehouse before they connect: shared
to read, exclusive to write. A step that finds it taken waits instead of failing, and the
kernel releases the lock when the process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import duckdb


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def locked(path: Path, read_only: bool = False) -> Iterator[None]:
    """The warehouse at `path` locked for reading (shared) or writing, until the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path(path), "a+b") as lock:  # closing it releases the lock
        fcntl.flock(lock, fcntl.LOCK_SH if read_only else fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def connect(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse at `path`, held under its lock until the block ends."""
    with locked(path, read_only):
        con = duckdb.connect(str(path), read_only=read_only)
        try:
            yield con
        finally:
            con.close()
