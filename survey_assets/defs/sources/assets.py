"""Source assets: zone lists as they arrive, imported into the lake, and the day's candidates."""

import datetime as dt

import dagster as dg

from survey_assets.defs.constants import (
    CANDIDATE_DOMAINS,
    DAILY,
    RAW_ZONE_LISTS,
    SOURCES_GROUP,
    ZONE_DOWNLOADS,
)
from survey_assets.defs.metadata import md_table
from survey_assets.defs.resources import SurveySettings
from survey_assets.lab.sources import LAB_SOURCES
from survey_assets.lab.zonefiles import write_source
from survey_assets.sources import candidates as C
from survey_assets.sources import czds_native
from survey_assets.sources.importer import RAW_DATASET, import_day


def _date(context: dg.AssetExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)


@dg.asset(key=ZONE_DOWNLOADS, partitions_def=DAILY, group_name=SOURCES_GROUP, kinds={"file"})
def zone_downloads(
    context: dg.AssetExecutionContext, survey: SurveySettings
) -> dg.MaterializeResult:
    """The day's downloaded zone lists, one folder per file source: CZDS zone files, registry
    master files and passive-DNS name lists. In the lab, the lab's registries publish them; in
    production a download job fills the folders and this asset records what arrived."""
    date = _date(context)
    lab_sources = {s.name: s for s in LAB_SOURCES}
    rows = []
    for source in survey.sources().sources:
        if not source.is_file_source:
            continue
        folder = source.folder(date)
        if survey.lab and source.name in lab_sources:
            write_source(survey.world(date), lab_sources[source.name], folder)
        files = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
        rows += [(source.name, p.name, p.stat().st_size) for p in files]
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(survey.downloads)),
            "files": len(rows),
            "downloads": md_table(("source", "file", "bytes"), rows),
        }
    )


@dg.asset(
    key=RAW_ZONE_LISTS,
    deps=[ZONE_DOWNLOADS],
    partitions_def=DAILY,
    group_name=SOURCES_GROUP,
    kinds={"parquet", "polars", "rust"},
)
def raw_zone_lists(
    context: dg.AssetExecutionContext, survey: SurveySettings
) -> dg.MaterializeResult:
    """Every record that delegates (NS, DS, glue A/AAAA, SOA) from each source's zone lists of
    the day, with provenance per file or transferred zone: checksum, lines, records, and each
    class of bad line with a count and samples. A damaged file is reported and skipped; the
    day's other files are imported, and the candidates fall back to that file's last good copy."""
    date = _date(context)
    config = survey.sources()
    now = dt.datetime.now(dt.UTC)
    if survey.lab and any(s.kind == "axfr" for s in config.sources):
        with survey.lab_serving(date):
            results = import_day(config, date, survey.lake, now)
    else:
        results = import_day(config, date, survey.lake, now)
    failed = [r for r in results if r.status != "ok"]
    for r in failed:
        context.log.error(f"{r.source}: {r.error}")
    # Without the compiled reader (czds_native warns once when loaded) polars reads them all.
    czds_reader = "compiled (rust/czds_reader)" if czds_native.available() else "polars"
    bad = {f"{r.source}/{r.feed}": r.stats.as_metadata()["bad"] for r in results if r.stats.bad}
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(r.stats.records for r in results),
            "path": dg.MetadataValue.path(str(survey.lake / RAW_DATASET / f"date={date}")),
            "feeds": len(results),
            "failed_feeds": dg.MetadataValue.json(
                [{"feed": f"{r.source}/{r.feed}", "error": r.error} for r in failed]
            ),
            "imports": md_table(
                ("source", "feed", "status", "lines", "records", "bad lines", "seconds"),
                [
                    (
                        r.source,
                        r.feed,
                        r.status,
                        r.stats.lines,
                        r.stats.records,
                        sum(r.stats.bad.values()),
                        r.seconds,
                    )
                    for r in results
                ],
            ),  # fmt: skip
            "bad_lines": dg.MetadataValue.json(bad),
            "czds_reader": czds_reader,
        }
    )


@dg.asset(
    key=CANDIDATE_DOMAINS,
    deps=[RAW_ZONE_LISTS],
    partitions_def=DAILY,
    group_name=SOURCES_GROUP,
    kinds={"parquet", "duckdb"},
)
def candidate_domains(
    context: dg.AssetExecutionContext, survey: SurveySettings
) -> dg.MaterializeResult:
    """The day's candidate domains: every name delegated directly below a public suffix, with its
    NS set, DS set and glue from the delegating zone, and per source the first and last day it
    listed the name. Uses each source's newest import on or before the day."""
    date = _date(context)
    config = survey.sources()
    con = C.connect(config.extra_suffixes, spill=survey.lake / ".staging" / "duckdb")
    try:
        report = C.build_candidates(con, survey.lake, date)
    finally:
        C.discard(con)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": report.rows,
            "path": dg.MetadataValue.path(str(report.path)),
            "per_suffix": md_table(("suffix", "candidates"), list(report.per_suffix.items())[:30]),
            "per_source": dg.MetadataValue.json(report.per_source),
            "added": report.added,
            "removed": report.removed,
            "added_sample": dg.MetadataValue.json(report.added_sample),
            "removed_sample": dg.MetadataValue.json(
                [{"name": n, "last_seen": s} for n, s in report.removed_sample]
            ),
            "anomalies": dg.MetadataValue.json(report.anomalies),
            "feeds_used": md_table(
                ("source", "zone", "imported"),
                [(f["source"], f["zone"], f["imported"]) for f in report.feeds],
            ),
        }
    )
