"""How many answers a second the lab's DNS server gives on one core, against a fast client.

The lab must never be what limits the scanner. The server runs alone on core 0, dnsperf (Debian)
on core 1; the same client then drives a plain UDP echo server (same event loop, same core) that
returns each query with the QR bit set: the floor of what a Python UDP server can do here.
Prints both rates and their ratio. Goal: >= 30,000 answers/s.

    python bench/lab_dns_qps.py [--seconds 10] [--scale tiny]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SURVEY = [sys.executable, "-m", "survey_assets.cli"]
ECHO = """
import asyncio, sys, uvloop
class Echo(asyncio.DatagramProtocol):
    def connection_made(self, t): self.t = t
    def datagram_received(self, d, a): self.t.sendto(d[:2] + bytes((d[2] | 0x80,)) + d[3:], a)
async def main():
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Echo, local_addr=(sys.argv[1], int(sys.argv[2])))
    print("ready", flush=True)
    await asyncio.Event().wait()
uvloop.run(main())
"""


def query_file(path: Path, scale: str) -> int:
    from survey_assets.lab import world as W
    from survey_assets.lab.sources import candidates

    w = W.World(W.DEFAULT_SEED, scale, W.LAB_EPOCH)
    lines = []
    for name in sorted(candidates(w))[:5000]:
        text = name.to_text()
        lines += [f"{text} MX", f"{text} DS", f"{text} DNSKEY", f"www.{text} A"]
    for host in w.mx_hosts():
        lines += [f"_25._tcp.{host.name} TLSA", f"{host.name} A"]
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def dnsperf(address: str, port: int, data: Path, seconds: int) -> float:
    out = subprocess.run(
        ["taskset", "-c", "1", "dnsperf", "-s", address, "-p", str(port), "-d", str(data),
         "-l", str(seconds), "-c", "4", "-q", "200", "-D"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    rate = re.search(r"Queries per second:\s+([\d.]+)", out)
    if rate is None:
        raise RuntimeError(f"dnsperf printed no rate:\n{out}")
    if lost and int(lost.group(1)):
        print(f"  (dnsperf lost {lost.group(1)} queries)")
    return float(rate.group(1))


def start(cmd: list[str], ready: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *cmd], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if ready not in line:
        proc.kill()
        raise RuntimeError(f"{cmd[0]} did not start: {line!r}")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--scale", default="tiny")
    parser.add_argument("--port", type=int, default=10153)
    args = parser.parse_args()
    if not shutil.which("dnsperf"):
        sys.exit("dnsperf is not installed: apt-get install dnsperf")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "queries.txt"
        count = query_file(data, args.scale)
        lab = start([*SURVEY, "lab", "serve", "--scale", args.scale, "--workdir", tmp,
                     "--dns-port", str(args.port), "--smtp-port", str(args.port + 1)], "resolver")  # fmt: skip
        try:
            dnsperf("127.53.0.53", args.port, data, 3)  # warm the answer cache once
            lab_qps = dnsperf("127.53.0.53", args.port, data, args.seconds)
        finally:
            lab.send_signal(signal.SIGTERM)
            lab.wait(10)
        echo = start([sys.executable, "-c", ECHO, "127.53.9.9", str(args.port)], "ready")
        try:
            echo_qps = dnsperf("127.53.9.9", args.port, data, args.seconds)
        finally:
            echo.kill()
            echo.wait()
    print(
        f"lab DNS server ({args.scale}, {count} distinct queries, DO set, one core): {lab_qps:,.0f} answers/s"
    )
    print(f"plain UDP echo (uvloop, one core, same client):          {echo_qps:,.0f} answers/s")
    print(f"ratio lab/echo: {lab_qps / echo_qps:.2f}   goal: >= 30,000 answers/s -> "
          f"{'met' if lab_qps >= 30_000 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("SURVEY_DATA_DIR", tempfile.gettempdir())
    main()
