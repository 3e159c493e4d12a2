"""Chart assets: one per chart of the survey (survey_assets/charts/specs.py), drawn from the
warehouse marts into `<data_dir>/charts/` as a Vega-Lite spec, an HTML page and a PNG.

Each depends on the marts it draws and on `mart_spikes` and `mart_decay`, whose blocking checks
(an unexplained jump, a sudden drop) keep a chart from being redrawn on bad data.
"""

import base64
from pathlib import Path

import dagster as dg

from survey_assets.charts.data import mart_rows
from survey_assets.charts.files import write_chart
from survey_assets.charts.render import RendererMissing, load_renderer
from survey_assets.charts.specs import CHARTS, ChartDef, datasets
from survey_assets.defs.constants import CHARTS_DIR, CHARTS_GROUP, WAREHOUSE_POOL, chart_key
from survey_assets.defs.resources import SurveySettings
from survey_assets.defs.warehouse.assets import warehouse

GUARDS = ("mart_spikes", "mart_decay")  # their blocking checks guard every chart


def chart_asset(chart: ChartDef) -> dg.AssetsDefinition:
    deps = sorted({*chart.reads, *GUARDS})

    @dg.asset(key=chart_key(chart.name), deps=[dg.AssetKey(m) for m in deps],
              group_name=CHARTS_GROUP, pool=WAREHOUSE_POOL, kinds={"altair", "png"},
              description=f"{chart.title}: {chart.build.__doc__}")  # fmt: skip
    def _chart(context: dg.AssetExecutionContext, survey: SurveySettings) -> dg.MaterializeResult:
        with warehouse(survey, read_only=True) as con:
            marts = {mart: mart_rows(con, mart) for mart in chart.reads}
        spec = chart.spec(marts)
        folder = Path(survey.data_dir) / CHARTS_DIR
        rows = {name: sum(len(v) for v in values) for name, values in datasets(spec).items()}
        metadata: dict = {"rows drawn": dg.MetadataValue.json(rows)}
        try:
            files = write_chart(folder, chart.name, chart.title, spec, load_renderer())
        except RendererMissing as exc:
            # The spec is still written: the site shows the chart's data as tables instead.
            context.log.warning(str(exc))
            spec_path = folder / f"{chart.name}.vl.json"  # written before the renderer is needed
            metadata |= {"renderer": str(exc), "spec": dg.MetadataValue.path(str(spec_path))}
            return dg.MaterializeResult(metadata=metadata)
        image = base64.b64encode(files.png.read_bytes()).decode()
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "chart": dg.MetadataValue.md(f"![{chart.title}](data:image/png;base64,{image})"),
                "png": dg.MetadataValue.path(str(files.png)),
                "html": dg.MetadataValue.path(str(files.html)),
                "spec": dg.MetadataValue.path(str(files.spec)),
            }
        )

    return _chart


CHART_ASSETS = [chart_asset(chart) for chart in CHARTS.values()]
