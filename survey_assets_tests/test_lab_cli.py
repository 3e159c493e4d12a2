"""The `survey lab` commands, run as a user would: the installed script in a subprocess."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from survey_assets.lab import sources
from survey_assets.lab import world as W
from survey_assets.lab.dnsserver import server_specs
from survey_assets_tests.conftest import free_port

SURVEY = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "survey")
RESOLVER = W.RESOLVER_ADDRESS
SERVE_DATE = "2026-11-03"
FILES_DATE = "2026-11-06"  # day 5: the passive-DNS list's first publication
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
INFO_KEYS = {"resolver", "trust_anchor", "smtp_port", "dns_port", "truth", "zones_dir"}
DOMAIN_KEYS = {"kind", "name", "dnssec", "reasons", "dane", "rollover"}


# --- helpers ---------------------------------------------------------------------------------------
def env(tmp: Path) -> dict[str, str]:
    """The caller's environment with the data directory moved out of the project."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("SURVEY_")}
    out["SURVEY_DATA_DIR"] = str(tmp / "data")
    return out


def run(tmp: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SURVEY, *args], capture_output=True, text=True, timeout=timeout, env=env(tmp)
    )


def bindable(address: str, port: int) -> bool:
    """Nothing listens on address:port (UDP, and TCP ignoring TIME_WAIT leftovers)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((address, port))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind((address, port))
            t.listen(1)
    except OSError:
        return False
    return True


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def ask(port: int, name: str = "mx1.bigdane.lab-net.", rdtype: str = "A", tcp=False):
    q = dns.message.make_query(name, rdtype, want_dnssec=True)
    if tcp:
        return dns.query.tcp(q, RESOLVER, port=port, timeout=2)
    return dns.query.udp(q, RESOLVER, port=port, timeout=2)


class Served:
    """A `survey lab serve` process and the JSON line it printed."""

    def __init__(self, proc: subprocess.Popen, info: dict, dns_port: int, smtp_port: int):
        self.proc, self.info = proc, info
        self.dns_port, self.smtp_port = dns_port, smtp_port


def start_serve(tmp: Path, workdir: Path, dns_port: int, smtp_port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            SURVEY, "lab", "serve", "--scale", "tiny", "--date", SERVE_DATE,
            "--workdir", str(workdir), "--dns-port", str(dns_port), "--smtp-port", str(smtp_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(tmp),
    )  # fmt: skip


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            return proc.stdout.readline()
        if proc.poll() is not None:
            break
    stderr = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
    raise AssertionError(f"no JSON line from survey lab serve (rc={proc.poll()}): {stderr}")


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("serve")
    dns_port, smtp_port = free_port(RESOLVER), free_port("127.25.1.1")
    proc = start_serve(tmp, tmp / "lab", dns_port, smtp_port)
    try:
        line = read_line(proc, START_TIMEOUT)
        yield Served(proc, json.loads(line), dns_port, smtp_port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- bad arguments ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "named"),
    [(["--scale", "huge"], "'huge'"), (["--date", "2026-13-01"], "2026-13-01")],
    ids=["scale", "date"],
)
def test_serve_rejects_bad_arguments(tmp_path: Path, args: list[str], named: str) -> None:
    done = run(tmp_path, "lab", "serve", *args, "--workdir", str(tmp_path / "lab"), timeout=20)
    assert done.returncode != 0
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    # click puts a usage hint above it; the error itself is one line that names the value
    errors = [line for line in error_lines(done.stderr) if line.startswith("Error")]
    assert len(errors) == 1, done.stderr
    assert named in errors[0], done.stderr
    assert not (tmp_path / "lab").exists(), "a rejected command must not write anything"


# --- serving ---------------------------------------------------------------------------------------
def test_serve_prints_one_json_line(served: Served) -> None:
    info = served.info
    assert set(info) >= INFO_KEYS, info
    assert info["dns_port"] == served.dns_port and info["smtp_port"] == served.smtp_port
    assert info["resolver"] == f"{RESOLVER}@{served.dns_port}"
    anchor, truth, zones = Path(info["trust_anchor"]), Path(info["truth"]), Path(info["zones_dir"])
    assert anchor.is_file() and truth.is_file() and zones.is_dir()
    assert SERVE_DATE in truth.name and zones.name == SERVE_DATE
    ds = [line.split() for line in anchor.read_text().splitlines() if line.strip()]
    assert ds and all(f[0] == "." and f[3] == "DS" for f in ds)
    assert any(p.name.endswith(".txt.gz") for p in zones.glob("czds/*"))
    rows = [json.loads(line) for line in truth.read_text().splitlines()]
    assert any(r["kind"] == "domain" for r in rows)


def test_serve_answers_at_the_resolver(served: Served) -> None:
    for tcp in (False, True):
        r = ask(served.dns_port, tcp=tcp)
        assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.RA
        assert any(rrset.rdtype == dns.rdatatype.A for rrset in r.answer), r.to_text()
    # the served date is the one asked for
    r = ask(served.dns_port, "lab-secure.", "SOA")
    soa = [rrset for rrset in r.answer if rrset.rdtype == dns.rdatatype.SOA]
    assert soa and str(soa[0][0].serial).startswith(SERVE_DATE.replace("-", ""))


def test_second_serve_on_the_same_ports_fails_cleanly(served: Served, tmp_path: Path) -> None:
    second = start_serve(tmp_path, tmp_path / "lab2", served.dns_port, served.smtp_port)
    try:
        rc = second.wait(timeout=START_TIMEOUT)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    stdout, stderr = second.stdout.read(), second.stderr.read()
    assert rc != 0
    assert stdout == "", "a server that failed to start must not print its info line"
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert re.search(rf"127\.53\.\d+\.\d+:{served.dns_port}\b", lines[0]), lines[0]
    # the first one is untouched and still answers on UDP and TCP
    assert served.proc.poll() is None
    for tcp in (False, True):
        assert ask(served.dns_port, tcp=tcp).rcode() == dns.rcode.NOERROR


def test_smtp_clash_releases_the_dns_sockets(served: Served, tmp_path: Path) -> None:
    """DNS binds first: when the SMTP port clashes, every DNS socket must be let go."""
    dns_port = free_port(RESOLVER)
    second = start_serve(tmp_path, tmp_path / "lab3", dns_port, served.smtp_port)
    try:
        rc = second.wait(timeout=START_TIMEOUT)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    stderr = second.stderr.read()
    assert rc != 0
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    assert re.search(rf"127\.25\.\d+\.\d+:{served.smtp_port}\b", lines[0]), lines[0]
    world = W.World(W.DEFAULT_SEED, "tiny", dt.date.fromisoformat(SERVE_DATE))
    taken = [s.address for s in server_specs(world) if not bindable(s.address, dns_port)]
    assert taken == []
    assert ask(served.dns_port).rcode() == dns.rcode.NOERROR


def test_sigterm_stops_serve_and_frees_the_ports(served: Served) -> None:
    """Runs after the others in this module: it ends the served process."""
    started = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    rc = served.proc.wait(timeout=STOP_TIMEOUT)
    assert rc == 0, served.proc.stderr.read()
    assert time.monotonic() - started < STOP_TIMEOUT
    world = W.World(W.DEFAULT_SEED, "tiny", dt.date.fromisoformat(SERVE_DATE))
    addresses = [s.address for s in server_specs(world)]
    assert RESOLVER in addresses
    assert [a for a in addresses if not bindable(a, served.dns_port)] == []
    assert bindable("127.25.1.1", served.smtp_port)


# --- zone files and truth ------------------------------------------------------------------------------
def czds_checks(path: Path, tld: str) -> None:
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines(keepends=True)
    assert lines, path
    origin = dns.name.from_text(f"{tld}.")
    ns_owners = set()
    for n, line in enumerate(lines):
        assert line.endswith("\n") and not line.endswith("\r\n"), line
        fields = line[:-1].split("\t")
        assert len(fields) == 5, f"{path.name}:{n + 1}: {line!r}"
        owner, ttl, klass, rtype, rdata = fields
        assert klass == "in", line
        assert ttl.isdigit(), line
        assert rtype == rtype.lower() and dns.rdatatype.from_text(rtype), line
        if tld == "lab-jump":  # documented quirk: owners padded with spaces before the tab
            assert len(owner) >= 40 and owner == owner.rstrip().ljust(len(owner)), line
            owner = owner.rstrip()
            assert owner == owner.lower(), line
        elif tld == "lab-fade":  # documented quirk: owners in upper case
            assert owner == owner.upper() and owner != owner.lower(), line
        else:
            assert owner == owner.lower() and owner.strip() == owner, line
        assert owner.endswith("."), line
        name = dns.name.from_text(owner)
        assert name.is_subdomain(origin), line
        rdtype = dns.rdatatype.from_text(rtype)
        dns.rdata.from_text(dns.rdataclass.IN, rdtype, rdata)  # the data parses
        if n == 0:
            assert (name, rdtype) == (origin, dns.rdatatype.SOA), "a zone file starts with its SOA"
        if rdtype == dns.rdatatype.NS and name != origin:
            ns_owners.add(name)
    if tld != "lab-net":
        world = W.World(W.DEFAULT_SEED, "tiny", dt.date.fromisoformat(FILES_DATE))
        assert ns_owners == set(sources.delegations(world, tld))


def test_zonefiles_are_reproducible_czds_files(tmp_path: Path) -> None:
    outs = [tmp_path / "a", tmp_path / "b"]
    reports = []
    for out in outs:
        done = run(tmp_path, "lab", "zonefiles", "--date", FILES_DATE, "--out", str(out))
        assert done.returncode == 0, done.stderr
        reports.append(json.loads(done.stdout))
    assert reports[0]["files"] == reports[1]["files"]
    names = sorted(str(p.relative_to(outs[0])) for p in outs[0].rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(outs[1])) for p in outs[1].rglob("*") if p.is_file())
    assert names == sorted(reports[0]["files"]), "the report lists exactly the files written"
    czds = {t.label for t in (*W.TLDS, W.INFRA_TLD) if t.source == "czds"}
    assert {n for n in names if n.endswith(".txt.gz")} == {f"czds/{t}.txt.gz" for t in czds}
    assert "passive-dns/passive-dns.txt" in names  # published on this date
    assert "registry-files/lab-optout.zone.gz" in names
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    for tld in sorted(czds):
        czds_checks(outs[0] / "czds" / f"{tld}.txt.gz", tld)


def test_truth_writes_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "truth.jsonl"
    done = run(tmp_path, "lab", "truth", "--date", FILES_DATE, "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert report["rows"] == len(rows) > 0
    domains = [r for r in rows if r["kind"] == "domain"]
    assert domains
    for row in domains:
        assert set(row) >= DOMAIN_KEYS, row
        assert row["name"].endswith(".") and isinstance(row["reasons"], list)
    assert len({r["name"] for r in domains}) == len(domains)
    assert {r["kind"] for r in rows} >= {"domain", "nameserver"}


def test_a_demo_refuses_a_data_directory_of_another_world(tmp_path):
    """Days of two scales in one lake would fail the warehouse's spike checks, rightly: the
    demo says so before any work, naming the directory and both worlds."""
    import click

    from survey_assets.demo import run_demo
    from survey_assets.settings import Settings

    settings = Settings(data_dir=tmp_path)
    (tmp_path / "demo-world.json").write_text(json.dumps({"scale": "demo", "seed": 1}))
    with pytest.raises(click.UsageError, match=f"{tmp_path}.*'scale': 'demo'.*'scale': 'tiny'"):
        run_demo(settings, start=W.LAB_EPOCH, days=1, scale="tiny")
    assert not (tmp_path / "dagster").exists()  # nothing started


def test_the_demo_serves_each_day_from_a_lab_process(tmp_path):
    """`make demo` runs each day against `lab_process`; a decorator lost in a change once made
    it a plain generator, and the demo failed on its first day."""
    from survey_assets.demo import lab_process
    from survey_assets.settings import Settings

    settings = Settings(
        data_dir=tmp_path, lab_dns_port=free_port(RESOLVER), lab_smtp_port=free_port("127.25.1.1")
    )
    with lab_process(settings, "tiny", W.LAB_EPOCH) as info:
        reply = dns.query.udp(dns.message.make_query("lab-cc.", "SOA"), info["resolver_address"],
                              port=info["dns_port"], timeout=5)  # fmt: skip
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer
