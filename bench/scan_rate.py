"""Fully validated domains per second, beside Unbound's validated lookups per second for the
same names against the same lab (Unbound with a cold cache, driven by dnsperf), as a ratio.

The lab serves from its own process on core 0, warmed by untimed passes (it signs answers on
demand and caches them; it writes no zone files or truth, which the benchmark does not read).
Its signed answers are kept in ~/.cache/survey-bench for the next run of the same world, date
and lab code: the first run over the `bench` world spends about 15 minutes signing.
Then, `--repeat` times each (the median is the figure):

- the survey's scanner in one process on core 1, with a fresh validator (every zone's keys
  fetched and checked again), as the scan assets run it (the fast path of `dns/fastpath.py`
  first, the Python scanner for the domains it leaves): each domain costs it its MX answer
  plus, once per zone, DS and DNSKEY, with every signature checked;
- Unbound (a fresh process, one thread: a cold cache) on core 1, driven by dnsperf (each name's
  MX once, DO set): the same work for one MX lookup;
- with `--processes 2`, the same names split into shards as the scan assets split them
  (`shard_of`), one process per shard pinned to cores 1 and 0 (the second shares core 0 with
  the warm lab, whose cached answers cost it little), each with its own validator as the
  Dagster shards have: domains/s over the wall time from the common start to the last end.

The ratio is per core: one scanner process against one Unbound thread.

    python bench/scan_rate.py [--scale demo] [--count 50000] [--repeat 2] [--processes 1,2]
    python bench/scan_rate.py --profile scan.prof   # cProfile one warm pass instead
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import pickle
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from survey_assets import eventloop  # noqa: E402
from survey_assets.dns.client import ClientSettings  # noqa: E402
from survey_assets.dns.scan import read_anchor, scan_domains  # noqa: E402
from survey_assets.lab import unbound  # noqa: E402
from survey_assets.lab import world as W  # noqa: E402
from survey_assets.lab.serve import Lab, LabInfo, info_line, trust_anchor_text  # noqa: E402
from survey_assets.lab.sources import candidates  # noqa: E402
from survey_assets.lake.parquet import shard_of  # noqa: E402

RESOLVER = "127.53.0.53"
SETTINGS = ClientSettings(timeout=2.0, retries=3, max_in_flight=200)
# The first pass meets a cold lab that signs each answer on demand (RSA keys: milliseconds a
# signature): patient and few at a time, so no answer is asked for (and signed) twice.
COLD = ClientSettings(timeout=30.0, retries=1, max_in_flight=50, deadline=0)
ANSWERS_DIR = Path.home() / ".cache" / "survey-bench"


class _BenchLab(Lab):
    """The lab without its files but the trust anchor: at the bench scale the truth and the
    signed zone files of a million domains would take the better part of an hour to write."""

    def _write_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.info.trust_anchor.write_text(trust_anchor_text(self.world))


def _answers_file(scale: str, date: dt.date) -> Path:
    """Where the lab's signed answers are kept between runs: its keys are derived from a seed,
    so answers signed for one date stay valid, and only a change to the lab's code (part of
    the file's name) makes them stale."""
    code = hashlib.sha256()
    for path in sorted((ROOT / "survey_assets" / "lab").glob("*.py")):
        code.update(path.read_bytes())
    return ANSWERS_DIR / f"lab-{scale}-{date}-{code.hexdigest()[:12]}.pickle"


def serve_lab(args: argparse.Namespace) -> None:
    lab = _BenchLab(scale=args.scale, date=W.LAB_EPOCH, workdir=Path(args.workdir),
                    dns_port=args.port, smtp_port=args.port + 1)  # fmt: skip
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    kept = _answers_file(args.scale, W.LAB_EPOCH)
    with lab:
        assert lab.dns is not None
        if kept.exists():  # before anyone asks: the caches are the lab thread's
            for address, cache in pickle.loads(kept.read_bytes()).items():
                lab.dns.responders[address].cache.update(cache)
        print(info_line(lab), flush=True)
        stop.wait()
        kept.parent.mkdir(parents=True, exist_ok=True)
        tmp = kept.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps({a: r.cache for a, r in lab.dns.responders.items()}))
        tmp.replace(kept)


def _scan(names, port, anchors, now, settings: ClientSettings = SETTINGS) -> list[dict]:
    return eventloop.run(scan_domains(names, (RESOLVER, port), anchors, now, settings))


def _shard(names, port, anchors, now, core, barrier, queue, settings) -> None:
    os.sched_setaffinity(0, {core})
    barrier.wait()
    began, cpu = time.perf_counter(), time.process_time()  # perf_counter: CLOCK_MONOTONIC
    rows = _scan(names, port, anchors, now, settings)
    queue.put((began, time.perf_counter(), [r["dnssec"] for r in rows],
               time.process_time() - cpu))  # fmt: skip


def scan_rate(
    names, port, anchors, now, processes: int, settings: ClientSettings = SETTINGS
) -> tuple[float, list[str], float]:
    """Domains per second over `processes` shards scanned side by side, the statuses, and the
    CPU seconds the shards spent per domain (which the load of the machine moves less)."""
    shards = [[] for _ in range(processes)]
    for name in names:
        shards[shard_of(name, processes)].append(name)
    cores = sorted(os.sched_getaffinity(0) | {0, 1})
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(processes), context.Queue()
    children = [
        context.Process(target=_shard, args=(shard, port, anchors, now,
                                             cores[(1 + i) % len(cores)], barrier, queue,
                                             settings))
        for i, shard in enumerate(shards)
    ]  # fmt: skip
    for child in children:
        child.start()
    results = [queue.get() for _ in children]
    for child in children:
        child.join()
    began, ended = min(r[0] for r in results), max(r[1] for r in results)
    statuses = [s for r in results for s in r[2]]
    return len(statuses) / (ended - began), statuses, sum(r[3] for r in results) / len(statuses)


def _cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def unbound_rate(
    info: LabInfo, names: list[str], workdir: Path, port: int
) -> tuple[float, str, float]:
    """Validated MX lookups per second of a fresh Unbound (cold cache), dnsperf's summary, and
    Unbound's CPU seconds per lookup (its start-up not counted)."""
    workdir.mkdir(parents=True, exist_ok=True)
    queries = workdir / "queries.txt"
    queries.write_text("".join(f"{n} MX\n" for n in names))
    with unbound.Unbound(info, workdir / "unbound", port) as validator:
        assert validator.process is not None
        cpu = _cpu_seconds(validator.process.pid)
        out = subprocess.run(
            ["dnsperf", "-s", "127.0.0.1", "-p", str(validator.port), "-d", str(queries),
             "-n", "1", "-c", "8", "-q", "200", "-D", "-t", "10"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        cpu = _cpu_seconds(validator.process.pid) - cpu
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    return qps, f"lost {lost.group(1) if lost else '?'}", cpu / len(names)


def _load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--port", type=int, default=10253)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement")
    parser.add_argument("--processes", default="1", help="comma-separated, e.g. 1,2")
    parser.add_argument("--profile", help="cProfile one warm scan to this file, and stop")
    parser.add_argument("--serve-lab", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_lab:
        return serve_lab(args)
    date = W.LAB_EPOCH
    every = sorted(candidates(W.World(1, args.scale, date)))
    # An even sample of the world (every k-th name in canonical order), so each TLD keeps its
    # share: the first names alone would all be of one TLD.
    names = [n.to_text() for n in every[:: max(1, len(every) // args.count)]][: args.count]
    processes = [int(p) for p in args.processes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        lab = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, __file__, "--serve-lab", "--scale", args.scale,
             "--port", str(args.port), "--workdir", tmp],
            stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        info_json = json.loads(lab.stdout.readline())
        try:
            os.sched_setaffinity(0, {1})
            anchors = read_anchor(Path(info_json["trust_anchor"]).read_text())
            now = dt.datetime.combine(date, dt.time(12), dt.UTC)
            # Passes to let the lab sign and cache its answers, so both peers meet a warm lab:
            # until two give the same statuses (a cold lab can be slow enough to time out).
            warm: Counter = Counter()
            for _ in range(3):
                began, before = time.perf_counter(), warm
                # In a child, as the timed runs: nothing the scanner keeps outlives a run.
                settings = COLD if not before else SETTINGS
                warm = Counter(scan_rate(names, args.port, anchors, now, 1, settings)[1])
                took = time.perf_counter() - began
                print(f"warm-up pass: {took:.0f} s, {dict(warm)}", flush=True)
                if warm == before:
                    break
            # Unbound asks questions of its own (other flags, other names): one untimed pass
            # of a throwaway Unbound lets the lab cache those answers too. Without it, Unbound
            # would wait on the lab's signing and measure the lab, not itself.
            info = LabInfo(RESOLVER, args.port, args.port + 1, Path(info_json["trust_anchor"]),
                           Path(tmp) / "truth.jsonl", Path(tmp), date, 1, args.scale)  # fmt: skip
            qps, lost, _ = unbound_rate(info, names, Path(tmp) / "warm", args.port + 2)
            print(f"warm-up pass of Unbound: {qps:,.0f} lookups/s, {lost}", flush=True)
            if args.profile:
                import cProfile

                cProfile.runctx("_scan(names, args.port, anchors, now)", globals(), locals(),
                                args.profile)  # fmt: skip
                print(f"profile of one warm pass in {args.profile}")
                return
            ours: dict[int, list[float]] = {p: [] for p in processes}
            our_cpu: dict[int, list[float]] = {p: [] for p in processes}
            theirs: list[float] = []
            their_cpu: list[float] = []
            for run in range(args.repeat):
                for p in processes:
                    rate, statuses, cpu = scan_rate(names, args.port, anchors, now, p)
                    ours[p].append(rate)
                    our_cpu[p].append(cpu)
                    print(f"run {run + 1}: survey, {p} process(es): {rate:,.0f} domains/s, "
                          f"{cpu * 1e6:,.0f} µs CPU a domain  ({_load()})", flush=True)  # fmt: skip
                    if Counter(statuses) != warm:
                        print(f"  statuses differ from the warm-up's: {dict(Counter(statuses))}")
                qps, lost, cpu = unbound_rate(info, names, Path(tmp) / f"u{run}", args.port + 2)
                theirs.append(qps)
                their_cpu.append(cpu)
                print(f"run {run + 1}: Unbound: {qps:,.0f} lookups/s, {cpu * 1e6:,.0f} µs CPU a "
                      f"lookup, {lost}  ({_load()})", flush=True)  # fmt: skip
        finally:
            lab.send_signal(signal.SIGTERM)
            lab.wait(300)  # it keeps its signed answers for the next run first
    print(f"{len(names):,} candidates of the {args.scale} world: {dict(warm)}")
    one = statistics.median(ours[processes[0]])
    median_theirs = statistics.median(theirs)
    for p in processes:
        print(f"survey scanner, {p} process(es): {statistics.median(ours[p]):,.0f} "
              f"fully validated domains/s, {statistics.median(our_cpu[p]) * 1e6:,.0f} µs CPU a "
              f"domain (medians of {args.repeat})")  # fmt: skip
        if p != processes[0]:
            print(f"  scaling {p} vs {processes[0]} process(es): "
                  f"{statistics.median(ours[p]) / one:.2f}x")  # fmt: skip
    their_median_cpu = statistics.median(their_cpu)
    print(f"Unbound + dnsperf (cold cache, one thread): {median_theirs:,.0f} validated MX "
          f"lookups/s, {their_median_cpu * 1e6:,.0f} µs of Unbound's CPU a lookup "
          f"(medians of {args.repeat})")  # fmt: skip
    print(f"ratio survey/Unbound, one core each: {one / median_theirs:.2f}   (goal >= 1.0)")
    # The same comparison in CPU time, which neighbours on the machine move less than rates.
    cpu_ratio = their_median_cpu / statistics.median(our_cpu[processes[0]])
    print(f"ratio in CPU time (Unbound's per lookup / the survey's per domain): {cpu_ratio:.2f}")


if __name__ == "__main__":
    main()
