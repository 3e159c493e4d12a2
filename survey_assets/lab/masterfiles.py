"""A TLD's zone as an RFC 1035 master file, the way a registry hands one out.

Unlike the one-record-a-line CZDS files, a master file uses the format's conveniences: a header
comment, `$ORIGIN` and `$TTL`, owner names relative to the origin (`@` for the apex), a blank
owner on lines that repeat the previous one, the SOA spread over several lines in parentheses
with a comment for each field, and DNSKEY and RRSIG records split over lines as BIND prints them.
Names inside rdata stay absolute. Output is byte-for-byte reproducible: the gzip header carries
no name and no time.
"""

from __future__ import annotations

import contextlib
import gzip
import io
from collections.abc import Iterator
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdatatype as T

from survey_assets.lab.authority import LabData
from survey_assets.lab.dnsserver import zone_rrsets

DEFAULT_TTL = 3600
INDENT = "\t\t\t\t"
SOA_FIELDS = ("serial", "refresh", "retry", "expire", "minimum")


def masterfile_name(tld: str, gz: bool = True) -> str:
    return f"{tld}.zone.gz" if gz else f"{tld}.zone"


def masterfile_lines(data: LabData, tld: str) -> Iterator[tuple[str, int]]:
    """The file's lines, each with the number of records it starts (0 or 1)."""
    origin = dns.name.from_text(f"{tld}.")
    zone = data.zone(origin)
    assert zone is not None, tld
    w = data.world
    yield f"; {origin.to_text()} zone, as the registry publishes it (RFC 1035 master file)\n", 0
    yield f"; survey lab world: seed {w.seed}, scale {w.scale}, date {w.date.isoformat()}\n", 0
    yield ";\n", 0
    yield f"$ORIGIN {origin.to_text()}\n", 0
    yield f"$TTL {DEFAULT_TTL}\n", 0
    previous: dns.name.Name | None = None
    for rrset in zone_rrsets(data, zone):
        type_text = T.to_text(rrset.rdtype).upper()
        ttl = "" if rrset.ttl == DEFAULT_TTL else f"{rrset.ttl}\t"
        for rdata in rrset:
            owner = "" if rrset.name == previous else _owner_text(rrset.name, origin)
            previous = rrset.name
            yield f"{owner}\t{ttl}IN\t{type_text}\t{_rdata_text(rdata)}\n", 1


def _owner_text(name: dns.name.Name, origin: dns.name.Name) -> str:
    if name == origin:
        return "@"
    if name.is_subdomain(origin):
        return name.relativize(origin).to_text()
    return name.to_text()


def _rdata_text(rdata: dns.rdata.Rdata) -> str:
    """Presentation text with absolute names; SOA, DNSKEY and RRSIG over several lines."""
    if rdata.rdtype == T.SOA:
        head = f"{rdata.mname.to_text()} {rdata.rname.to_text()} ("
        lines = [head]
        for field in SOA_FIELDS:
            lines.append(f"{INDENT}{getattr(rdata, field)!s:<10} ; {field}")
        lines.append(f"{INDENT})")
        return "\n".join(lines)
    text = rdata.to_text()
    if rdata.rdtype == T.DNSKEY:
        words = text.split(" ")
        kind = "KSK" if rdata.flags & 0x0001 else "ZSK"
        alg = dns.dnssec.algorithm_to_text(rdata.algorithm)
        lines = [" ".join(words[:3]) + " ("]
        lines += [f"{INDENT}{chunk}" for chunk in words[3:]]
        lines.append(f"{INDENT}) ; {kind}; alg = {alg} ; key id = {dns.dnssec.key_id(rdata)}")
        return "\n".join(lines)
    if rdata.rdtype == T.RRSIG:
        words = text.split(" ")
        lines = [" ".join(words[:4]) + " (", INDENT + " ".join(words[4:8])]
        lines += [f"{INDENT}{chunk}" for chunk in words[8:]]
        lines[-1] += " )"
        return "\n".join(lines)
    return text


def write_masterfile(data: LabData, tld: str, path: Path) -> int:
    """Write one TLD's zone as an RFC 1035 master file (gzipped if `path` ends in .gz).

    Returns the number of records. The same data gives the same bytes.
    """
    count = 0
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as raw, contextlib.ExitStack() as stack:
        sink: io.BufferedIOBase = raw
        if path.suffix == ".gz":
            sink = stack.enter_context(gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0))
        buf = io.TextIOWrapper(sink, encoding="utf-8", newline="")
        for line, records in masterfile_lines(data, tld):
            buf.write(line)
            count += records
        buf.flush()
        buf.detach()
    tmp.replace(path)
    return count
