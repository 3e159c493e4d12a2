"""CZDS ingestion: delegations extracted per second from one large zone file, beside the speed of
decompression alone (`gzip -dc FILE | wc -l`, measured in the same run), and peak memory.

Each step runs in a child process, timed with its own CPU time and peak resident memory: the
import (zone file -> RRsets in the lake), the candidates of the first day (no previous day),
and the candidates of the next day (the same file again, with the first day's candidates:
every name carries its provenance on, the daily case). Two ratios to decompression alone: the
import's (the goal's: parsing, as fast as decompression), and the whole way from file to
candidates (import + the next day's candidates).

    python bench/czds_ingest.py [--lines 20000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 11, 1)
NEXT = DAY + dt.timedelta(days=1)
CHILD = """
import datetime as dt, sys
from pathlib import Path
from survey_assets.sources.config import Source, SourcesConfig
from survey_assets.sources.importer import import_day
from survey_assets.sources import candidates as C
root = Path(sys.argv[1])
config = SourcesConfig(root / "s.toml", (Source("czds", "czds", str(root / "czds")),), ())
(result,) = import_day(config, dt.date(2026, 11, 1), root / "lake", dt.datetime.now(dt.UTC))
assert result.status == "ok", result.error
print(result.stats.lines, result.stats.records, flush=True)
"""
EXTRACT = """
import datetime as dt, sys
from pathlib import Path
from survey_assets.sources import candidates as C
lake = Path(sys.argv[1]) / "lake"
con = C.connect(memory_limit="1GB", spill=lake / ".staging" / "duckdb")
report = C.build_candidates(con, lake, dt.date.fromisoformat(sys.argv[2]))
C.discard(con)
print(report.rows, report.added, report.removed, flush=True)
"""


@dataclass
class Step:
    seconds: float
    out: str
    cpu: float  # user + system seconds of the child (and of its own children)
    peak_mb: float  # the child's own peak resident memory, from wait4

    def line(self, label: str, what: str) -> str:
        return (
            f"{label:26s}{self.seconds:6.2f} s  cpu {self.cpu:5.1f} s  peak {self.peak_mb:5,.0f} MB"
            f"  {what}"
        )


def timed(cmd: list[str]) -> Step:
    began = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - began
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"{cmd[:3]} failed:\n{err.read().decode()[-2000:]}")
        cpu = usage.ru_utime + usage.ru_stime
        return Step(seconds, out.read().decode(), cpu, usage.ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=20_000_000)
    args = parser.parse_args()
    source = ROOT / "bench" / "out" / f"czds-{args.lines}.txt.gz"
    if not source.exists():
        print(f"generating {source} ...", flush=True)
        subprocess.run([sys.executable, "bench/gen_czds.py", "--lines", str(args.lines), "--out", str(source)],
                       check=True, cwd=ROOT)  # fmt: skip
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "czds" / DAY.isoformat()
        folder.mkdir(parents=True)
        shutil.copy(source, folder / "bench.txt.gz")
        gunzip = timed(["sh", "-c", f"gzip -dc {source} | wc -l"])
        lines = int(gunzip.out.strip())
        imported = timed([sys.executable, "-c", CHILD, str(root)])
        first = timed([sys.executable, "-c", EXTRACT, str(root), DAY.isoformat()])
        delegations = int(first.out.split()[0])
        # The daily case: the next day's file (the same one again) beside the previous day's
        # candidates, whose provenance every name carries on. The import is copied, not redone.
        lake = root / "lake"
        for dataset in ("raw_zone_lists", "zone_imports"):
            shutil.copytree(lake / dataset / f"date={DAY}", lake / dataset / f"date={NEXT}")
        following = timed([sys.executable, "-c", EXTRACT, str(root), NEXT.isoformat()])
        assert following.out.split() == [str(delegations), "0", "0"], following.out
    total = imported.seconds + following.seconds
    print(f"file: {source.name}, {lines:,} lines, {source.stat().st_size / 1e6:,.0f} MB gzipped")
    print(gunzip.line("gzip -dc | wc -l", f"{lines / gunzip.seconds:,.0f} lines/s"))
    print(imported.line("import to the lake", f"{lines / imported.seconds:,.0f} lines/s"))
    print(first.line("candidates, first day", f"{delegations:,} delegations"))
    print(following.line("candidates, next day", "with the first day's provenance"))
    print(f"delegations extracted per second: import {delegations / imported.seconds:,.0f}, "
          f"file to candidates (import + next day) {delegations / total:,.0f}")  # fmt: skip
    print(f"ratio to decompression alone: import {gunzip.seconds / imported.seconds:.2f} "
          "(the goal: >= 1.0, peak memory <= 1 GB), "
          f"import + candidates {gunzip.seconds / total:.2f}")  # fmt: skip
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average: {' '.join(load_before)} before, {' '.join(load_after)} after (2 cores)")


if __name__ == "__main__":
    main()
