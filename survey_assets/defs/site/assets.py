"""The static stats site: `<data_dir>/site/`, built from the warehouse after the charts."""

from pathlib import Path

import dagster as dg

from survey_assets.charts.specs import CHARTS
from survey_assets.defs.charts.assets import GUARDS
from survey_assets.defs.constants import (
    SITE,
    SITE_DIR,
    SITE_GROUP,
    WAREHOUSE_FILE,
    WAREHOUSE_POOL,
    chart_key,
)
from survey_assets.defs.resources import SurveySettings
from survey_assets.site.build import READS, build_site
from survey_assets.warehouse import access


@dg.asset(key=SITE, group_name=SITE_GROUP, pool=WAREHOUSE_POOL, kinds={"html"},
          deps=[chart_key(name) for name in CHARTS]
          + [dg.AssetKey(t) for t in sorted({*READS, *GUARDS})])  # fmt: skip
def site(context: dg.AssetExecutionContext, survey: SurveySettings) -> dg.MaterializeResult:
    """The survey's static stats site: an overview with the headline numbers and charts, a page
    per suffix, DANE providers, new providers, awards, DNSSEC health, and explore (a domain's
    latest status and history from a static index). It works opened from disk or served by any
    web server (`survey site serve`); it needs no network."""
    out = Path(survey.data_dir) / SITE_DIR
    warehouse = Path(survey.data_dir) / WAREHOUSE_FILE
    with access.locked(warehouse, read_only=True):  # besides the pool: see warehouse/access.py
        report = build_site(warehouse, out)
    for notice in report.notices:
        context.log.warning(notice)
    return dg.MaterializeResult(
        metadata={
            "site": dg.MetadataValue.path(str(out / "index.html")),
            "pages": len(report.pages),
            "charts": report.charts,
            "explore index (domains)": report.domains,
            "missing": dg.MetadataValue.json(report.missing),
            "serve it": dg.MetadataValue.md(f"`survey site serve` (folder `{out}`)"),
        }
    )
