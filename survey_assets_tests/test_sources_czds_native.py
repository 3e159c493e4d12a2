"""The compiled CZDS reader against the polars reader, the reference for every rule: blocks of
lines drawn from real-world quirks must give the same records and the same counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survey_assets.sources import czds, czds_native
from survey_assets.sources.records import RRSET_SEPARATOR, SAMPLES

ZONE = "example."
PATH = Path("example.txt")

_label = st.sampled_from(
    ["a", "big", "ns1", "xn--bcher-kva", "*", "_dmarc", "Mixed", "UP", "x" * 63, "x" * 64]
    + ["a\\.b", "\\065bc", "sp ace", "semi;colon", "caf\u00e9", "", "tab\\009"]
)
_owner = st.one_of(
    st.lists(_label, min_size=1, max_size=3).map(lambda ls: ".".join(ls) + "." + ZONE),
    st.sampled_from(
        [ZONE, "EXAMPLE.", "other.", "intruder.other.", "no-dot.example", ".example.", "."]
        + ["padded.example.   ", " lead.example.", "(" * 3 + ".example.", ("y" * 60 + ".") * 5]
    ),
)
_type = st.sampled_from(
    ["ns", "ns", "ds", "a", "aaaa", "rrsig", "nsec3", "NS", "Ds", "type65534", "TYPE12"]
    + ["foobar", "n s", " ns", "", "soa", "txt", "type", "x" * 20]
)
_class = st.sampled_from(["in", "in", "in", "IN", "In", "ch", "", "in "])
_rdata = st.sampled_from(
    ["ns1.provider.net.", "NS2.Provider.NET.", "12345 13 2 " + "ab" * 32, "192.0.2.1"]
    + ["2001:db8::1", "a b  c", "", "caf\u00e9.", "x\ty", "\\009"]
)


@st.composite
def _line(draw, index: int) -> str:
    kind = draw(st.sampled_from(["record"] * 6 + ["odd", "blank"]))
    if kind == "blank":
        return draw(st.sampled_from(["", "   ", "\t\t\t\t"]))
    if kind == "odd":
        return draw(
            st.sampled_from(
                ["$ORIGIN example.", "$TTL 3600", "this is not a record", "a.example.\t1\tin"]
                + ["a.example.\t1\tin\tns\tns{}.\t6th field", "cr.example.\t1\tin\tns\tns{}.\r"]
                + ["; a comment", "a.example. 1 in ns ns1."]
            )
        ).format(index)
    owner, rtype, cls, rdata = draw(_owner), draw(_type), draw(_class), draw(_rdata)
    # Each record distinct (a duplicate is only ever the line before, drawn below): records
    # are then counted the same however the two readers cut their runs.
    rdata = f"{rdata} {index}" if rdata and draw(st.booleans()) else rdata + str(index)
    return "\t".join([owner, draw(st.sampled_from(["172800", "", "x"])), cls, rtype, rdata])


@st.composite
def _block(draw) -> bytes:
    lines = ["example.\t86400\tin\tsoa\ta.nic.example. h.example. 1 1 1 1 1"]
    for index in range(draw(st.integers(0, 40))):
        lines.append(lines[-1] if draw(st.integers(0, 9)) == 0 else draw(_line(index)))
    text = "\n".join(lines)
    ending = draw(st.sampled_from(["\n", ""]))
    raw = (text + ending).encode()
    if draw(st.booleans()):  # a byte that is not UTF-8 somewhere
        at = draw(st.integers(len(lines[0]) + 1, max(len(lines[0]) + 1, len(raw) - 1)))
        raw = raw[:at] + b"\xff" + raw[at:]
    return raw


def _records(frame: pl.DataFrame) -> Counter:
    return Counter(
        (owner, rtype, record)
        for owner, rtype, rdata in frame.iter_rows()
        for record in rdata.split(RRSET_SEPARATOR)
    )


def test_the_compiled_reader_is_built():
    """`make test` builds it (`make native`); without it imports fall back to polars."""
    assert czds_native.available(), f"{czds_native.LIBRARY} is missing: run `make native`"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_block())
def test_the_compiled_reader_agrees_with_the_polars_reader(block):
    if not block.endswith(b"\n"):  # the blocks polars gets end in a newline
        block += b"\n"
    native, native_stats = czds._block_records(PATH, block, ZONE, True, as_rrsets=True)
    ref, ref_stats = czds._polars_block(block, ZONE, as_rrsets=True)
    assert _records(native) == _records(ref)
    for field in ("lines", "records", "blank", "types", "bad"):
        assert getattr(native_stats, field) == getattr(ref_stats, field), field
    # A sample stands for an RRset (its first record). The compiled reader's sets of bad lines
    # are runs of the lines it leaves to polars, so they may join sets the reference keeps
    # apart: its samples are some of the reference's.
    for cls, count in ref_stats.bad.items():
        got, want = native_stats.samples[cls], ref_stats.samples[cls]
        assert got and (set(got) <= set(want) if count <= SAMPLES else len(want) == SAMPLES)


def test_plain_lines_are_read_without_polars():
    """The fast path is taken: a clean block leaves no line to the polars reader, and a set's
    records come out distinct, sorted and in one row."""
    lines = [
        "example.\t86400\tin\tsoa\ta. b. 1 1 1 1 1",
        "Big.Example.\t1\tIN\tns\tns2.p.net.",
        "Big.Example.\t1\tIN\tns\tns1.p.net.",
        "Big.Example.\t1\tIN\tns\tns2.p.net.",
        "",
        "big.example.\t1\tin\tDS\t1 13 2 AB",
        "big.example.\t1\tin\trrsig\tNS 13 2 ...",
        "ns1.big.example.\t1\tin\ta\t192.0.2.1",
    ]
    read = czds_native.BlockReader(ZONE, czds.KNOWN_TYPES, czds.KEPT_TYPES).read(
        "\n".join(lines).encode()
    )
    assert read.odd_lines == 0 and read.lines == 8 and read.blank == 1 and read.records == 5
    assert read.types == Counter({"soa": 1, "ns": 3, "ds": 1, "rrsig": 1, "a": 1})
    assert read.frame.rows() == [
        ("example.", "soa", "a. b. 1 1 1 1 1"),
        ("big.example.", "ns", "ns1.p.net.\nns2.p.net."),
        ("big.example.", "ds", "1 13 2 AB"),
        ("ns1.big.example.", "a", "192.0.2.1"),
    ]
