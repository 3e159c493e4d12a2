"""Scan assets: each candidate's MX answer and each MX host's TLSA answer, validated."""

import asyncio
import contextlib
import datetime as dt
from collections import Counter

import dagster as dg
import polars as pl

from survey_assets.defs.constants import (
    CANDIDATE_DOMAINS,
    DAILY,
    DOMAIN_SCANS,
    DOMAIN_SCANS_DATASET,
    MX_HOST_SCANS,
    MX_HOST_SCANS_DATASET,
    NAMESERVER_PROBES,
    NAMESERVER_PROBES_DATASET,
    SCANS_GROUP,
)
from survey_assets.defs.metadata import md_table
from survey_assets.defs.resources import SurveySettings
from survey_assets.dns import probes
from survey_assets.dns.client import ClientSettings, DnsClient
from survey_assets.dns.scan import read_anchor, scan_domains, scan_hosts
from survey_assets.lake.parquet import read_partition, replace_partition

CLIENT = ClientSettings(timeout=2.0, retries=3, max_in_flight=200)
SCHEMA = {
    "name": pl.String,
    "dnssec": pl.String,
    "reasons": pl.List(pl.String),
    "zone": pl.String,
    "evidence": pl.List(pl.String),
}


def _scan(context: dg.AssetExecutionContext, survey: SurveySettings, run) -> list[dict]:
    date = dt.date.fromisoformat(context.partition_key)
    with survey.lab_serving(date) if survey.lab else contextlib.nullcontext():
        anchors = read_anchor(survey.trust_anchor_path.read_text())  # the lab writes it on start
        return asyncio.run(run(anchors, survey.scan_time(date)))


def _summary(rows: list[dict]) -> dict:
    statuses = Counter(r["dnssec"] for r in rows)
    reasons = Counter(c for r in rows for c in r["reasons"])
    return {
        "dagster/row_count": len(rows),
        "by_status": dg.MetadataValue.json(dict(statuses.most_common())),
        "by_reason": md_table(("reason", "count"), reasons.most_common()),
    }


@dg.asset(key=DOMAIN_SCANS, deps=[CANDIDATE_DOMAINS], partitions_def=DAILY, group_name=SCANS_GROUP,
          kinds={"parquet", "dns"})  # fmt: skip
def domain_scans(context: dg.AssetExecutionContext, survey: SurveySettings) -> dg.MaterializeResult:
    """Every candidate's MX answer with its DNSSEC status (secure, insecure, bogus,
    indeterminate) and reasons, validated in-process from the trust anchor, with the records
    and signatures as evidence."""
    date = dt.date.fromisoformat(context.partition_key)
    names = read_partition(survey.lake, "candidate_domains", date)["name"].to_list()
    rows = _scan(context, survey, lambda anchors, now: scan_domains(
        names, survey.resolver_address, anchors, now, CLIENT))  # fmt: skip
    frame = pl.DataFrame(rows, schema={**SCHEMA, "mx": pl.List(pl.String)})
    path = replace_partition(survey.lake, DOMAIN_SCANS_DATASET, date, frame)
    return dg.MaterializeResult(
        metadata={**_summary(rows), "path": dg.MetadataValue.path(str(path))}
    )


@dg.asset(key=MX_HOST_SCANS, deps=[DOMAIN_SCANS], partitions_def=DAILY, group_name=SCANS_GROUP,
          kinds={"parquet", "dns"})  # fmt: skip
def mx_host_scans(
    context: dg.AssetExecutionContext, survey: SurveySettings
) -> dg.MaterializeResult:
    """Every distinct MX host of the day, once however many domains use it: the TLSA RRset at
    _25._tcp.<host> with its DNSSEC status and reasons (a broken denial of existence is its own
    reason), and how many of the day's domains use the host."""
    date = dt.date.fromisoformat(context.partition_key)
    domains = read_partition(survey.lake, DOMAIN_SCANS_DATASET, date)
    users = (
        domains.filter(pl.col("dnssec") != "indeterminate")
        .select("name", "mx").explode("mx").drop_nulls("mx")
        .group_by("mx").agg(pl.len().alias("domains")).sort("mx")
    )  # fmt: skip
    hosts = users["mx"].to_list()
    rows = _scan(context, survey, lambda anchors, now: scan_hosts(
        hosts, survey.resolver_address, anchors, now, CLIENT))  # fmt: skip
    frame = pl.DataFrame(rows, schema={**SCHEMA, "tlsa": pl.List(pl.String)}).with_columns(
        domains=users["domains"]
    )
    path = replace_partition(survey.lake, MX_HOST_SCANS_DATASET, date, frame)
    return dg.MaterializeResult(
        metadata={**_summary(rows), "path": dg.MetadataValue.path(str(path))}
    )


@dg.asset(key=NAMESERVER_PROBES, deps=[CANDIDATE_DOMAINS, MX_HOST_SCANS], partitions_def=DAILY,
          group_name=SCANS_GROUP, kinds={"parquet", "dns"})  # fmt: skip
def nameserver_probes(
    context: dg.AssetExecutionContext, survey: SurveySettings
) -> dg.MaterializeResult:
    """Every nameserver address of the root, the suffixes and the day's candidates, asked
    directly: EDNS(0), the DO bit, NODATA (not NOTIMP/REFUSED) for TLSA and unknown types, TCP,
    empty non-terminals, and SOA serials that agree between the servers of a zone."""
    date = dt.date.fromisoformat(context.partition_key)
    candidates = read_partition(survey.lake, "candidate_domains", date).select(
        "name", "suffix", "ns", "ds", "glue"
    )
    hosts = read_partition(survey.lake, MX_HOST_SCANS_DATASET, date)
    ent_zones = {
        row["zone"]: f"_tcp.{row['name']}"
        for row in hosts.filter(pl.col("tlsa").list.len() > 0).iter_rows(named=True)
        if row["zone"]
    }
    settings = ClientSettings(timeout=1.0, retries=1, max_in_flight=200)
    port = 53 if not survey.lab else survey.lab_dns_port

    async def run() -> list[dict]:
        async with DnsClient([survey.resolver_address], settings) as client:
            found = await probes.targets(
                client, survey.resolver_address, candidates.to_dicts(), ent_zones
            )
            return await probes.probe_all(found, port, client)

    with survey.lab_serving(date) if survey.lab else contextlib.nullcontext():
        rows = asyncio.run(run())
    frame = pl.DataFrame(rows, schema={"name": pl.String, "address": pl.String, "zone": pl.String,
                                       "serial": pl.Int64, "reasons": pl.List(pl.String)})  # fmt: skip
    path = replace_partition(survey.lake, NAMESERVER_PROBES_DATASET, date, frame)
    reasons = Counter(c for r in rows for c in r["reasons"])
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "servers_with_problems": sum(bool(r["reasons"]) for r in rows),
            "by_reason": dg.MetadataValue.json(dict(reasons.most_common())),
            "path": dg.MetadataValue.path(str(path)),
        }
    )
