"""Zone lists as real downloads look: CZDS files, a registry's master file, a name list.

CZDS files hold one record per line, tab-separated (`owner TTL class type rdata`), absolute
names, gzipped, DNSSEC records mixed in. Two registries' quirks are copied: lab-jump pads owner
names with spaces before the tab, lab-fade writes owner names in upper case. Output is
byte-for-byte reproducible: the gzip header carries no name and no time.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path

import dns.name
import dns.rdatatype

from survey_assets.lab import sources as S
from survey_assets.lab.authority import LabData
from survey_assets.lab.dnsserver import zone_rrsets
from survey_assets.lab.world import World

PADDED_TLDS = {"lab-jump"}
UPPERCASE_TLDS = {"lab-fade"}
LIST_FILE = "passive-dns.txt"


def czds_file_name(tld: str) -> str:
    return f"{tld}.txt.gz"


def czds_lines(data: LabData, tld: str) -> Iterator[str]:
    zone = data.zone(dns.name.from_text(f"{tld}."))
    assert zone is not None, tld
    for rrset in zone_rrsets(data, zone):
        owner = rrset.name.to_text().lower()
        if tld in UPPERCASE_TLDS:
            owner = owner.upper()
        if tld in PADDED_TLDS:
            owner = owner.ljust(40)
        type_text = dns.rdatatype.to_text(rrset.rdtype).lower()
        for rdata in rrset:
            yield f"{owner}\t{rrset.ttl}\tin\t{type_text}\t{rdata.to_text()}\n"


def write_czds(data: LabData, tld: str, path: Path) -> int:
    """Write one TLD's zone in CZDS format; returns the number of lines."""
    count = 0
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        buf = io.TextIOWrapper(gz, encoding="utf-8", newline="")
        for line in czds_lines(data, tld):
            buf.write(line)
            count += 1
        buf.flush()
        buf.detach()
    tmp.replace(path)
    return count


def write_source(w: World, source: S.LabSource, folder: Path) -> dict[str, int]:
    """Write what one file source publishes on the world's date (nothing on other days)."""
    if source.kind == "axfr" or source.published_day(w.day) != w.day:
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    data = LabData(w)
    written: dict[str, int] = {}
    if source.kind == "czds":
        for tld in source.tlds:
            written[czds_file_name(tld)] = write_czds(data, tld, folder / czds_file_name(tld))
    elif source.kind == "zonefile":
        from survey_assets.lab.masterfiles import masterfile_name, write_masterfile

        for tld in source.tlds:
            name = masterfile_name(tld)
            written[name] = write_masterfile(data, tld, folder / name)
    elif source.kind == "list":
        lines = S.list_lines(w)
        tmp = folder / (LIST_FILE + ".tmp")
        tmp.write_text("".join(f"{line}\n" for line in lines))
        tmp.replace(folder / LIST_FILE)
        written[LIST_FILE] = len(lines)
    return written


def write_zonefiles(w: World, out: Path) -> dict[str, int]:
    """Write every file source's publication of the date, one folder per source."""
    written = {}
    for source in S.LAB_SOURCES:
        for name, count in write_source(w, source, out / source.name).items():
            written[f"{source.name}/{name}"] = count
    return written
