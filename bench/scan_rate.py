"""Fully validated domains per second, beside Unbound's validated lookups per second for the
same names against the same lab (Unbound with a cold cache, driven by dnsperf), as a ratio.

The lab serves from its own process on core 0, warmed by one untimed pass; the survey's
scanner (a fresh validator: every zone's keys fetched and checked again) and then Unbound
(a fresh process: cold cache) each take core 1 in turn. Each domain costs the scanner its MX answer plus, once per zone, DS and DNSKEY;
Unbound does the same work for one MX lookup.

    python bench/scan_rate.py [--scale demo] [--count 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from survey_assets.dns.client import ClientSettings  # noqa: E402
from survey_assets.dns.scan import read_anchor, scan_domains  # noqa: E402
from survey_assets.lab import unbound  # noqa: E402
from survey_assets.lab import world as W  # noqa: E402
from survey_assets.lab.serve import LabInfo  # noqa: E402
from survey_assets.lab.sources import candidates  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--port", type=int, default=10253)
    args = parser.parse_args()
    date = W.LAB_EPOCH
    names = [n.to_text() for n in sorted(candidates(W.World(1, args.scale, date)))][: args.count]
    with tempfile.TemporaryDirectory() as tmp:
        lab = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "-m", "survey_assets.cli", "lab", "serve",
             "--scale", args.scale, "--date", date.isoformat(), "--workdir", tmp,
             "--dns-port", str(args.port), "--smtp-port", str(args.port + 1)],
            stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        info_json = json.loads(lab.stdout.readline())
        try:
            os.sched_setaffinity(0, {1})
            anchors = read_anchor(Path(info_json["trust_anchor"]).read_text())
            now = dt.datetime.combine(date, dt.time(12), dt.UTC)
            settings = ClientSettings(timeout=2.0, retries=3, max_in_flight=200)
            # One pass to let the lab sign and cache its answers, so both peers meet a warm lab.
            asyncio.run(scan_domains(names, ("127.53.0.53", args.port), anchors, now, settings))
            began = time.perf_counter()
            rows = asyncio.run(
                scan_domains(names, ("127.53.0.53", args.port), anchors, now, settings)
            )
            ours = len(rows) / (time.perf_counter() - began)
            info = LabInfo("127.53.0.53", args.port, args.port + 1, Path(info_json["trust_anchor"]),
                           Path(info_json["truth"]), Path(tmp), date, 1, args.scale)  # fmt: skip
            queries = Path(tmp) / "queries.txt"
            queries.write_text("".join(f"{n} MX\n" for n in names))
            with unbound.Unbound(info, Path(tmp) / "unbound", args.port + 2) as validator:
                out = subprocess.run(
                    ["dnsperf", "-s", "127.0.0.1", "-p", str(validator.port), "-d", str(queries),
                     "-n", "1", "-c", "8", "-q", "200", "-D", "-t", "10"],
                    capture_output=True, text=True, check=True,
                ).stdout  # fmt: skip
            theirs = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
        finally:
            lab.send_signal(signal.SIGTERM)
            lab.wait(20)
    statuses = {
        s: sum(r["dnssec"] == s for r in rows)
        for s in ("secure", "insecure", "bogus", "indeterminate")
    }
    print(f"{len(names):,} candidates of the {args.scale} world: {statuses}")
    print(f"survey scanner (one core): {ours:,.0f} fully validated domains/s")
    print(
        f"Unbound + dnsperf (cold cache, one core for Unbound): {theirs:,.0f} validated MX lookups/s"
    )
    print(f"ratio survey/Unbound: {ours / theirs:.2f}   (goal >= 1.0)")


if __name__ == "__main__":
    main()
