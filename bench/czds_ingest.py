"""CZDS ingestion: delegations extracted per second from one large zone file, beside the speed of
decompression alone (`gzip -dc FILE | wc -l`, measured in the same run), and peak memory.

The import (zone file -> Parquet records in the lake) runs in a child process so its peak
resident memory is measured on its own; then the candidate query extracts the delegations.

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


def timed(cmd: list[str]) -> tuple[float, str, int]:
    """Seconds, stdout and the child's own peak resident memory (kB, from wait4)."""
    began = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - began
        out.seek(0)
        err.seek(0)
        if child.returncode:
            raise SystemExit(f"{cmd[:3]} failed:\n{err.read().decode()[-2000:]}")
        return seconds, out.read().decode(), usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=20_000_000)
    args = parser.parse_args()
    source = ROOT / "bench" / "out" / f"czds-{args.lines}.txt.gz"
    if not source.exists():
        print(f"generating {source} ...", flush=True)
        subprocess.run([sys.executable, "bench/gen_czds.py", "--lines", str(args.lines), "--out", str(source)],
                       check=True, cwd=ROOT)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "czds" / DAY.isoformat()
        folder.mkdir(parents=True)
        shutil.copy(source, folder / "bench.txt.gz")
        gzip_s, out, _ = timed(["sh", "-c", f"gzip -dc {source} | wc -l"])
        lines = int(out.strip())
        import_s, out, import_rss = timed([sys.executable, "-c", CHILD, str(root)])
        extract_s, out2, extract_rss = timed(
            [sys.executable, "-c", EXTRACT, str(root), DAY.isoformat()]
        )
        delegations = int(out2.split()[0])
        # The daily case: the next day's file (the same one again) beside the previous day's
        # candidates, whose provenance every name carries on. The import is copied, not redone.
        lake = root / "lake"
        for dataset in ("raw_zone_lists", "zone_imports"):
            shutil.copytree(lake / dataset / f"date={DAY}", lake / dataset / f"date={NEXT}")
        next_s, out3, next_rss = timed([sys.executable, "-c", EXTRACT, str(root), NEXT.isoformat()])
        assert out3.split() == [str(delegations), "0", "0"], out3
    total = import_s + next_s
    print(f"file: {source.name}, {lines:,} lines, {source.stat().st_size / 1e6:,.0f} MB gzipped")
    print(f"gzip -dc | wc -l:         {gzip_s:6.2f} s  ({lines / gzip_s:,.0f} lines/s)")
    print(
        f"import to the lake:       {import_s:6.2f} s  ({lines / import_s:,.0f} lines/s), peak {import_rss / 1024:,.0f} MB"
    )
    print(
        f"candidates, first day:    {extract_s:6.2f} s  ({delegations:,} delegations), peak {extract_rss / 1024:,.0f} MB"
    )
    print(
        f"candidates, next day:     {next_s:6.2f} s  (with the first day's provenance), peak {next_rss / 1024:,.0f} MB"
    )
    print(f"delegations per second (import + next day's candidates): {delegations / total:,.0f}")
    print(f"ratio to decompression alone: import {gzip_s / import_s:.2f}, import + candidates {gzip_s / total:.2f}"
          f"   (goal >= 1.0, peak memory <= 1 GB)")  # fmt: skip
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
