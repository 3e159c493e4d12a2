"""The survey's charts as Vega-Lite specs, built with Altair from mart rows.

Every dataset travels inline as `data.values`, named after the mart it came from
(`data.name`), so a reader (and a test) can take a chart apart and compare it with the
warehouse. Scanned names (suffixes, providers) are only ever data values: the expressions in
these specs (filters, labels) are fixed strings that refer to fields, never built from data.

Time series carry the data-collection annotations from the warehouse checks' marts: a dashed
rule with a label on each import event (`mart_import_events`: a step there is an import, not
adoption) and a shaded band over each gently decaying suffix's window (`mart_decay`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import altair as alt

Rows = list[dict]
Marts = dict[str, Rows]

WIDTH, HEIGHT = 640, 300
EVENTS, DECAY = "mart_import_events", "mart_decay"
ANNOTATION_MARTS = (EVENTS, DECAY)

# DNSSEC algorithm and DS digest numbers (IANA registries), for legends. A fixed table of ours.
ALGORITHMS = {1: "RSAMD5", 3: "DSA", 5: "RSASHA1", 6: "DSA-NSEC3-SHA1", 7: "RSASHA1-NSEC3-SHA1",
              8: "RSASHA256", 10: "RSASHA512", 12: "ECC-GOST", 13: "ECDSAP256SHA256",
              14: "ECDSAP384SHA384", 15: "ED25519", 16: "ED448", 253: "PRIVATEDNS",
              254: "PRIVATEOID"}  # fmt: skip
DIGESTS = {1: "SHA-1", 2: "SHA-256", 3: "GOST R 34.11-94", 4: "SHA-384"}


def _data(rows: Rows, name: str) -> alt.Data:
    return alt.Data(values=list(rows), name=name)


MEASURES = {"candidates": "candidates", "signed": "signed (DS)", "secure_mx": "secure MX",
            "dane_domains": "DANE SMTP", "pct_problem_free": "% DNSSEC-problem-free",
            "pct_working_dnskey": "% working DNSKEY"}  # fmt: skip


def _fold(chart: alt.Chart, fields: list[str], value: str) -> alt.Chart:
    """Columns folded into (measure, value) rows, each measure with its label (`series`) from
    a fixed table: no label is ever computed from data."""
    labels = [{"measure": f, "series": MEASURES[f]} for f in fields]
    return chart.transform_fold(fields, as_=["measure", value]).transform_lookup(
        lookup="measure", from_=alt.LookupData(_data(labels, "labels"), key="measure",
                                               fields=["series"])
    )  # fmt: skip


def _day(field: str = "date", title: str | None = "day") -> alt.X:
    # UTC: a day is a day wherever the page is read (an ISO date parses as UTC midnight).
    # tickMinStep: one day, in ms (no ticks between days). Vega-Lite formats a utc scale's
    # labels in UTC by itself (and a `formatType` would drop the format).
    return alt.X(f"{field}:T", title=title, scale=alt.Scale(type="utc"),
                 axis=alt.Axis(format="%Y-%m-%d", labelAngle=0, tickMinStep=86_400_000))  # fmt: skip


def annotations(events: Rows, decay: Rows) -> list[alt.Chart]:
    """Layers for a time series: a band over each decaying suffix's window, a dashed rule and a
    label on each import event. Rows are the marts' own (which decay rows draw is a filter on
    their `decaying` field); a mart with nothing to draw adds no layer."""
    layers = []
    if any(r.get("decaying") for r in decay):
        band = alt.Chart(_data(decay, DECAY)).transform_filter("datum.decaying")
        layers += [
            band.mark_rect(opacity=0.12, color="#b279a2").encode(
                x=_day("window_start"),
                x2="window_end:T",
                tooltip=[
                    alt.Tooltip("suffix:N", title="decaying suffix"),
                    alt.Tooltip("slope_pct_per_day:Q", title="% a day"),
                    alt.Tooltip("window_start:N"),
                    alt.Tooltip("window_end:N"),
                ],
            ),  # fmt: skip
            band.transform_calculate(label="'decay: ' + datum.suffix")
            .mark_text(align="left", baseline="bottom", dx=3, dy=-3, color="#b279a2", fontSize=10)
            .encode(x=_day("window_start"), y=alt.value(HEIGHT), text="label:N"),
        ]
    if events:
        rule = alt.Chart(_data(events, EVENTS))
        layers += [
            rule.mark_rule(strokeDash=[4, 3], color="#555").encode(
                x=_day(),
                tooltip=[
                    alt.Tooltip("date:N"),
                    "source:N",
                    "kind:N",
                    alt.Tooltip("names_added:Q", format=","),
                ],
            ),  # fmt: skip
            rule.transform_calculate(label="'import: ' + datum.source")
            .mark_text(align="left", baseline="top", dx=3, dy=3, color="#555", fontSize=10)
            .encode(x=_day(), y=alt.value(0), text="label:N"),
        ]
    return layers


def _series(chart: alt.Chart, marts: Marts, title: str, *extra: alt.Chart) -> alt.LayerChart:
    layers = [*annotations(marts.get(EVENTS, []), marts.get(DECAY, [])), chart, *extra]
    return alt.layer(*layers).properties(width=WIDTH, height=HEIGHT, title=title)


def secure_mx_and_dane(marts: Marts) -> alt.TopLevelMixin:
    """Domains with a DNSSEC-validated MX answer and domains with DANE SMTP, per day."""
    base = alt.Chart(_data(marts["mart_daily_totals"], "mart_daily_totals"))
    lines = (
        _fold(base, ["secure_mx", "dane_domains"], "domains")
        .mark_line(point=True)
        .encode(
            x=_day(),
            y=alt.Y("domains:Q", title="domains"),
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="top-left")),
            tooltip=[alt.Tooltip("date:N"), "series:N", alt.Tooltip("domains:Q", format=",")],
        )  # fmt: skip
    )
    return _series(lines, marts, "Domains with secure MX and with DANE SMTP")


def dane_providers(marts: Marts) -> alt.TopLevelMixin:
    """Distinct zones of DANE MX hosts (the providers), per day."""
    line = (
        alt.Chart(_data(marts["mart_daily_totals"], "mart_daily_totals"))
        .mark_line(point=True, color="#f58518")
        .encode(
            x=_day(),
            y=alt.Y("dane_providers:Q", title="zones of DANE MX hosts"),
            tooltip=[alt.Tooltip("date:N"), "dane_providers:Q", "tlsa_hosts:Q"],
        )  # fmt: skip
    )
    return _series(line, marts, "DANE MX host zones (providers)")


def _per_suffix(
    marts: Marts, field: str, title: str, y_title: str, total: str | None = None
) -> alt.LayerChart:
    """One line per suffix of a mart_suffix_daily column, and the day's total if asked."""
    lines = (
        alt.Chart(_data(marts["mart_suffix_daily"], "mart_suffix_daily"))
        .mark_line(point=alt.OverlayMarkDef(size=12))
        .encode(
            x=_day(),
            y=alt.Y(f"{field}:Q", title=y_title),
            color=alt.Color("suffix:N", title="suffix"),
            tooltip=[alt.Tooltip("date:N"), "suffix:N", alt.Tooltip(f"{field}:Q", format=",")],
        )  # fmt: skip
    )
    extra = []
    if total:
        extra.append(
            alt.Chart(_data(marts["mart_daily_totals"], "mart_daily_totals"))
            .mark_line(color="#222", strokeWidth=2.5, strokeDash=[1, 0])
            .encode(
                x=_day(),
                y=f"{total}:Q",
                tooltip=[
                    alt.Tooltip("date:N"),
                    alt.Tooltip(f"{total}:Q", title="all suffixes", format=","),
                ],
            )  # fmt: skip
        )
    return _series(lines, marts, title, *extra)


def zones_with_ds(marts: Marts) -> alt.TopLevelMixin:
    """Zones with DS records per suffix (coloured) and in total (black), per day."""
    return _per_suffix(marts, "signed", "Zones with DS records, per suffix and in total",
                       "zones with DS", total="signed")  # fmt: skip


def candidates(marts: Marts) -> alt.TopLevelMixin:
    """Candidate domains per suffix and in total: where import steps and decay show."""
    return _per_suffix(marts, "candidates", "Candidate domains, per suffix and in total",
                       "candidates", total="candidates")  # fmt: skip


def problem_free(marts: Marts) -> alt.TopLevelMixin:
    """% of signed domains whose MX answer validates, per suffix."""
    return _per_suffix(marts, "pct_problem_free", "% DNSSEC-problem-free signed domains",
                       "% problem-free")  # fmt: skip


def working_dnskey(marts: Marts) -> alt.TopLevelMixin:
    """% of signed domains whose DS leads to a validating DNSKEY set, per suffix."""
    return _per_suffix(marts, "pct_working_dnskey", "% working DNSKEY among signed domains",
                       "% working DNSKEY")  # fmt: skip


def latest(rows: Rows, field: str = "date") -> Rows:
    """The rows of the newest day in `rows`."""
    last = max((r[field] for r in rows), default=None)
    return [r for r in rows if r[field] == last]


def top_dnssec_tlds(marts: Marts) -> alt.TopLevelMixin:
    """Suffixes by signed domains on the newest day, coloured by their day-over-day story."""
    rows = latest(marts["mart_top_dnssec_tlds"])
    day = rows[0]["date"] if rows else "no data"
    return (
        alt.Chart(_data(rows, "mart_top_dnssec_tlds"))
        .mark_bar()
        .encode(
            x=alt.X("signed:Q", title="signed domains (DS)"),
            y=alt.Y("suffix:N", sort="-x", title=None),
            color=alt.Color("story:N", title="story"),
            tooltip=[
                "suffix:N",
                "rank:Q",
                alt.Tooltip("signed:Q", format=","),
                alt.Tooltip("change:Q", format="+,"),
                "story:N",
            ],
        )  # fmt: skip
        .properties(width=WIDTH, title=f"Top DNSSEC suffixes on {day}")
    )


def new_dane_providers(marts: Marts) -> alt.TopLevelMixin:
    """Every DANE provider: domains now, and the day it first served a DANE-enabled domain."""
    rows = marts["mart_new_dane_providers"]
    order = alt.EncodingSortField("dane_domains_now", order="descending")
    base = alt.Chart(_data(rows, "mart_new_dane_providers")).encode(
        y=alt.Y("provider:N", sort=order, title=None)
    )
    bars = base.mark_bar(color="#54a24b").encode(
        x=alt.X("dane_domains_now:Q", title="DANE-enabled domains now"),
        tooltip=["provider:N", alt.Tooltip("first_seen:N"),
                 "dane_domains_first_day:Q", "dane_domains_now:Q", "tlsa_hosts_now:Q"],
    )  # fmt: skip
    labels = base.transform_calculate(label="'since ' + datum.first_seen").mark_text(
        align="left", dx=4, fontSize=10
    ).encode(x="dane_domains_now:Q", text="label:N")  # fmt: skip
    return alt.layer(bars, labels).properties(
        width=WIDTH, title="DANE providers and the day each first appeared"
    )


def _lookup(field: str, table: dict[int, str], as_: str) -> alt.LookupData:
    names = [{field: k, as_: f"{k} {v}"} for k, v in sorted(table.items())]
    return alt.LookupData(_data(names, f"iana_{as_}"), key=field, fields=[as_])


def ds_algorithms(marts: Marts) -> alt.TopLevelMixin:
    """Domains with DS records per DNSKEY algorithm and per digest type, per day."""
    base = alt.Chart(_data(marts["mart_ds_algorithms"], "mart_ds_algorithms"))

    def panel(field: str, table: dict[int, str], as_: str, title: str) -> alt.Chart:
        return (
            base.transform_lookup(lookup=field, from_=_lookup(field, table, as_))
            .transform_calculate(**{as_: f"datum.{as_} || ('' + datum.{field})"})
            .mark_bar()
            .encode(
                x=_day(),
                y=alt.Y("sum(ds_records):Q", title="DS records"),
                color=alt.Color(f"{as_}:N", title=title),
                tooltip=[
                    alt.Tooltip("date:N"),
                    f"{as_}:N",
                    alt.Tooltip("sum(ds_records):Q", title="DS records"),
                ],
            )  # fmt: skip
            .properties(width=WIDTH // 2 - 40, height=HEIGHT - 60, title=f"DS records by {title}")
        )

    return alt.hconcat(
        panel("algorithm", ALGORITHMS, "algorithm_name", "algorithm"),
        panel("digest_type", DIGESTS, "digest_name", "digest type"),
    ).resolve_scale(color="independent")


def failure_reasons(marts: Marts) -> alt.TopLevelMixin:
    """Why domains are not secure, on the newest day: domains per reason and status."""
    rows = latest(marts["mart_failure_reasons"])
    day = rows[0]["date"] if rows else "no data"
    return (
        alt.Chart(_data(rows, "mart_failure_reasons"))
        .mark_bar()
        .encode(
            x=alt.X("sum(domains):Q", title="domains"),
            y=alt.Y("reason:N", sort="-x", title=None),
            color=alt.Color("dnssec:N", title="status"),
            tooltip=["reason:N", "dnssec:N", alt.Tooltip("domains:Q", format=",")],
        )
        .properties(width=WIDTH, title=f"Reasons on {day}")
    )


def denial(marts: Marts) -> alt.TopLevelMixin:
    """Zones by how they deny existence on the newest day: NSEC, or NSEC3 with its
    iterations, salt and opt-out (as the scans' negative answers showed them)."""
    rows = latest(marts["mart_chart_denial"])
    day = rows[0]["date"] if rows else "no data"
    kind = ("datum.denial == 'NSEC' ? 'NSEC' : 'NSEC3, ' + datum.iterations + ' iterations'"
            " + (datum.salted ? ', salt' : '') + (datum.opt_out ? ', opt-out' : '')")  # fmt: skip
    return (
        alt.Chart(_data(rows, "mart_chart_denial"))
        .transform_calculate(parameters=kind)
        .mark_bar()
        .encode(
            x=alt.X("count():Q", title="zones"),
            y=alt.Y("parameters:N", sort="-x", title=None),
            color=alt.Color("denial:N", title="denial"),
            tooltip=["parameters:N", alt.Tooltip("count():Q", title="zones")],
        )
        .properties(width=WIDTH, title=f"Denial of existence on {day} (zones seen in denials)")
    )


def suffix_trend(marts: Marts) -> alt.TopLevelMixin:
    """One suffix's counts per day (candidates, signed, secure MX, DANE), with its annotations.
    `marts` holds that suffix's rows only: the caller filters, by value, never in the spec."""
    base = alt.Chart(_data(marts["mart_suffix_daily"], "mart_suffix_daily"))
    lines = (
        _fold(base, ["candidates", "signed", "secure_mx", "dane_domains"], "domains")
        .mark_line(point=True)
        .encode(
            x=_day(),
            y=alt.Y("domains:Q", title="domains"),
            color=alt.Color(
                "series:N",
                title=None,
                legend=alt.Legend(orient="top-left"),
                sort=[MEASURES[f] for f in ("candidates", "signed", "secure_mx", "dane_domains")],
            ),
            tooltip=[alt.Tooltip("date:N"), "series:N", alt.Tooltip("domains:Q", format=",")],
        )  # fmt: skip
    )
    return _series(lines, marts, "Domains per day")


def suffix_health(marts: Marts) -> alt.TopLevelMixin:
    """One suffix's % problem-free and % working DNSKEY per day."""
    base = alt.Chart(_data(marts["mart_suffix_daily"], "mart_suffix_daily"))
    lines = (
        _fold(base, ["pct_problem_free", "pct_working_dnskey"], "pct")
        .mark_line(point=True)
        .encode(
            x=_day(),
            y=alt.Y("pct:Q", title="% of signed domains", scale=alt.Scale(domain=[0, 100])),
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom-left")),
            tooltip=[alt.Tooltip("date:N"), "series:N", "pct:Q"],
        )  # fmt: skip
    )
    return _series(lines, marts, "DNSSEC health of the signed domains")


@dataclass(frozen=True)
class ChartDef:
    """One chart of the survey: what it reads and how it is drawn."""

    name: str
    title: str
    marts: tuple[str, ...]  # the marts it draws (annotations come on top for time series)
    build: Callable[[Marts], alt.TopLevelMixin]
    time_series: bool = True

    @property
    def reads(self) -> tuple[str, ...]:
        return self.marts + (ANNOTATION_MARTS if self.time_series else ())

    def spec(self, marts: Marts, validate: bool = True) -> dict:
        return spec(self.build(marts), validate)


def spec(chart: alt.TopLevelMixin, validate: bool = True) -> dict:
    """The Vega-Lite spec of a chart. Validation against the schema costs about half a second
    a chart: a caller drawing one shape many times (a page per suffix) checks the first only."""
    return chart.to_dict(validate=validate)


CHARTS: dict[str, ChartDef] = {
    c.name: c
    for c in (
        ChartDef("secure_mx_and_dane", "Domains with secure MX and with DANE SMTP",
                 ("mart_daily_totals",), secure_mx_and_dane),
        ChartDef("dane_providers", "DANE MX host zones (providers)", ("mart_daily_totals",),
                 dane_providers),
        ChartDef("zones_with_ds", "Zones with DS records, per suffix and in total",
                 ("mart_suffix_daily", "mart_daily_totals"), zones_with_ds),
        ChartDef("candidates", "Candidate domains, per suffix and in total",
                 ("mart_suffix_daily", "mart_daily_totals"), candidates),
        ChartDef("top_dnssec_tlds", "Top DNSSEC suffixes", ("mart_top_dnssec_tlds",),
                 top_dnssec_tlds, time_series=False),
        ChartDef("new_dane_providers", "Noteworthy new DANE providers",
                 ("mart_new_dane_providers",), new_dane_providers, time_series=False),
        ChartDef("problem_free", "% DNSSEC-problem-free per suffix", ("mart_suffix_daily",),
                 problem_free),
        ChartDef("working_dnskey", "% working DNSKEY per suffix", ("mart_suffix_daily",),
                 working_dnskey),
        ChartDef("ds_algorithms", "DS algorithms and digest types", ("mart_ds_algorithms",),
                 ds_algorithms, time_series=False),
        ChartDef("failure_reasons", "Failure reasons", ("mart_failure_reasons",),
                 failure_reasons, time_series=False),
        ChartDef("denial", "NSEC and NSEC3 parameters", ("mart_chart_denial",), denial,
                 time_series=False),
    )
}  # fmt: skip


def datasets(spec: dict) -> dict[str, list[Rows]]:
    """Every inline dataset of a spec by its name (a layered chart may carry one several
    times): how a test reads back what a chart draws."""
    found: dict[str, list[Rows]] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, dict) and "values" in data:
                found.setdefault(data.get("name", ""), []).append(data["values"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    return found
