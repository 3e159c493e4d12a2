"""RFC 1035 master files: the lab writes them as a registry would, the sources layer reads them.

The round trip compares what is read back with the lab's own zone data, normalized by the same
`records.clean`; hand-written files exercise the format's corners one by one. Every test runs
both through the reader's fast path for plain lines and with that path switched off, so the
two parsers must agree.
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import dns.name
import dns.rdatatype
import polars as pl
import pytest

from survey_assets.lab.authority import LabData
from survey_assets.lab.dnsserver import zone_rrsets
from survey_assets.lab.masterfiles import SOA_FIELDS, masterfile_lines, write_masterfile
from survey_assets.lab.world import World
from survey_assets.sources import masterfile as M
from survey_assets.sources.records import SCHEMA, ImportStats, SourceError, clean

WORLD = World(1, "tiny", dt.date(2026, 11, 9))


@pytest.fixture(scope="module")
def data() -> LabData:
    return LabData(WORLD)


@pytest.fixture(params=["fast", "tokenizer"])
def path_kind(request, monkeypatch) -> str:
    """Run a test with the plain-line fast path, and again with every line tokenized."""
    if request.param == "tokenizer":
        monkeypatch.setattr(M._Reader, "_simple", lambda self, line: M._SLOW)
    return request.param


def read_all(path: Path, zone: str, stats: ImportStats | None = None) -> pl.DataFrame:
    stats = stats if stats is not None else ImportStats()
    frames = list(M.read_masterfile(path, zone, stats))
    return pl.concat(frames) if frames else pl.DataFrame(schema=SCHEMA)


def rows(frame: pl.DataFrame) -> set[tuple[str, str, str]]:
    return set(frame.iter_rows())


def expected_rows(data: LabData, tld: str) -> tuple[set, ImportStats]:
    """The lab's zone as the sources layer keeps it: zone_rrsets through `records.clean`."""
    zone = data.zone(dns.name.from_text(f"{tld}."))
    owners, rtypes, rdatas = [], [], []
    for rrset in zone_rrsets(data, zone):
        for rdata in rrset:
            owners.append(rrset.name.to_text())
            rtypes.append(dns.rdatatype.to_text(rrset.rdtype).lower())
            rdatas.append(rdata.to_text())
    stats = ImportStats()
    frame = pl.DataFrame({"owner": owners, "rtype": rtypes, "rdata": rdatas}, schema=SCHEMA)
    return rows(clean(frame, f"{tld}.", stats)), stats


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- (a) round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize("tld", ["lab-optout", "lab-secure"])  # lab-secure has glue
@pytest.mark.parametrize("suffix", [".zone.gz", ".zone"])
def test_round_trip(tmp_path, data, path_kind, tld, suffix):
    path = tmp_path / f"{tld}{suffix}"
    count = write_masterfile(data, tld, path)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == suffix.endswith(".gz")
    want, want_stats = expected_rows(data, tld)
    stats = ImportStats()
    got = read_all(path, f"{tld}.", stats)
    assert rows(got) == want
    assert got.height == len(want)
    assert stats.records == want_stats.records == len(want)
    assert stats.types == want_stats.types
    assert sum(stats.types.values()) == count
    assert not stats.bad
    text = gzip.decompress(path.read_bytes()) if suffix.endswith(".gz") else path.read_bytes()
    assert stats.lines == text.count(b"\n")
    if tld == "lab-secure":
        assert {"a", "ns", "ds", "soa"} <= set(got["rtype"])


def test_written_file_looks_like_a_registry_file(tmp_path, data):
    path = tmp_path / "lab-optout.zone"
    write_masterfile(data, "lab-optout", path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith(";")
    assert "$ORIGIN lab-optout." in lines and "$TTL 3600" in lines
    soa = next(i for i, line in enumerate(lines) if "\tSOA\t" in line)
    assert lines[soa].startswith("@\tIN\tSOA\t") and lines[soa].endswith("(")
    fields = [line.split(";")[1].strip() for line in lines[soa + 1 : soa + 6]]
    assert fields == list(SOA_FIELDS)
    assert lines[soa + 1].split()[0] == WORLD.date.strftime("%Y%m%d") + "01"
    records = [line for line in lines if "\tIN\t" in line]
    assert all(line.split("\t")[2].isupper() for line in records)
    assert any(line.startswith("\tIN\tNS\t") for line in records)  # blank owner: same as before
    delegations = [line for line in records if "\tNS\t" in line and line[0] not in "\t@"]
    assert delegations and all(not line.split("\t")[0].endswith(".") for line in delegations)
    assert all(line.split("\t")[-1].endswith(".") for line in delegations)  # rdata absolute


# --- (b) hand-written files ----------------------------------------------------------------------

HAND = r"""; a registry's file, written by hand
$TTL 1h
$ORIGIN Lab-X.
@   IN  SOA ns1.nic.lab-net. hostmaster ( 2026110901 ; serial
        7200 ; refresh
        3600 3600 ; retry and expire on one line
        60 )      ; minimum, after the parenthesis
    IN  NS  ns1.nic.lab-net.
    NS  ns2 ; relative to the origin: ns2.lab-x.

WWW.Foo 300 IN A 192.0.2.1
        IN 300 AAAA 2001:db8::1
txt IN TXT "a ; not a comment ( nor a parenthesis" "b"
    IN TXT "unclosed ( in quotes" ; and ( in a comment
a\.b  NS ns1.nic.lab-net.
\065bc NS NS1.Example.
signed 3600 IN DS 12345 13 2 (
        A61B416C5BF198A9EE805B397293CE35
        097973B1844A55357CE51E9037ECCA43 ) ; digest over two lines
$INCLUDE other.zone
garbage ( never closed
%%% !!!
justaname
$ORIGIN sub
deep NS ns1.nic.lab-net.
 NS @
x 3600 CH NS ns1.
y IN FOO bar baz
z IN TYPE2 \# 5 036e733100
w IN TYPE65280 \# 4 01020304
$ORIGIN lab-x.
last.lab-x. IN NS ns1.nic.lab-net.
out.other. IN NS ns1.nic.lab-net.
"""


def test_hand_written_file(tmp_path, path_kind):
    stats = ImportStats()
    got = read_all(write(tmp_path / "hand.zone", HAND), "lab-x.", stats)
    digest = "a61b416c5bf198a9ee805b397293ce35097973b1844a55357ce51e9037ecca43"
    assert rows(got) == {
        ("lab-x.", "soa", "ns1.nic.lab-net. hostmaster.Lab-X. 2026110901 7200 3600 3600 60"),
        ("lab-x.", "ns", "ns1.nic.lab-net."),
        ("lab-x.", "ns", "ns2.Lab-X."),
        ("www.foo.lab-x.", "a", "192.0.2.1"),
        ("www.foo.lab-x.", "aaaa", "2001:db8::1"),
        ("a\\.b.lab-x.", "ns", "ns1.nic.lab-net."),
        ("abc.lab-x.", "ns", "NS1.Example."),
        ("signed.lab-x.", "ds", f"12345 13 2 {digest}"),
        ("deep.sub.lab-x.", "ns", "ns1.nic.lab-net."),
        ("deep.sub.lab-x.", "ns", "sub.Lab-X."),
        ("z.sub.lab-x.", "ns", "ns1."),
        ("last.lab-x.", "ns", "ns1.nic.lab-net."),
    }
    assert got.height == 12
    assert stats.lines == HAND.count("\n")
    assert stats.blank == 2  # the header comment and the empty line
    assert stats.records == 12
    assert stats.types["txt"] == 2 and stats.types["type65280"] == 1
    assert dict(stats.bad) == {
        "directive": 1,
        "not_a_record": 3,
        "bad_class": 1,
        "unknown_type": 1,
        "out_of_zone": 1,
    }
    assert stats.samples["directive"] == ["$INCLUDE other.zone"]
    assert stats.samples["not_a_record"] == ["garbage ( never closed", "%%% !!!", "justaname"]
    assert stats.samples["bad_class"] == ["x 3600 CH NS ns1."]
    assert stats.samples["unknown_type"][0].split("\t")[1] == "foo"


@pytest.mark.parametrize(
    "line, cls",
    [
        ("bad 3600 IN A 300.1.1.1", "not_a_record"),
        ("bad IN NS", "not_a_record"),
        ("bad 99999999999 IN NS ns1.", "not_a_record"),
        ("bad IN IN NS ns1.", "not_a_record"),
        ("bad IN AXFR x", "not_a_record"),
        ("bad IN NS ns1.lab-x. extra", "not_a_record"),
        ("bad IN NS ) ns1.", "not_a_record"),
        ('"quoted" IN NS ns1.', "not_a_record"),
        ("a..b IN NS ns1.", "bad_name"),
        (f"{'x' * 64} IN NS ns1.", "bad_name"),
        ("$GENERATE 1-10 h$ A 192.0.2.$", "directive"),
        ("ok HS NS ns1.", "bad_class"),
        ("ok IN NS x..y.", "not_a_record"),
        (f"ok IN NS {'x' * 64}.", "not_a_record"),
    ],
)
def test_bad_lines_are_counted_and_skipped(tmp_path, path_kind, line, cls):
    text = f"$ORIGIN lab-x.\n@ IN SOA a. b. 1 2 3 4 5\n{line}\nafter IN NS ns1.\n"
    stats = ImportStats()
    got = read_all(write(tmp_path / "bad.zone", text), "lab-x.", stats)
    assert ("after.lab-x.", "ns", "ns1.") in rows(got)
    assert dict(stats.bad) == {cls: 1}
    assert stats.lines == 4


def test_blank_owner_after_a_bad_name_is_bad_too(tmp_path, path_kind):
    text = "@ IN SOA a. b. 1 2 3 4 5\na..b IN NS ns1.\n IN NS ns2.\nok IN NS ns1.\n"
    stats = ImportStats()
    got = read_all(write(tmp_path / "z.zone", text), "lab-x.", stats)
    assert rows(got) == {("lab-x.", "soa", "a. b. 1 2 3 4 5"), ("ok.lab-x.", "ns", "ns1.")}
    assert stats.bad["bad_name"] == 2


def test_unclosed_parenthesis_loses_one_line(tmp_path, path_kind):
    body = "".join(f"d{i} IN NS ns1.\n" for i in range(300))
    text = f"@ IN SOA a. b. 1 2 3 4 5\nbroken IN NS ( ns1.\n{body}"
    stats = ImportStats()
    got = read_all(write(tmp_path / "z.zone", text), "lab-x.", stats)
    assert got.height == 301
    assert dict(stats.bad) == {"not_a_record": 1}
    assert stats.lines == 302


def test_large_file_is_read_in_batches(tmp_path, monkeypatch, path_kind):
    monkeypatch.setattr(M, "BATCH", 100)
    body = "".join(f"d{i} IN NS ns1.\n\tIN NS ns2.\n" for i in range(250))
    path = tmp_path / "z.zone.gz"
    path.write_bytes(gzip.compress(f"@ IN SOA a. b. 1 2 3 4 5\n{body}".encode()))
    stats = ImportStats()
    frames = list(M.read_masterfile(path, "lab-x.", stats))
    assert [f.height for f in frames] == [100] * 5 + [1]
    assert stats.records == 501 and stats.lines == 501


# --- (c) reproducible output ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lab-optout.zone.gz", "lab-optout.zone"])
def test_written_twice_is_byte_identical(tmp_path, data, name):
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    first = write_masterfile(data, "lab-optout", tmp_path / "1" / name)
    second = write_masterfile(LabData(WORLD), "lab-optout", tmp_path / "2" / name)
    assert first == second > 0
    assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()
    assert not list(tmp_path.rglob("*.tmp"))
    if name.endswith(".gz"):
        text = gzip.decompress((tmp_path / "1" / name).read_bytes()).decode()
        assert text == "".join(line for line, _ in masterfile_lines(data, "lab-optout"))


# --- (d) files that cannot be imported -----------------------------------------------------------


def test_truncated_gzip_names_the_file(tmp_path, data):
    good = tmp_path / "lab-optout.zone.gz"
    write_masterfile(data, "lab-optout", good)
    bad = tmp_path / "cut.zone.gz"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(SourceError, match=str(bad)):
        list(M.read_masterfile(bad, "lab-optout.", ImportStats()))


def test_garbage_gzip_and_missing_file_name_the_file(tmp_path):
    bad = tmp_path / "noise.zone.gz"
    bad.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    with pytest.raises(SourceError, match=str(bad)):
        list(M.read_masterfile(bad, "lab-x.", ImportStats()))
    missing = tmp_path / "missing.zone"
    with pytest.raises(SourceError, match=str(missing)):
        list(M.read_masterfile(missing, "lab-x.", ImportStats()))


def test_file_of_another_zone(tmp_path, data, path_kind):
    path = tmp_path / "lab-optout.zone"
    write_masterfile(data, "lab-optout", path)
    with pytest.raises(SourceError) as info:
        list(M.read_masterfile(path, "lab-secure.", ImportStats()))
    message = str(info.value)
    assert str(path) in message and "lab-optout." in message and "lab-secure." in message


def test_soa_below_the_zone_is_another_zone(tmp_path, path_kind):
    path = write(tmp_path / "z.zone", "$ORIGIN sub.lab-x.\n@ IN SOA a. b. 1 2 3 4 5\n")
    with pytest.raises(SourceError, match="sub.lab-x."):
        list(M.read_masterfile(path, "lab-x.", ImportStats()))


def test_file_without_soa(tmp_path, path_kind):
    path = write(tmp_path / "z.zone", "; nothing here\nname IN NS ns1.\n")
    with pytest.raises(SourceError, match=f"{path}.*no SOA"):
        list(M.read_masterfile(path, "lab-x.", ImportStats()))
