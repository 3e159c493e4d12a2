"""Scan assets: each candidate's MX answer and each MX host's TLSA answer, validated.

`domain_scans` and `mx_host_scans` are graph-backed assets: a plan step splits the day's
targets into SCAN_SHARDS shards by a stable hash of the name, one step per shard scans its
names and stages one Parquet file, and a publish step makes the staged files the whole
partition at once. The multiprocess executor runs the shards side by side, a shard that fails
is retried (or re-executed from failure) alone, and readers never see two runs mixed.
"""

import contextlib
import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import polars as pl

from survey_assets import eventloop
from survey_assets.defs.constants import (
    CANDIDATE_DOMAINS,
    DAILY,
    DOMAIN_SCANS,
    DOMAIN_SCANS_DATASET,
    MX_HOST_SCANS,
    MX_HOST_SCANS_DATASET,
    NAMESERVER_PROBES,
    NAMESERVER_PROBES_DATASET,
    SCAN_SHARDS,
    SCANS_GROUP,
)
from survey_assets.defs.metadata import md_table
from survey_assets.defs.resources import SurveySettings
from survey_assets.dns import probes
from survey_assets.dns.client import ClientSettings, DnsClient
from survey_assets.dns.scan import read_anchor, scan_domains, scan_hosts
from survey_assets.lake.parquet import (
    publish_parts,
    read_partition,
    replace_partition,
    shard_of,
    stage_part,
)

CLIENT = ClientSettings(timeout=2.0, retries=3, max_in_flight=200)
# A shard that raises (a crash, the lab going away) runs again, alone; DNS trouble does not
# raise: it gives indeterminate rows.
SHARD_RETRY = dg.RetryPolicy(max_retries=2, delay=2.0)
SCHEMA = {
    "name": pl.String,
    "dnssec": pl.String,
    "reasons": pl.List(pl.String),
    "zone": pl.String,
    "evidence": pl.List(pl.String),
}

# A shard's rows, and counts of how they were made for the asset's metadata.
Scanner = Callable[[pl.DataFrame, tuple[str, int], list, dt.datetime], tuple[pl.DataFrame, dict]]


def _date(context: dg.OpExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)


@contextlib.contextmanager
def _resolver(survey: SurveySettings, date: dt.date) -> Iterator[tuple[tuple[str, int], list]]:
    """The resolver and trust anchor a shard scans with. In the lab, a shard that finds no lab
    serving the day starts its own on free ports, so shards side by side never collide."""
    with survey.lab_serving(date, private=True) if survey.lab else contextlib.nullcontext() as lab:
        if lab is None:
            yield survey.resolver_address, read_anchor(survey.trust_anchor_path.read_text())
        else:
            info = lab.info
            yield (info.resolver, info.dns_port), read_anchor(info.trust_anchor.read_text())


def _domain_targets(survey: SurveySettings, date: dt.date) -> pl.DataFrame:
    """The day's candidates, each with what the warehouse counts it by besides its scan: its
    suffix and whether the parent holds a DS for it."""
    candidates = read_partition(survey.lake, "candidate_domains", date)
    return candidates.select("name", "suffix", parent_ds=pl.col("ds").list.len().fill_null(0) > 0)


def _scan_domains(targets, resolver, anchors, now) -> tuple[pl.DataFrame, dict]:
    """Scan rows carry their candidate's suffix and parent DS, so the warehouse counts a day's
    domains from its scans without joining them to the candidates again."""
    names = targets["name"].to_list()
    stats: dict = {}
    rows = eventloop.run(scan_domains(names, resolver, anchors, now, CLIENT, stats=stats))
    frame = pl.DataFrame(rows, schema={**SCHEMA, "mx": pl.List(pl.String)})
    if frame["name"].to_list() != names:  # scan_domains gives one row per name, in order
        raise RuntimeError("domain scan rows are not the targets in order: cannot carry suffixes")
    return frame.hstack(targets.select("suffix", "parent_ds")), stats


def _host_targets(survey: SurveySettings, date: dt.date) -> pl.DataFrame:
    """Every distinct MX host of the day's domains, with how many of them use it."""
    domains = read_partition(survey.lake, DOMAIN_SCANS_DATASET, date)
    return (
        domains.filter(pl.col("dnssec") != "indeterminate")
        .select("name", "mx").explode("mx").drop_nulls("mx")
        .group_by("mx").agg(pl.len().alias("domains")).sort("mx")
        .select(name="mx", domains="domains")
    )  # fmt: skip


def _scan_hosts(targets, resolver, anchors, now) -> tuple[pl.DataFrame, dict]:
    rows = eventloop.run(scan_hosts(targets["name"].to_list(), resolver, anchors, now, CLIENT))
    frame = pl.DataFrame(rows, schema={**SCHEMA, "tlsa": pl.List(pl.String)})
    return frame.with_columns(domains=targets["domains"]), {}


def _counts(frame: pl.DataFrame) -> dict:
    return {
        "rows": frame.height,
        "by_status": dict(Counter(frame["dnssec"].to_list())),
        "by_reason": dict(Counter(c for codes in frame["reasons"].to_list() for c in codes)),
    }


def sharded_scan(
    *,
    key: dg.AssetKey,
    dataset: str,
    upstream: dg.AssetKey,
    targets: Callable[[SurveySettings, dt.date], pl.DataFrame],
    scan: Scanner,
    description: str,
    kinds: set[str],
) -> dg.AssetsDefinition:
    """A daily scan asset as plan → one step per shard → publish (see the module's doc)."""
    name = key.to_python_identifier()

    @dg.op(name=f"plan_{name}", ins={"upstream": dg.In(dg.Nothing)},
           out=dg.DynamicOut(pl.DataFrame))  # fmt: skip
    def plan(context: dg.OpExecutionContext, survey: SurveySettings) -> Iterator[dg.DynamicOutput]:
        """The day's targets, split by a stable hash of the name; every shard is emitted, so a
        partition always has SCAN_SHARDS files."""
        found = targets(survey, _date(context))
        shard = pl.Series([shard_of(n, SCAN_SHARDS) for n in found["name"]], dtype=pl.Int64)
        for index in range(SCAN_SHARDS):
            yield dg.DynamicOutput(found.filter(shard == index), mapping_key=f"shard_{index:02d}")

    @dg.op(name=f"scan_{name}_shard", retry_policy=SHARD_RETRY)
    def scan_shard(
        context: dg.OpExecutionContext, survey: SurveySettings, shard: pl.DataFrame
    ) -> dict:
        """Scan one shard's names and stage its Parquet file."""
        date = _date(context)
        index = int(context.get_mapping_key().rsplit("_", 1)[1])
        with _resolver(survey, date) as (resolver, anchors):
            frame, stats = scan(shard, resolver, anchors, survey.scan_time(date))
        path = stage_part(survey.lake, dataset, date, context.run_id, index, frame)
        return {"shard": index, "path": str(path), "stats": stats, **_counts(frame)}

    @dg.op(name=f"publish_{name}", out=dg.Out(dg.Nothing))
    def publish(context: dg.OpExecutionContext, survey: SurveySettings, shards: list[dict]) -> None:
        """Swap the staged shard files in as the whole partition, and summarize it."""
        shards = sorted(shards, key=lambda s: s["shard"])
        folder = publish_parts(
            survey.lake, dataset, _date(context), [Path(s["path"]) for s in shards]
        )
        statuses = sum((Counter(s["by_status"]) for s in shards), Counter())
        reasons = sum((Counter(s["by_reason"]) for s in shards), Counter())
        stats = sum((Counter(s["stats"]) for s in shards), Counter())
        context.add_output_metadata({
            **{key: dg.MetadataValue.int(value) for key, value in sorted(stats.items())},
            "dagster/row_count": sum(s["rows"] for s in shards),
            "by_status": dg.MetadataValue.json(dict(statuses.most_common())),
            "by_reason": md_table(("reason", "count"), reasons.most_common()),
            "rows_by_shard": dg.MetadataValue.json([s["rows"] for s in shards]),
            "path": dg.MetadataValue.path(str(folder)),
        })  # fmt: skip

    @dg.graph_asset(key=key, ins={"upstream": dg.AssetIn(key=upstream, dagster_type=dg.Nothing)},
                    partitions_def=DAILY, group_name=SCANS_GROUP, kinds=kinds,
                    description=description)  # fmt: skip
    def asset(upstream):
        return publish(plan(upstream).map(scan_shard).collect())

    return asset


domain_scans = sharded_scan(
    key=DOMAIN_SCANS,
    dataset=DOMAIN_SCANS_DATASET,
    upstream=CANDIDATE_DOMAINS,
    targets=_domain_targets,
    scan=_scan_domains,
    kinds={"parquet", "dns", "rust"},  # rust: the fast path (dns/fastpath.py)
    description="Every candidate's MX answer with its DNSSEC status (secure, insecure, bogus, "
    "indeterminate) and reasons, validated in-process from the trust anchor, with the records "
    "and signatures as evidence, and the candidate's suffix and parent DS (parent_ds) beside it.",
)

mx_host_scans = sharded_scan(
    key=MX_HOST_SCANS,
    dataset=MX_HOST_SCANS_DATASET,
    upstream=DOMAIN_SCANS,
    targets=_host_targets,
    scan=_scan_hosts,
    kinds={"parquet", "dns"},
    description="Every distinct MX host of the day, once however many domains use it: the TLSA "
    "RRset at _25._tcp.<host> with its DNSSEC status and reasons (a broken denial of existence "
    "is its own reason), and how many of the day's domains use the host.",
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
        rows = eventloop.run(run())
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
