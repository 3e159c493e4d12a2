"""The static stats site, built from the warehouse into one folder that works as it is: opened
from disk (file://), or served by any web server. No server code and no network: the Vega
scripts are bundled from vl-convert, the explore index is static files.

Every page is rendered by Jinja2 with autoescaping on, so a scanned name is text wherever it
lands (a label may hold `<script>`); charts and the explore index carry data as JSON with `<`,
`>` and `&` escaped, and the page's script only ever sets `textContent`. A part the warehouse
cannot give (no warehouse yet, a mart missing, no rows for a suffix, no chart renderer) is said
on the page where it would be; the site still builds whole. The folder is built beside the old
one and swapped in, so a reader never sees half a site.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.resources
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import duckdb
import jinja2

from survey_assets import reasons as R
from survey_assets.charts import specs
from survey_assets.charts.data import fetch, mart_rows, open_warehouse, tables
from survey_assets.charts.files import write_atomic
from survey_assets.charts.render import load_renderer, vega_bundle
from survey_assets.site.explore import HISTORY_DAYS, build_index
from survey_assets.site.stories import stories

BUNDLE = "assets/vega-bundle.js"
DOMAINS_SHOWN = 500  # a suffix page lists at most this many of its domains
_DEFAULT = object()

# The marts and staging tables the site reads (its asset depends on each).
READS = ("mart_daily_totals", "mart_suffix_daily", "mart_dane_providers",
         "mart_new_dane_providers", "mart_top_dnssec_tlds", "mart_ds_algorithms",
         "mart_failure_reasons", "mart_domain_history", "mart_rollover", "mart_source_coverage",
         "mart_awards", "mart_import_events", "mart_spikes", "mart_decay", "mart_chart_denial",
         "stg_mx_hosts",
         "stg_addresses")  # fmt: skip


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: str = "text"  # text | num | pct | change | date | list | bool
    href: str | None = None  # the row field holding this cell's link


@dataclass
class Table:
    id: str
    columns: list[Column]
    rows: list[dict] | None  # None: the mart is missing
    caption: str = ""
    empty: str = "no rows"
    missing: str = ""


@dataclass
class ChartView:
    id: str
    title: str
    spec: dict | None = None
    note: str = ""


@dataclass
class SiteReport:
    out: Path
    pages: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # tables the warehouse did not have
    notices: list[str] = field(default_factory=list)
    charts: int = 0
    domains: int = 0
    renderer: bool = False


def slug(suffix: str) -> str:
    """A file name for a suffix page: the name itself when it is plain, else a hash (a suffix
    is data, and must never become a path of its choosing)."""
    text = suffix.rstrip(".")
    if re.fullmatch(r"[a-z0-9][a-z0-9-]*(\.[a-z0-9-]+)*", text) and len(text) < 200:
        return text
    return "_" + hashlib.sha256(suffix.encode()).hexdigest()[:16]


def _num(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _pct(value: object) -> str:
    return "–" if value is None else f"{float(value):.2f} %"


def _change(value: object) -> str:
    if value is None:
        return "–"
    return f"{value:+,}" if isinstance(value, int) else f"{value:+,.2f}"


def _list(value: object) -> str:
    if value is None:
        return ""
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _sort_key(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("survey_assets.site", "templates"),
        autoescape=True,  # every page: scanned names are text, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=_num, pct=_pct, change=_change, list=_list, sortkey=_sort_key)
    return env


class Warehouse:
    """The warehouse as the site reads it: which tables exist, and rows of those that do."""

    def __init__(self, con: duckdb.DuckDBPyConnection | None) -> None:
        self.con = con
        self.tables = tables(con) if con is not None else set()
        self.missing: set[str] = set()
        self._cache: dict[str, list[dict]] = {}

    def has(self, *names: str) -> bool:
        absent = [n for n in names if n not in self.tables]
        self.missing.update(absent)
        return not absent

    def rows(self, mart: str) -> list[dict] | None:
        if not self.has(mart):
            return None
        if mart not in self._cache:
            self._cache[mart] = mart_rows(self.con, mart)
        return self._cache[mart]

    def query(self, needs: str, sql: str, params: list | None = None) -> list[dict] | None:
        return fetch(self.con, sql, params) if self.has(needs) else None


def _missing_note(names: list[str]) -> str:
    return "Not available yet: the warehouse has no " + ", ".join(names) + "."


class Site:
    """Gathers what every page shows; pages render it."""

    def __init__(self, wh: Warehouse, renderer: ModuleType | None) -> None:
        self.wh = wh
        self.renderer = renderer
        self.charts = 0
        totals = wh.rows("mart_daily_totals") or []
        self.days = sorted({r["date"] for r in totals})
        self.last_day = self.days[-1] if self.days else None
        self.first_day = self.days[0] if self.days else None
        suffix_rows = wh.rows("mart_suffix_daily") or []
        top_rows = wh.rows("mart_top_dnssec_tlds") or []
        self.suffixes = sorted({r["suffix"] for r in suffix_rows} | {r["suffix"] for r in top_rows})
        self.slugs = {s: slug(s) for s in self.suffixes}
        self._validated = False

    # charts ---------------------------------------------------------------------------------

    def chart(self, name: str, marts: specs.Marts | None = None, build=None,
              title: str | None = None, chart_id: str | None = None,
              validate: bool = True) -> ChartView:  # fmt: skip
        definition = specs.CHARTS.get(name)
        title = title or (definition.title if definition else name)
        view = ChartView(chart_id or f"chart-{name}", title)
        if marts is None:
            needed = definition.reads
            absent = [m for m in needed if not self.wh.has(m)]
            if absent:
                view.note = _missing_note(absent)
                return view
            marts = {m: self.wh.rows(m) or [] for m in needed}
        if self.renderer is None:
            view.note = ("Charts are not drawn: the chart renderer (vl-convert-python) is not "
                         "installed. The numbers are in the tables on this page.")  # fmt: skip
            return view
        view.spec = specs.spec((build or definition.build)(marts), validate)
        self.charts += 1
        return view

    # tables ---------------------------------------------------------------------------------

    def suffix_table(self, table_id: str = "suffixes", root: str = "") -> Table:
        columns = [
            Column("suffix", "suffix", href="href"), Column("candidates", "candidates", "num"),
            Column("signed", "signed (DS)", "num"), Column("pct_signed", "% signed", "pct"),
            Column("secure_mx", "secure MX", "num"), Column("dane_domains", "DANE SMTP", "num"),
            Column("pct_problem_free", "% problem-free", "pct"),
            Column("pct_working_dnskey", "% working DNSKEY", "pct"),
            Column("rank", "rank", "num"), Column("story", "story"),
        ]  # fmt: skip
        rows = self.wh.rows("mart_suffix_daily")
        table = Table(table_id, columns, None, f"Every suffix on {self.last_day}")
        if rows is None:
            table.missing = _missing_note(["mart_suffix_daily"])
            return table
        top = {(r["date"], r["suffix"]): r for r in self.wh.rows("mart_top_dnssec_tlds") or []}
        table.rows = []
        for r in specs.latest(rows):
            t = top.get((r["date"], r["suffix"]), {})
            table.rows.append({
                **r, "href": f"{root}tld/{self.slugs[r['suffix']]}.html",
                "pct_signed": round(100.0 * r["signed"] / r["candidates"], 2) if r["candidates"] else None,
                "rank": t.get("rank"), "story": t.get("story"),
            })  # fmt: skip
        table.rows.sort(key=lambda r: (-r["signed"], r["suffix"]))
        return table

    def table(self, table_id: str, mart: str, columns: list[Column], caption: str = "",
              rows: list[dict] | None = None, empty: str = "no rows") -> Table:  # fmt: skip
        rows = rows if rows is not None else self.wh.rows(mart)
        table = Table(table_id, columns, rows, caption, empty)
        if rows is None:
            table.missing = _missing_note([mart])
        return table

    # pages ----------------------------------------------------------------------------------

    def overview(self) -> dict:
        totals = self.wh.rows("mart_daily_totals") or []
        headline = []
        if totals:
            last, first = totals[-1], totals[0]
            before = totals[-2] if len(totals) > 1 else None
            for key, label in (("candidates", "candidate domains"), ("signed", "zones with DS"),
                               ("secure_mx", "domains with DNSSEC-validated MX"),
                               ("dane_domains", "domains with DANE SMTP"),
                               ("dane_providers", "zones of DANE MX hosts"),
                               ("pct_dane_of_secure_mx", "% DANE of secure MX")):  # fmt: skip
                headline.append({
                    "key": key, "label": label, "value": last[key],
                    "day": None if before is None or last[key] is None or before[key] is None
                    else last[key] - before[key],
                    "first": None if last[key] is None or first[key] is None else last[key] - first[key],
                })  # fmt: skip
        decay = self.wh.rows("mart_decay")
        spikes = self.wh.rows("mart_spikes")
        return {
            "headline": headline,
            "missing_totals": None
            if totals
            else _missing_note(["mart_daily_totals"])
            if "mart_daily_totals" not in self.wh.tables
            else "The warehouse has no day yet.",
            "charts": [
                self.chart(n)
                for n in ("secure_mx_and_dane", "dane_providers", "zones_with_ds", "candidates")
            ],  # fmt: skip
            "suffixes": self.suffix_table(),
            "events": self.table(
                "import-events",
                "mart_import_events",
                [
                    Column("date", "day", "date"),
                    Column("source", "source"),
                    Column("kind", "kind"),
                    Column("names_added", "names added", "num"),
                    Column("suffixes", "suffixes", "list"),
                ],
                "Imports that make steps in the counts",
                empty="no import event",
            ),  # fmt: skip
            "spikes": self.table(
                "spikes",
                "mart_spikes",
                [
                    Column("date", "day", "date"),
                    Column("scope", "scope"),
                    Column("before", "before", "num"),
                    Column("after", "after", "num"),
                    Column("change", "change", "change"),
                    Column("explained_by", "explained by", "list"),
                    Column("explained", "explained", "bool"),
                ],
                "Jumps in the candidates",
                rows=None if spikes is None else [r for r in spikes if r["is_spike"]],
                empty="no jump",
            ),  # fmt: skip
            "decay": self.table(
                "decay",
                "mart_decay",
                [
                    Column("suffix", "suffix"),
                    Column("window_start", "from", "date"),
                    Column("window_end", "to", "date"),
                    Column("slope_pct_per_day", "% a day", "num"),
                    Column("down_days", "days down", "num"),
                ],
                "Suffixes that decay gently",
                rows=None if decay is None else [r for r in decay if r["decaying"]],
                empty="no suffix decays",
            ),  # fmt: skip
            "coverage": self.table(
                "coverage",
                "mart_source_coverage",
                [
                    Column("source", "source"),
                    Column("names", "names", "num"),
                    Column("first_seen_today", "first seen that day", "num"),
                    Column("only_here", "in no other source", "num"),
                ],
                f"Sources on {self.last_day}",
                rows=None
                if (cov := self.wh.rows("mart_source_coverage")) is None
                else specs.latest(cov),
            ),  # fmt: skip
        }

    def tld(self, suffix: str) -> dict:
        notes: list[str] = []

        def mine(mart: str, key: str = "suffix") -> list[dict]:
            rows = self.wh.rows(mart)
            if rows is None:
                notes.append(_missing_note([mart]))
                return []
            found = [r for r in rows if r[key] == suffix]
            if not found:
                notes.append(f"{mart} has no rows for {suffix}")
            return found

        daily = mine("mart_suffix_daily")
        top = {r["date"]: r for r in mine("mart_top_dnssec_tlds")}
        events_all = self.wh.rows("mart_import_events") or []
        events = [e for e in events_all if suffix in (e.get("suffixes") or [])]
        decay = [r for r in self.wh.rows("mart_decay") or [] if r["suffix"] == suffix]
        spikes = [r for r in self.wh.rows("mart_spikes") or []
                  if r["scope"] == suffix and r["is_spike"]]  # fmt: skip
        rows = [{**r, "rank": top.get(r["date"], {}).get("rank"),
                 "story": top.get(r["date"], {}).get("story")} for r in daily]  # fmt: skip
        marts = {"mart_suffix_daily": daily, "mart_import_events": events, "mart_decay": decay}
        charts = []
        if daily:
            # Every suffix's charts have one shape: the schema check of the first one holds.
            validate, self._validated = not self._validated, True
            charts = [
                self.chart("suffix_trend", marts, specs.suffix_trend,
                           f"{suffix}: domains per day", "chart-trend", validate),
                self.chart("suffix_health", marts, specs.suffix_health,
                           f"{suffix}: DNSSEC health", "chart-health", validate),
            ]  # fmt: skip
        domains = None
        if self.last_day and self.wh.has("mart_domain_history"):
            # Problems first: a big suffix shows its bogus and indeterminate domains.
            domains = fetch(
                self.wh.con,
                "SELECT name, signed, dnssec, reasons, dane, rollover FROM mart_domain_history "
                "WHERE suffix = ? AND date = ? "
                "ORDER BY dnssec IN ('bogus', 'indeterminate') DESC, name LIMIT ?",
                [suffix, self.last_day, DOMAINS_SHOWN + 1],
            )
            for d in domains:
                d["href"] = "../explore.html#q=" + _fragment(d["name"])
        latest = rows[-1] if rows else None
        return {
            "suffix": suffix, "latest": latest, "notes": notes, "charts": charts,
            "decaying": [d for d in decay if d["decaying"]],
            "daily": Table("daily", [
                Column("date", "day", "date"), Column("candidates", "candidates", "num"),
                Column("signed", "signed (DS)", "num"), Column("secure_mx", "secure MX", "num"),
                Column("dane_domains", "DANE SMTP", "num"),
                Column("pct_problem_free", "% problem-free", "pct"),
                Column("pct_working_dnskey", "% working DNSKEY", "pct"),
                Column("rank", "rank", "num"), Column("story", "story"),
            ], rows, f"{suffix} day by day", empty=f"no day for {suffix}"),
            "events": Table("events", [
                Column("date", "day", "date"), Column("source", "source"), Column("kind", "kind"),
                Column("names_added", "names added (all suffixes)", "num"),
            ], events, "Imports that added names here", empty="no import event"),
            "spikes": Table("spikes", [
                Column("date", "day", "date"), Column("before", "before", "num"),
                Column("after", "after", "num"), Column("change", "change", "change"),
                Column("explained_by", "explained by", "list"),
                Column("explained", "explained", "bool"),
            ], spikes, "Jumps in the candidates", empty="no jump"),
            "domains": Table("domains", [
                Column("name", "domain", href="href"), Column("signed", "signed", "bool"),
                Column("dnssec", "DNSSEC"), Column("reasons", "reasons", "list"),
                Column("dane", "DANE"), Column("rollover", "rollover"),
            ], None if domains is None else domains[:DOMAINS_SHOWN],
                f"Domains on {self.last_day}, DNSSEC problems first",
                empty=f"no domain of {suffix} on {self.last_day}",
                missing="" if domains is not None else _missing_note(["mart_domain_history"])),
            "domains_cut": domains is not None and len(domains) > DOMAINS_SHOWN,
        }  # fmt: skip

    def providers(self) -> dict:
        providers = self.wh.rows("mart_dane_providers")
        rollover = self.wh.rows("mart_rollover")
        return {
            "charts": [self.chart("dane_providers")],
            "providers": self.table("providers", "mart_dane_providers", [
                Column("provider", "provider (zone of the MX hosts)"),
                Column("tlsa_hosts", "MX hosts with TLSA", "num"),
                Column("dane_domains", "DANE-enabled domains", "num"),
            ], f"DANE providers on {self.last_day}",
                rows=None if providers is None else specs.latest(providers),
                empty="no DANE provider"),
            "rollover": self.table("rollover", "mart_rollover", [
                Column("host", "MX host"), Column("provider", "provider"),
                Column("tlsa_records", "TLSA records", "num"), Column("dane", "DANE"),
                Column("dane_reasons", "DANE reasons", "list"), Column("rollover", "rollover"),
                Column("rollover_reasons", "rollover reasons", "list"),
                Column("domains", "domains", "num"),
            ], f"MX hosts with TLSA on {self.last_day}: DANE outcome and rollover readiness",
                rows=None if rollover is None else specs.latest(rollover),
                empty="no MX host with TLSA"),
        }  # fmt: skip

    def new_providers(self) -> dict:
        rows = self.wh.rows("mart_new_dane_providers")
        if rows is not None:
            rows = [{**r, "noteworthy": self.first_day is not None
                     and r["first_seen"] > self.first_day} for r in rows]  # fmt: skip
            rows.sort(key=lambda r: (-r["dane_domains_now"], r["provider"]))
        return {
            "charts": [self.chart("new_dane_providers")],
            "providers": self.table("new-providers", "mart_new_dane_providers", [
                Column("provider", "provider"), Column("first_seen", "first seen", "date"),
                Column("dane_domains_first_day", "DANE domains that day", "num"),
                Column("dane_domains_now", "DANE domains now", "num"),
                Column("tlsa_hosts_now", "TLSA hosts now", "num"),
                Column("noteworthy", "new since the survey began", "bool"),
            ], "Every DANE provider and the day it first served a DANE-enabled domain",
                rows=rows, empty="no DANE provider yet"),
        }  # fmt: skip

    def awards(self) -> dict:
        top = self.wh.rows("mart_top_dnssec_tlds")
        suffix_rows = self.wh.rows("mart_suffix_daily")
        large = None
        if suffix_rows is not None:
            large = sorted(
                specs.latest(suffix_rows), key=lambda r: (-r["candidates"], r["suffix"])
            )[:10]
        told = None if top is None else [s.__dict__ for s in stories(top)]
        return {
            "charts": [self.chart("top_dnssec_tlds")],
            "awards": self.table("awards", "mart_awards", [
                Column("award", "award"), Column("winner", "winner"),
                Column("value", "value", "num"), Column("date", "day", "date"),
            ], "The awards of the newest day", empty="no award yet"),
            "stories": self.table("stories", "mart_top_dnssec_tlds", [
                Column("kind", "story"), Column("suffix", "suffix"), Column("date", "day", "date"),
                Column("signed", "signed", "num"), Column("change", "change", "change"),
            ], "Top DNSSEC suffixes: their stories", rows=told, empty="no story yet"),
            "large": self.table("large", "mart_suffix_daily", [
                Column("suffix", "suffix"), Column("candidates", "candidates", "num"),
                Column("signed", "signed", "num"),
                Column("pct_working_dnskey", "% working DNSKEY", "pct"),
                Column("pct_problem_free", "% problem-free", "pct"),
            ], "The largest suffixes' working DNSKEY records", rows=large),
        }  # fmt: skip

    def health(self) -> dict:
        algorithms = self.wh.rows("mart_ds_algorithms")
        if algorithms is not None:
            algorithms = [{**r, "algorithm_name": specs.ALGORITHMS.get(r["algorithm"], "unassigned"),
                           "digest_name": specs.DIGESTS.get(r["digest_type"], "unassigned")}
                          for r in specs.latest(algorithms)]  # fmt: skip
        reasons = self.wh.rows("mart_failure_reasons")
        denial = None
        if reasons is not None:
            reasons = [
                {**r, "meaning": R.REASONS.get(r["reason"], "")} for r in specs.latest(reasons)
            ]
            reasons.sort(key=lambda r: (-r["domains"], r["reason"], r["dnssec"]))
            denial = [r for r in reasons if r["reason"].startswith(("nsec3_", "denial_"))]
        zones = self.wh.rows("mart_chart_denial")
        parameters = hygiene = None
        if zones is not None:
            counted: dict[tuple, int] = {}
            for z in specs.latest(zones):
                key = (z["denial"], z["iterations"], z["salted"], z["opt_out"])
                counted[key] = counted.get(key, 0) + 1
            parameters = [dict(zip(("denial", "iterations", "salted", "opt_out", "zones"),
                                   (*k, n), strict=True)) for k, n in counted.items()]  # fmt: skip
            parameters.sort(key=lambda r: (-r["zones"], r["denial"], r["iterations"] or 0))
            # RFC 9276: NSEC3 with 0 iterations and no salt; opt-out only where delegations are.
            hygiene = [z for z in specs.latest(zones)
                       if z["denial"] == "NSEC3" and (z["iterations"] or z["salted"])]  # fmt: skip
        columns = [Column("reason", "reason"), Column("dnssec", "status"),
                   Column("domains", "domains", "num"), Column("meaning", "meaning")]  # fmt: skip
        return {
            "charts": [self.chart(n) for n in ("problem_free", "working_dnskey", "ds_algorithms",
                                               "denial", "failure_reasons")],  # fmt: skip
            "parameters": self.table("parameters", "mart_chart_denial", [
                Column("denial", "denial"), Column("iterations", "NSEC3 iterations", "num"),
                Column("salted", "salt", "bool"), Column("opt_out", "opt-out", "bool"),
                Column("zones", "zones", "num"),
            ], f"NSEC and NSEC3 parameters on {self.last_day}, of the zones seen in a denial",
                rows=parameters, empty="no denial seen"),
            "hygiene": self.table("nsec3-hygiene", "mart_chart_denial", [
                Column("zone", "zone"), Column("iterations", "NSEC3 iterations", "num"),
                Column("salted", "salt", "bool"), Column("opt_out", "opt-out", "bool"),
            ], "NSEC3 zones against RFC 9276's advice (iterations above 0, or a salt)",
                rows=hygiene, empty="every NSEC3 zone seen follows RFC 9276"),
            "algorithms": self.table("algorithms", "mart_ds_algorithms", [
                Column("algorithm", "algorithm", "num"), Column("algorithm_name", "name"),
                Column("digest_type", "digest type", "num"), Column("digest_name", "digest"),
                Column("ds_records", "DS records", "num"), Column("domains", "domains", "num"),
            ], f"DS records by algorithm and digest type on {self.last_day}", rows=algorithms),
            "reasons": self.table("reasons", "mart_failure_reasons", columns,
                                  f"Reasons on {self.last_day}", rows=reasons,
                                  empty="no domain with a reason"),
            "denial": self.table("denial", "mart_failure_reasons", columns,
                                 "Denial of existence and NSEC3 parameters (RFC 5155, RFC 9276)",
                                 rows=denial, empty="no denial or NSEC3 finding"),
        }  # fmt: skip

    def explore_examples(self) -> list[dict]:
        """A few names to try: one per DNSSEC status, DANE outcome and rollover state."""
        if not self.last_day or not self.wh.has("mart_domain_history"):
            return []
        rows = fetch(
            self.wh.con,
            "SELECT what, min(name) AS name FROM (SELECT name, unnest([dnssec, 'dane ' || dane, "
            "'rollover ' || rollover]) AS what FROM mart_domain_history WHERE date = ?) "
            "WHERE what NOT IN ('dane n/a', 'rollover n/a') GROUP BY what ORDER BY what",
            [self.last_day],
        )
        return [{**r, "href": "explore.html#q=" + _fragment(r["name"])} for r in rows]


def _fragment(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


PAGES = (("index.html", "overview", "Overview"), ("tlds.html", "tlds", "Suffixes"),
         ("providers.html", "providers", "DANE providers"),
         ("new-providers.html", "new_providers", "New providers"),
         ("awards.html", "awards", "Awards"), ("health.html", "health", "DNSSEC health"),
         ("explore.html", "explore", "Explore"))  # fmt: skip


def _static(name: str) -> str:
    return (
        importlib.resources.files("survey_assets.site")
        .joinpath("static", name)
        .read_text(encoding="utf-8")
    )


def build_site(
    warehouse: Path,
    out: Path,
    *,
    renderer: ModuleType | None | object = _DEFAULT,
    history_days: int = HISTORY_DAYS,
    generated: dt.datetime | None = None,
) -> SiteReport:
    """Build the site from `warehouse` (read-only) into `out`, replacing what is there.
    `renderer` is vl-convert (found by default); None builds the site without charts."""
    renderer = load_renderer() if renderer is _DEFAULT else renderer
    generated = generated or dt.datetime.now(dt.UTC).replace(microsecond=0)
    report = SiteReport(out=out, renderer=renderer is not None)
    staging = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    con = open_warehouse(warehouse)
    try:
        wh = Warehouse(con)
        if con is None:
            report.notices.append(f"no warehouse at {warehouse}: the site says so on every page")
        _render(wh, renderer, staging, generated, history_days, report)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if con is not None:
            con.close()
    _swap(staging, out)
    return report


def _render(wh: Warehouse, renderer: ModuleType | None, folder: Path, generated: dt.datetime,
            history_days: int, report: SiteReport) -> None:  # fmt: skip
    site = Site(wh, renderer)
    env = environment()
    common = {
        "pages": PAGES, "last_day": site.last_day, "first_day": site.first_day,
        "generated": generated.isoformat(), "warehouse_missing": wh.con is None,
        "bundle": renderer is not None, "days": len(site.days),
    }  # fmt: skip

    def page(path: str, template: str, **context) -> None:
        depth = path.count("/")
        html = env.get_template(template).render(**common, root="../" * depth, **context)
        write_atomic(folder / path, html)
        report.pages.append(path)

    page("index.html", "overview.html", current="overview", **site.overview())
    page("tlds.html", "tlds.html", current="tlds", suffixes=site.suffix_table(),
         tld_links=[(s, site.slugs[s]) for s in site.suffixes])  # fmt: skip
    for suffix in site.suffixes:
        page(f"tld/{site.slugs[suffix]}.html", "tld.html", current="tlds", **site.tld(suffix))
    page("providers.html", "providers.html", current="providers", **site.providers())
    page("new-providers.html", "new_providers.html", current="new_providers",
         **site.new_providers())  # fmt: skip
    page("awards.html", "awards.html", current="awards", **site.awards())
    page("health.html", "health.html", current="health", **site.health())
    index = build_index(wh.con, wh.tables, history_days)
    page("explore.html", "explore.html", current="explore", examples=site.explore_examples(),
         index_missing=index.missing, history_days=history_days)  # fmt: skip
    write_atomic(folder / "explore" / "manifest.js", index.manifest())
    for n, script in index.shard_files().items():
        write_atomic(folder / "explore" / f"shard-{n}.js", script)
    for name in ("site.css", "site.js"):
        write_atomic(folder / "assets" / name, _static(name))
    if renderer is not None:
        write_atomic(folder / BUNDLE, vega_bundle(renderer))
    else:
        report.notices.append("charts not drawn: vl-convert-python is not installed")
    report.missing = sorted(wh.missing | set(index.missing))
    report.charts = site.charts
    report.domains = len(index.entries)


def _swap(staging: Path, out: Path) -> None:
    """Put the new folder in place of the old: two renames, the old one removed after."""
    out.parent.mkdir(parents=True, exist_ok=True)
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)
