"""The lab's zone-list sources: which names each source offers on a date.

Like the real survey's inputs, sources differ in kind and cadence: CZDS zone files every day,
a zone transfer of the open TLD every day, and a passive-DNS name list first published on
`Day.LIST_IMPORT` and then weekly (an import spike, then steps), and one registry's
RFC 1035 master file. The survey reads them through `config/sources.lab.toml`. A date's candidates are the
names of the newest publication of each source on or before that date.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import dns.exception
import dns.name

from survey_assets.lab.keys import unit
from survey_assets.lab.world import (
    INFRA_TLD,
    INVALID_LIST_LINES,
    TLDS,
    Day,
    World,
    world,
)


@dataclass(frozen=True)
class LabSource:
    name: str
    kind: str  # czds | zonefile | axfr | list
    tlds: tuple[str, ...]
    cadence_days: int
    first_day: int | None = None  # None: published since before the epoch

    def published_day(self, day: int) -> int | None:
        """The day of the newest publication on or before `day`, or None before the first."""
        if self.first_day is None:
            return day
        if day < self.first_day:
            return None
        return day - (day - self.first_day) % self.cadence_days


def _tlds(kind: str) -> tuple[str, ...]:
    return tuple(t.label for t in (*TLDS, INFRA_TLD) if t.source == kind)


LAB_SOURCES: tuple[LabSource, ...] = (
    LabSource("czds", "czds", _tlds("czds"), 1),
    LabSource("registry-files", "zonefile", _tlds("zonefile"), 1),
    LabSource("open-axfr", "axfr", _tlds("axfr"), 1),
    LabSource("passive-dns", "list", ("lab-cc", "lab-vast"), Day.LIST_CADENCE, Day.LIST_IMPORT),
)
SAMPLE_RATE = 0.1
STALE_LIST_NAMES = (
    "retired-a.lab-cc",
    "retired-b.lab-cc",
    "retired-c.lab-vast",
)  # share of lab-vast names that the passive-DNS list also carries


def delegations(w: World, tld_label: str) -> Iterator[dns.name.Name]:
    """The second-level names delegated in a TLD's zone on the world's date."""
    if tld_label == INFRA_TLD.label:
        from survey_assets.lab.world import DNS_PROVIDERS, MAIL_PROVIDERS

        for label in ("nic", *MAIL_PROVIDERS, *DNS_PROVIDERS):
            yield dns.name.from_text(f"{label}.{tld_label}.")
        return
    tld = next(t for t in TLDS if t.label == tld_label)
    suffix = dns.name.from_text(tld.name).labels
    for _, label in w.domain_names(tld):
        yield dns.name.Name((label, *suffix))


def list_lines(w: World) -> list[str]:
    """The passive-DNS list as published on the world's date: one name a line, some invalid."""
    cc = next(t for t in TLDS if t.label == "lab-cc")
    vast = next(t for t in TLDS if t.label == "lab-vast")
    lines = [n.to_text(omit_final_dot=True) for n in delegations(w, cc.label)]
    for index, label in w.domain_names(vast):
        if unit(w.seed, "listed", index) < SAMPLE_RATE:
            lines.append(dns.name.Name((label, b"lab-vast", b"")).to_text(omit_final_dot=True))
    lines.extend(STALE_LIST_NAMES)  # passive DNS remembers names that are gone: NXDOMAIN
    lines.extend(INVALID_LIST_LINES)
    return lines


def source_names(w: World, source: LabSource) -> set[dns.name.Name] | None:
    """The valid names a source offers on the world's date (None before its first publication)."""
    published = source.published_day(w.day)
    if published is None:
        return None
    pw = world(w.seed, w.scale, w.date.fromordinal(w.date.toordinal() - (w.day - published)))
    if source.kind == "list":
        names = set()
        for line in list_lines(pw):
            try:
                name = dns.name.from_text(line)
            except dns.exception.DNSException:
                continue
            names.add(name.canonicalize())
        return names
    return {n.canonicalize() for t in source.tlds for n in delegations(pw, t)}


def candidates(w: World) -> dict[dns.name.Name, list[str]]:
    """Every candidate domain of the date with the sources that list it."""
    result: dict[dns.name.Name, list[str]] = {}
    for source in LAB_SOURCES:
        for name in source_names(w, source) or ():
            result.setdefault(name, []).append(source.name)
    return result
