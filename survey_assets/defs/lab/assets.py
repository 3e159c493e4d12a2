"""The lab's ground truth as a lake dataset, so tests and analyses can join the survey to it."""

import datetime as dt
import json
from collections import Counter

import dagster as dg
import polars as pl

from survey_assets.defs.constants import DAILY, LAB_GROUP, LAB_TRUTH, LAB_TRUTH_DATASET
from survey_assets.defs.resources import SurveySettings
from survey_assets.lab.truth import truth_rows
from survey_assets.lake.parquet import replace_partition


@dg.asset(key=LAB_TRUTH, partitions_def=DAILY, group_name=LAB_GROUP, kinds={"parquet"})
def lab_truth(context: dg.AssetExecutionContext, survey: SurveySettings) -> dg.MaterializeResult:
    """What a correct survey must find in the lab on the day: one row per domain, MX host,
    SMTP address and nameserver, with expected DNSSEC status, DANE outcome and reasons."""
    date = dt.date.fromisoformat(context.partition_key)
    rows = list(truth_rows(survey.world(date)))
    frame = pl.DataFrame(
        {
            "kind": [r["kind"] for r in rows],
            "name": [r["name"] for r in rows],
            "address": [r.get("address") for r in rows],
            "dnssec": [r.get("dnssec") for r in rows],
            "reasons": [r.get("reasons", []) for r in rows],
            "dane": [r.get("dane") for r in rows],
            "rollover": [r.get("rollover") for r in rows],
            "row": [json.dumps(r, sort_keys=True) for r in rows],
        }
    )
    path = replace_partition(survey.lake, LAB_TRUTH_DATASET, date, frame)
    kinds = Counter(r["kind"] for r in rows)
    statuses = Counter(r["dnssec"] for r in rows if r["kind"] == "domain")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "path": dg.MetadataValue.path(str(path)),
            "rows_by_kind": dict(kinds),
            "domains_by_dnssec_status": {str(k): v for k, v in statuses.items()},
            "preview": dg.MetadataValue.text(str(frame.head(10).drop("row"))),
        }
    )
