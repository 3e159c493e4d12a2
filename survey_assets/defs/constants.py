"""Asset keys, groups, pools and partitions: declared once, imported everywhere."""

from __future__ import annotations

import dagster as dg

from survey_assets.lab.world import LAB_EPOCH

# Groups, one per layer, in the order the data flows.
LAB_GROUP = "lab"
SOURCES_GROUP = "sources"
SCANS_GROUP = "scans"

# Asset keys.
ZONE_DOWNLOADS = dg.AssetKey("zone_downloads")
RAW_ZONE_LISTS = dg.AssetKey("raw_zone_lists")
CANDIDATE_DOMAINS = dg.AssetKey("candidate_domains")
DOMAIN_SCANS = dg.AssetKey("domain_scans")
MX_HOST_SCANS = dg.AssetKey("mx_host_scans")
NAMESERVER_PROBES = dg.AssetKey("nameserver_probes")
LAB_TRUTH = dg.AssetKey("lab_truth")

# Lake datasets (folder names under lake/).
LAB_TRUTH_DATASET = "lab_truth"
DOMAIN_SCANS_DATASET = "domain_scans"
MX_HOST_SCANS_DATASET = "mx_host_scans"
NAMESERVER_PROBES_DATASET = "nameserver_probes"

# Sensors.
ZONE_FILES_SENSOR = "zone_files_sensor"

DAILY = dg.DailyPartitionsDefinition(start_date=LAB_EPOCH.isoformat())

# A day's domain and MX host scans run as this many steps, one Parquet file each; a name's
# shard is a stable hash of it (survey_assets.lake.parquet.shard_of). Changing it is safe:
# a partition is always published whole.
SCAN_SHARDS = 8

# STARTTLS captures and DANE verdicts (issue 5).
DANE_GROUP = "dane"
CERTIFICATE_CAPTURES = dg.AssetKey("certificate_captures")
DANE_VERDICTS = dg.AssetKey("dane_verdicts")
CERTIFICATE_CAPTURES_DATASET = "certificate_captures"
DANE_VERDICTS_DATASET = "dane_verdicts"

# The warehouse (issue 6): views over the lake, then one table per SQL model. Only assets and
# checks in this pool open warehouse.duckdb, and dagster.yaml limits every pool to one step at
# a time, so DuckDB's single writer is never contended, even in a multiprocess backfill.
WAREHOUSE_GROUP = "warehouse"
WAREHOUSE_POOL = "warehouse"
LAKE_VIEWS = dg.AssetKey("lake_views")
WAREHOUSE_FILE = "warehouse.duckdb"
IMPORT_SPIKES_CHECK = "import_spikes"
GENTLE_DECAY_CHECK = "gentle_decay"
SCAN_FRESHNESS_CHECK = "scan_freshness"
CONTRACT_CHECK = "contract"

# Charts and the stats site (issue 7): one asset per chart (`chart_<name>`), then the site.
# Both read the warehouse, so they take its pool: DuckDB lets no reader in beside a writer.
CHARTS_GROUP = "charts"
SITE_GROUP = "site"
SITE = dg.AssetKey("site")
CHARTS_DIR = "charts"  # <data_dir>/charts/<name>.{vl.json,html,png}
SITE_DIR = "site"  # <data_dir>/site/, a static site


def chart_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(f"chart_{name}")


WAREHOUSE_JOB = "warehouse_build"  # the warehouse and everything that reads it, in one run
