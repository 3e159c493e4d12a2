"""The stories the reference survey tells about its top DNSSEC TLDs, from mart_top_dnssec_tlds:
the leader of the pack, consistency, big jumps, some loss, disable and re-enable."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

LEADER, CONSISTENT = "leader of the pack", "consistency is key"
JUMP, LOSS, DISABLED, REENABLED = "big jump", "some loss", "disabled", "re-enabled"
ORDER = (LEADER, CONSISTENT, JUMP, LOSS, DISABLED, REENABLED)


@dataclass(frozen=True)
class Story:
    kind: str
    suffix: str
    date: str  # the day it happened (the newest day for the leader and consistency)
    signed: int
    change: int


def stories(rows: list[dict]) -> list[Story]:
    """From mart_top_dnssec_tlds rows (date, suffix, signed, rank, change, story): the newest
    day's leader(s); suffixes that grew without a loss or a jump, every day (consistency); and
    every day a suffix jumped, lost, was disabled or re-enabled."""
    if not rows:
        return []
    last = max(r["date"] for r in rows)
    found: list[Story] = []
    by_suffix: dict[str, list[dict]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: (r["suffix"], r["date"])):
        by_suffix[r["suffix"]].append(r)
    for r in rows:
        if r["date"] == last and r["rank"] == 1 and r["signed"] > 0:
            found.append(Story(LEADER, r["suffix"], last, r["signed"], r["change"]))
    for suffix, days in by_suffix.items():
        later = days[1:]
        if (later and days[-1]["date"] == last and days[-1]["signed"] > 0
                and all(d["story"] == "steady" for d in later)
                and days[-1]["signed"] > days[0]["signed"]):  # fmt: skip
            found.append(Story(CONSISTENT, suffix, last, days[-1]["signed"],
                               days[-1]["signed"] - days[0]["signed"]))  # fmt: skip
        for d in later:
            if d["story"] in (JUMP, LOSS, DISABLED, REENABLED):
                found.append(Story(d["story"], suffix, d["date"], d["signed"], d["change"]))
    return sorted(found, key=lambda s: (ORDER.index(s.kind), s.date, s.suffix))
