"""Asset keys, groups, pools and partitions: declared once, imported everywhere."""

from __future__ import annotations

import dagster as dg

from survey_assets.lab.world import LAB_EPOCH

# Groups, one per layer, in the order the data flows.
LAB_GROUP = "lab"
SOURCES_GROUP = "sources"

# Asset keys.
ZONE_DOWNLOADS = dg.AssetKey("zone_downloads")
LAB_TRUTH = dg.AssetKey("lab_truth")

# Lake datasets (folder names under lake/).
LAB_TRUTH_DATASET = "lab_truth"

# Pools: the warehouse file has one writer at a time.
WAREHOUSE_POOL = "warehouse"

DAILY = dg.DailyPartitionsDefinition(start_date=LAB_EPOCH.isoformat())
