"""STARTTLS captures per second on one core, beside a loop of `openssl s_client -starttls smtp`
against the same lab server in the same run, as a ratio.

The lab serves from its own process on core 0. The survey's capture client (greeting, EHLO,
STARTTLS, TLS handshake, chain, QUIT; `--concurrency` sessions at once) and then the openssl loop
(one `s_client` process after another: `openssl s_time` cannot speak STARTTLS) take core 1 in
turn, each for `--seconds`, against the same MX host and address.

    python bench/starttls_rate.py [--seconds 10] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from survey_assets.lab import world as W  # noqa: E402
from survey_assets.smtp.client import (  # noqa: E402
    CaptureSettings,
    Target,
    _Limits,
    capture,
    client_context,
)

HOST, ADDRESS = "mx1.bigdane.lab-net.", "127.25.1.1"


async def ours(port: int, seconds: float, concurrency: int) -> tuple[int, int]:
    """(captures with a chain, failures) in `seconds`, `concurrency` sessions at a time."""
    settings = CaptureSettings(port=port, deadline=10.0, per_address=concurrency,
                               per_provider=concurrency, max_in_flight=concurrency)  # fmt: skip
    limits, ctx, target = _Limits(settings), client_context(), Target(HOST, ADDRESS)
    stop = time.perf_counter() + seconds
    counts = [0, 0]

    async def worker() -> None:
        while time.perf_counter() < stop:
            cap = await capture(target, settings, context=ctx, limits=limits)
            counts[0 if cap.ok and len(cap.chain) == 2 else 1] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts[0], counts[1]


def theirs(port: int, seconds: float) -> tuple[int, int]:
    stop, ok, bad = time.perf_counter() + seconds, 0, 0
    while time.perf_counter() < stop:
        out = subprocess.run(
            ["openssl", "s_client", "-starttls", "smtp", "-connect", f"{ADDRESS}:{port}",
             "-servername", HOST.rstrip("."), "-showcerts"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip
        if out.count("-----BEGIN CERTIFICATE-----") == 2:
            ok += 1
        else:
            bad += 1
    return ok, bad


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port", type=int, default=10325)
    args = parser.parse_args()
    date = W.LAB_EPOCH
    with tempfile.TemporaryDirectory() as tmp:
        lab = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "-m", "survey_assets.cli", "lab", "serve",
             "--scale", "tiny", "--date", date.isoformat(), "--workdir", tmp,
             "--dns-port", str(args.port + 1), "--smtp-port", str(args.port)],
            stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        json.loads(lab.stdout.readline())  # listening
        try:
            os.sched_setaffinity(0, {1})
            asyncio.run(ours(args.port, 1.0, args.concurrency))  # warm: contexts, key loading
            survey_ok, survey_bad = asyncio.run(ours(args.port, args.seconds, args.concurrency))
            openssl_ok, openssl_bad = theirs(args.port, args.seconds)
        finally:
            lab.send_signal(signal.SIGTERM)
            lab.wait(20)
    rate, peer = survey_ok / args.seconds, openssl_ok / args.seconds
    print(f"survey captures/s (one core, {args.concurrency} at once): {rate:,.0f}"
          f"  (failures: {survey_bad})")  # fmt: skip
    print(f"openssl s_client -starttls smtp/s (sequential):       {peer:,.0f}"
          f"  (failures: {openssl_bad})")  # fmt: skip
    print(f"ratio: {rate / peer:.2f}  (goal >= 0.5)")


if __name__ == "__main__":
    main()
