"""Source assets: the zone lists as they arrive from registries and list providers."""

import datetime as dt

import dagster as dg

from survey_assets.defs.constants import DAILY, SOURCES_GROUP, ZONE_DOWNLOADS
from survey_assets.defs.resources import SurveySettings
from survey_assets.lab.zonefiles import write_zonefiles


@dg.asset(
    key=ZONE_DOWNLOADS,
    partitions_def=DAILY,
    group_name=SOURCES_GROUP,
    kinds={"file"},
)
def zone_downloads(
    context: dg.AssetExecutionContext, survey: SurveySettings
) -> dg.MaterializeResult:
    """The day's downloaded zone lists: CZDS zone files (gzipped) and passive-DNS name lists.

    In the lab they are written by the lab's registries; in production a download job fills the
    folder and this asset records what arrived.
    """
    date = dt.date.fromisoformat(context.partition_key)
    folder = survey.downloads(date)
    if survey.lab:
        written = write_zonefiles(survey.world(date), folder)
    elif folder.is_dir():
        written = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    else:
        raise FileNotFoundError(f"no downloads for {date.isoformat()}: {folder} does not exist")
    table = "\n".join(f"| {name} | {count} |" for name, count in written.items())
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(folder)),
            "files": len(written),
            "lines": dg.MetadataValue.md("| file | lines |\n|---|---|\n" + table),
        }
    )
