"""CZDS files with real-world quirks, and files that are damaged, through the import and the
candidate query."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib

import polars as pl
import pytest

from survey_assets.sources import candidates as C
from survey_assets.sources import czds
from survey_assets.sources.config import ConfigError, Source, SourcesConfig, load_sources
from survey_assets.sources.czds import read_czds
from survey_assets.sources.importer import import_day
from survey_assets.sources.records import ImportStats, SourceError

DAY = dt.date(2026, 11, 1)
NOW = dt.datetime(2026, 11, 1, 6, tzinfo=dt.UTC)

QUIRKY = "\n".join(
    [
        "example.\t86400\tin\tsoa\ta.nic.example. hostmaster.nic.example. 1 1800 900 604800 86400",
        "$ORIGIN example.",  # a directive that does not belong in a CZDS file
        "",  # a blank line
        "example.\t86400\tin\tns\ta.nic.example.",  # NS at the apex: not a delegation
        "BIG.EXAMPLE.\t172800\tIN\tNS\tNS1.PROVIDER.NET.",  # upper case
        "big.example.\t172800\tin\tns\tns2.provider.net.",
        "a\\.b.example.\t172800\tin\tns\tns1.provider.net.",  # an escaped dot inside a label
        "\\065bc.example.\t172800\tin\tns\tns1.provider.net.",  # \DDD escape: "Abc"
        "glued.example.\t172800\tin\tns\tns1.glued.example.",
        "ns1.glued.example.\t172800\tin\ta\t192.0.2.1",  # glue below a delegation
        "ns1.glued.example.\t172800\tin\taaaa\t2001:db8::1",
        "big.example.\t86400\tin\tds\t12345 13 2 " + "ab" * 32,
        "orphan.example.\t86400\tin\tds\t4321 13 2 " + "cd" * 32,  # DS with no NS
        "intruder.other.\t172800\tin\tns\tns1.provider.net.",  # another TLD's name
        "this is not a record",
        "weird.example.\t172800\tin\tfoobar\tsomething",  # an unknown type
        "bad..example.\t172800\tin\tns\tns1.provider.net.",  # an empty label
        ("x" * 64) + ".example.\t172800\tin\tns\tns1.provider.net.",  # a label that is too long
        "padded.example.          \t172800\tin\tns\tns1.provider.net.",  # padding before the tab
        "*.example.\t172800\tin\tns\tns1.provider.net.",  # a wildcard owner
        "xn--bcher-kva.example.\t172800\tin\tns\tns1.provider.net.",  # an IDN A-label
    ]
)


def _write(folder, name: str, text: str, compress: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = (text + "\n").encode()
    (folder / name).write_bytes(gzip.compress(data) if compress else data)


def _config(tmp_path) -> SourcesConfig:
    return SourcesConfig(
        tmp_path / "sources.toml",
        (Source("czds", "czds", str(tmp_path / "czds")),),
        ("example",),
    )


@pytest.mark.parametrize("block", [czds.BLOCK, 100])
def test_quirky_file_keeps_the_good_lines_and_counts_the_bad(tmp_path, monkeypatch, block):
    """Also read in blocks of ~100 bytes: lines cut at block ends must come out whole."""
    monkeypatch.setattr(czds, "BLOCK", block)
    _write(tmp_path / "czds" / DAY.isoformat(), "example.txt.gz", QUIRKY)
    (result,) = import_day(_config(tmp_path), DAY, tmp_path / "lake", NOW)
    assert result.status == "ok"
    # The checksum is taken while reading: it must be the file's, not the text's.
    path = tmp_path / "czds" / DAY.isoformat() / "example.txt.gz"
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result.stats.lines == QUIRKY.count("\n") + 1
    bad = result.stats.bad
    assert bad["directive"] == 1 and bad["not_a_record"] == 1 and bad["unknown_type"] == 1
    assert bad["out_of_zone"] == 1 and bad["bad_name"] == 2
    assert result.stats.blank == 1
    assert any("intruder.other." in s for s in result.stats.samples["out_of_zone"])
    report = C.build_candidates(C.connect(("example",)), tmp_path / "lake", DAY)
    rows = {r["name"]: r for r in pl.read_parquet(report.path / "*.parquet").to_dicts()}
    assert set(rows) == {
        "big.example.", "a\\.b.example.", "abc.example.", "glued.example.", "padded.example.",
        "*.example.", "xn--bcher-kva.example.",
    }  # fmt: skip
    assert rows["big.example."]["ns"] == ["ns1.provider.net.", "ns2.provider.net."]
    assert rows["big.example."]["ds"] == ["12345 13 2 " + "ab" * 32]
    assert rows["glued.example."]["glue"] == [
        "ns1.glued.example. A 192.0.2.1",
        "ns1.glued.example. AAAA 2001:db8::1",
    ]
    assert rows["abc.example."]["suffix"] == "example."
    assert report.anomalies["apex_ns"] == 1 and report.anomalies["ds_without_ns"] == 1
    assert rows["big.example."]["provenance"] == [
        {"source": "czds", "first_seen": DAY, "last_seen": DAY}
    ]


def test_plain_file_and_public_suffix_rules(tmp_path):
    """A delegation below a multi-label public suffix counts; the suffix itself does not."""
    text = "\n".join(
        [
            "uk.\t86400\tin\tsoa\tns.uk. h.uk. 1 1 1 1 1",
            "co.uk.\t172800\tin\tns\tns1.nic.uk.",  # a public suffix, not a candidate
            "example.co.uk.\t172800\tin\tns\tns1.provider.net.",  # below co.uk: a candidate
            "example.uk.\t172800\tin\tns\tns1.provider.net.",  # below uk: a candidate
        ]
    )
    _write(tmp_path / "czds" / DAY.isoformat(), "uk.txt", text, compress=False)
    (result,) = import_day(_config(tmp_path), DAY, tmp_path / "lake", NOW)
    assert result.stats.lines == 4 and result.stats.blank == 0
    report = C.build_candidates(C.connect(), tmp_path / "lake", DAY)
    names = set(pl.read_parquet(report.path / "*.parquet")["name"])
    assert names == {"example.co.uk.", "example.uk."}


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_gzip_fails_that_file_only_and_keeps_yesterday(tmp_path, damage):
    folder = tmp_path / "czds"
    good = "example.\t1\tin\tsoa\ta. b. 1 1 1 1 1\nalpha.example.\t1\tin\tns\tns.provider.net.\n"
    _write(folder / DAY.isoformat(), "example.txt.gz", good)
    _write(folder / DAY.isoformat(), "other.txt.gz", good.replace("example", "other"))
    config = _config(tmp_path)
    lake = tmp_path / "lake"
    import_day(config, DAY, lake, NOW)
    before = pl.read_parquet(
        lake / "raw_zone_lists" / f"date={DAY}" / "source=czds" / "*" / "*.parquet"
    )
    nxt = DAY + dt.timedelta(days=1)
    blob = gzip.compress((good * 2000).encode())
    broken = blob[: len(blob) // 2] if damage == "truncated" else b"\x1f\x8b" + b"\x00garbage" * 100
    (folder / nxt.isoformat()).mkdir(parents=True)
    (folder / nxt.isoformat() / "example.txt.gz").write_bytes(broken)
    _write(
        folder / nxt.isoformat(),
        "other.txt.gz",
        good.replace("example", "other").replace("alpha", "beta"),
    )
    results = {r.feed: r for r in import_day(config, nxt, lake, NOW)}
    assert results["example.txt.gz"].status == "failed"
    assert "example.txt.gz" in results["example.txt.gz"].error
    assert results["other.txt.gz"].status == "ok"
    after = pl.read_parquet(
        lake / "raw_zone_lists" / f"date={DAY}" / "source=czds" / "*" / "*.parquet"
    )
    assert before.equals(after)  # the previous day is untouched
    report = C.build_candidates(C.connect(("example", "other")), lake, nxt)
    names = set(pl.read_parquet(report.path / "*.parquet")["name"])
    assert names == {"alpha.example.", "beta.other."}  # example falls back to yesterday's copy
    assert not list(lake.rglob("*.tmp")) and not list((lake / ".staging").glob("*"))


def test_a_line_without_end_fails_that_file(tmp_path):
    """A file that is not a zone file (here a megabyte with no newline) fails with its name,
    before it becomes a block without bound."""
    path = tmp_path / "example.txt.gz"
    path.write_bytes(
        gzip.compress(b"example.\t1\tin\tsoa\ta. b. 1 1 1 1 1\n" + b"x" * (czds.MAX_LINE + 1))
    )
    with pytest.raises(SourceError, match="example.txt.gz: damaged file: a line longer than"):
        list(read_czds(path, "example.", ImportStats(), as_rrsets=True))


def test_file_for_another_zone_is_refused(tmp_path):
    path = tmp_path / "example.txt.gz"
    path.write_bytes(
        gzip.compress(b"other.\t1\tin\tsoa\ta. b. 1 1 1 1 1\nx.other.\t1\tin\tns\tns.\n")
    )
    with pytest.raises(SourceError, match="example.txt.gz.*other.*example"):
        list(read_czds(path, "example.", ImportStats()))


def test_sources_file_errors_name_the_problem(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[source]]\nname = "x"\nkind = "ftp"\nlocation = "/tmp"\n')
    with pytest.raises(ConfigError, match="s.toml: source #1 \\(x\\): kind 'ftp'"):
        load_sources(path, {})
    path.write_text('[[source]]\nname = "x"\nkind = "czds"\nlocation = "{nowhere}/x"\n')
    with pytest.raises(ConfigError, match="unknown variable 'nowhere'"):
        load_sources(path, {})


def test_the_lab_sources_file_declares_every_kind():
    from survey_assets.lab.sources import LAB_SOURCES
    from survey_assets.settings import PROJECT_ROOT

    config = load_sources(
        PROJECT_ROOT / "config" / "sources.lab.toml",
        {"downloads": "/d", "lab_tld_server": "127.53.1.1@53"},
    )
    assert {s.kind for s in config.sources} == {"czds", "zonefile", "axfr", "list"}
    assert {(s.name, s.kind) for s in config.sources} == {(s.name, s.kind) for s in LAB_SOURCES}


def test_duckdb_reads_names_with_escapes_as_dns_names():
    con = C.connect()
    got = con.execute(
        "SELECT dns_parent(?), dns_parent(?)", [r"a\.b.example.", r"x\\.y.example."]
    ).fetchone()
    assert got == ("example.", "y.example.")
