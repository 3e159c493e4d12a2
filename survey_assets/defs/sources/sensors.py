"""A sensor that notices new or changed zone files and requests the day's import."""

import datetime as dt
import json

import dagster as dg

from survey_assets.defs.constants import CANDIDATE_DOMAINS, DAILY, RAW_ZONE_LISTS, ZONE_FILES_SENSOR
from survey_assets.defs.resources import SurveySettings
from survey_assets.sources.config import Source


def _arrivals(source: Source) -> dict[str, str]:
    """date -> a signature of the files in that day's folder (names, sizes, modification times)."""
    root = source.folder(dt.date.min).parent
    found = {}
    if not root.is_dir():
        return found
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            dt.date.fromisoformat(folder.name)
        except ValueError:
            continue
        files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                       for p in folder.iterdir() if p.is_file() and not p.name.endswith(".tmp"))  # fmt: skip
        if files:
            found[folder.name] = str(hash(tuple(files)) & 0xFFFFFFFFFFFF)
    return found


@dg.sensor(
    name=ZONE_FILES_SENSOR,
    asset_selection=[RAW_ZONE_LISTS, CANDIDATE_DOMAINS],
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def zone_files_sensor(context: dg.SensorEvaluationContext, survey: SurveySettings):
    """Watches the czds, zonefile and list folders; a new or changed day folder requests the
    import of that day (raw_zone_lists, then candidate_domains)."""
    seen = json.loads(context.cursor) if context.cursor else {}
    valid = set(DAILY.get_partition_keys())
    requests = []
    for source in survey.sources().sources:
        if not source.is_file_source:
            continue
        for day, signature in _arrivals(source).items():
            key = f"{source.name}/{day}"
            if seen.get(key) == signature or day not in valid:
                continue
            seen[key] = signature
            requests.append(dg.RunRequest(run_key=f"{key}/{signature}", partition_key=day))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))
