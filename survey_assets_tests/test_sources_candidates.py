"""The import's RRsets and the candidate merge: sets cut in two or out of order, buckets and their
mapping from one day to the next, a hash shared by two names."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil

import polars as pl
import pytest

from survey_assets.sources import candidates as C
from survey_assets.sources.config import Source, SourcesConfig
from survey_assets.sources.importer import import_day
from survey_assets.sources.records import SCHEMA, rrsets

DAY = dt.date(2026, 11, 1)
NOW = dt.datetime(2026, 11, 1, 6, tzinfo=dt.UTC)


def test_rrsets_join_each_run_sorted_and_distinct():
    frame = pl.DataFrame(
        [
            ("a.", "ns", "y."), ("a.", "ns", "x."), ("a.", "ds", "1"),  # out of order
            ("b.", "ns", "p."), ("b.", "ns", "p."),  # a record twice
            ("c.", "ns", "q."), ("c.", "ns", "s."), ("c.", "ns", "r."),  # three records
            ("a.", "ns", "z."),  # the owner again, further on: a second row
            ("d.", "a", "192.0.2.1"),
        ],
        schema=SCHEMA,
        orient="row",
    )  # fmt: skip
    got = rrsets(frame, counted=True)
    assert sorted(got.rows()) == [
        ("a.", "ds", "1", 1),
        ("a.", "ns", "x.\ny.", 2),
        ("a.", "ns", "z.", 1),
        ("b.", "ns", "p.", 1),
        ("c.", "ns", "q.\nr.\ns.", 3),
        ("d.", "a", "192.0.2.1", 1),
    ]
    assert rrsets(frame).columns == ["owner", "rtype", "rdata"]
    single = frame.head(1)
    assert rrsets(single).equals(single)


def _config(tmp_path, extra=("example",)) -> SourcesConfig:
    return SourcesConfig(
        tmp_path / "sources.toml",
        (
            Source("czds", "czds", str(tmp_path / "czds")),
            Source("names", "list", str(tmp_path / "names")),
        ),
        extra,
    )


def _zone(names: list[str], extra: str = "") -> str:
    lines = ["example.\t86400\tin\tsoa\ta.nic.example. h.nic.example. 1 1800 900 604800 86400"]
    for i, name in enumerate(names):
        lines.append(f"{name}\t172800\tin\tns\tns1.provider{i % 7}.net.")
        lines.append(f"{name}\t172800\tin\tns\tns2.provider{i % 7}.net.")
        if i % 5 == 0:
            lines.append(f"{name}\t86400\tin\tds\t{i} 13 2 {'ab' * 32}")
        if i % 9 == 0:
            lines.append(f"ns1.{name}\t172800\tin\ta\t192.0.2.{i % 250}")
    return "\n".join(lines) + "\n" + extra


def _write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()))


def _day(tmp_path, date: dt.date, names: list[str], listed: list[str], extra: str = "") -> None:
    _write(tmp_path / "czds" / date.isoformat() / "example.txt.gz", _zone(names, extra))
    if listed:
        _write(tmp_path / "names" / date.isoformat() / "names.txt.gz", "\n".join(listed) + "\n")


def _candidates(lake, date) -> pl.DataFrame:
    return pl.read_parquet(lake / "candidate_domains" / f"date={date}" / "*.parquet").sort("name")


def _build(lake, date, extra=("example",)) -> C.CandidateReport:
    return C.build_candidates(C.connect(extra), lake, date)


def _report(r: C.CandidateReport) -> tuple:
    return (r.rows, r.per_suffix, r.per_source, r.added, r.removed, r.added_sample,
            r.removed_sample, r.anomalies, r.feeds)  # fmt: skip


def test_sets_cut_in_two_and_capitals_are_merged(tmp_path):
    """An owner's NS records in two places of the file, with capitals and a repeat: one
    candidate, its NS set distinct, sorted, lower case; the list's name joins its provenance."""
    extra = "\n".join(
        [
            "split.example.\t172800\tin\tns\tNS9.Provider.NET.",
            "other.example.\t172800\tin\tns\tns1.provider.net.",
            "split.example.\t172800\tin\tns\tns0.provider.net.",
            "split.example.\t172800\tin\tns\tns9.provider.net.",
            "split.example.\t86400\tin\tds\t2 13 2 " + "cd" * 32,
            "other.example.\t86400\tin\tds\t1 13 2 " + "ef" * 32,
            "split.example.\t86400\tin\tds\t1 13 2 " + "cd" * 32,
        ]
    )
    _day(tmp_path, DAY, ["a.example."], ["www.split.example", "deep.in.other.example"], extra)
    import_day(_config(tmp_path), DAY, tmp_path / "lake", NOW)
    _build(tmp_path / "lake", DAY)
    rows = {r["name"]: r for r in _candidates(tmp_path / "lake", DAY).to_dicts()}
    split = rows["split.example."]
    assert split["ns"] == ["ns0.provider.net.", "ns9.provider.net."]
    assert split["ds"] == ["1 13 2 " + "cd" * 32, "2 13 2 " + "cd" * 32]
    assert split["sources"] == ["czds", "names"]
    assert [p["source"] for p in split["provenance"]] == ["czds", "names"]
    assert rows["other.example."]["sources"] == ["czds", "names"]


def _days(tmp_path) -> list[dt.date]:
    """Four days of a zone that grows and shrinks, and a weekly list."""
    sizes = [40, 130, 60, 75]
    days = [DAY + dt.timedelta(days=i) for i in range(len(sizes))]
    for i, (date, size) in enumerate(zip(days, sizes, strict=True)):
        names = [f"n{j}.example." for j in range(i * 10, i * 10 + size)]
        listed = (
            [f"host.l{j}.example" for j in range(0, 30)] + ["www.n45.example"] if i == 1 else []
        )
        _day(tmp_path, date, names, listed)
    return days


def test_buckets_give_what_one_bucket_gives(tmp_path, monkeypatch):
    """Many buckets, their count changing from day to day (the previous day's parts are read
    across), against one bucket: the same candidates and the same report."""
    days = _days(tmp_path)
    config = _config(tmp_path)
    for date in days:
        import_day(config, date, tmp_path / "lake", NOW)
    shutil.copytree(tmp_path / "lake", tmp_path / "one")
    one = {date: _report(_build(tmp_path / "one", date)) for date in days}
    monkeypatch.setattr(C, "BUCKET_ROWS", 9)
    monkeypatch.setattr(C, "BATCH_ROWS", 17)
    counts = set()
    for date in days:
        assert _report(_build(tmp_path / "lake", date)) == one[date], date
        assert _candidates(tmp_path / "lake", date).equals(_candidates(tmp_path / "one", date))
        counts.add(len(list((tmp_path / "lake" / "candidate_domains" / f"date={date}").iterdir())))
    assert len(counts) > 1  # the bucket count changed between days


def test_previous_day_in_another_layout(tmp_path, monkeypatch):
    """A previous day written in parts that are not today's buckets (an older layout) is sent
    through the buckets: nothing changes but the speed."""
    days = _days(tmp_path)[:2]
    for date in days:
        import_day(_config(tmp_path), date, tmp_path / "lake", NOW)
    _build(tmp_path / "lake", days[0])
    want = _report(_build(tmp_path / "lake", days[1]))
    expected = _candidates(tmp_path / "lake", days[1])
    folder = tmp_path / "lake" / "candidate_domains" / f"date={days[0]}"
    previous = _candidates(tmp_path / "lake", days[0])
    for part in folder.iterdir():
        part.unlink()
    for index, chunk in enumerate(previous.iter_slices(15)):  # three parts, by name
        chunk.write_parquet(folder / f"part-{index:04d}.parquet")
    monkeypatch.setattr(C, "BUCKET_ROWS", 9)
    assert _report(_build(tmp_path / "lake", days[1])) == want
    assert _candidates(tmp_path / "lake", days[1]).equals(expected)


def test_a_hash_shared_by_two_names_falls_back_to_names(tmp_path, monkeypatch):
    days = _days(tmp_path)[:2]
    for date in days:
        import_day(_config(tmp_path), date, tmp_path / "lake", NOW)
    shutil.copytree(tmp_path / "lake", tmp_path / "plain")
    want = [_report(_build(tmp_path / "plain", date)) for date in days]
    calls = []

    def colliding(names: pl.Expr) -> pl.Expr:
        calls.append(1)
        return names.str.len_bytes().cast(pl.UInt64)  # many names share a length

    monkeypatch.setattr(C, "name_hash", colliding)
    got = [_report(_build(tmp_path / "lake", date)) for date in days]
    assert calls and got == want
    for date in days:
        assert _candidates(tmp_path / "lake", date).equals(_candidates(tmp_path / "plain", date))


@pytest.mark.parametrize("rows", [0, 1, 499_999, 500_000, 500_001, 10**9])
def test_bucket_counts_are_powers_of_two(rows):
    count = C._bucket_count(rows)
    assert count & (count - 1) == 0 and count * C.BUCKET_ROWS >= rows
    assert count == 1 or (count // 2) * C.BUCKET_ROWS < rows


NAMES = [
    "foo.ck.", "bar.foo.ck.", "www.ck.", "a.www.ck.", "ck.",  # *.ck with !www.ck
    "x.kawasaki.jp.", "y.x.kawasaki.jp.", "city.kawasaki.jp.", "z.city.kawasaki.jp.",
    "example.co.uk.", "co.uk.", "uk.", "a.b.example.co.uk.",
    "example.com.", "a.b.example.com.", "com.",
    "a\\.b.example.", "\\065bc.example.", "x\\\\.y.example.", "*.example.", "example.",
    "xn--bcher-kva.example.", "deep.a\\.b.example.",
]  # fmt: skip


def test_suffix_test_is_the_same_in_polars_and_duckdb():
    from survey_assets.sources import sightings as S

    con = C.connect(("example",))
    suffixes = S.Suffixes(con)
    frame = pl.DataFrame({"name": NAMES})
    got = suffixes.flagged(frame).sort("name")
    con.register("names_frame", frame)
    want = pl.DataFrame(
        con.execute(
            f"SELECT name, suffix, cand FROM ({S._flagged('SELECT name FROM names_frame')})"
        ).fetchall(),
        schema=["name", "suffix", "cand"],
        orient="row",
    ).sort("name")
    assert got.equals(want.select(got.columns))
    assert set(got.filter("cand")["name"]) >= {"bar.foo.ck.", "www.ck.", "example.co.uk."}
    for zone in ("ck.", "kawasaki.jp.", "uk.", "example.", "com.", "co.uk."):
        below = frame.filter(pl.col("name").str.ends_with("." + zone))
        short = S._flag_children(below, zone, suffixes).sort("name")
        assert short.equals(suffixes.flagged(below).sort("name")), zone
