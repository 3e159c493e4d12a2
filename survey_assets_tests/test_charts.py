"""Charts: every chart the lab survey drew carries exactly the rows of the marts it draws (read
back from its Vega-Lite spec and compared with the warehouse through DuckDB's own JSON), the
import and decay annotations are on the time series, the PNG is in the asset's metadata, and
scanned names are only ever data, never expression or markup."""

from __future__ import annotations

import base64
import json
import shutil

import dagster as dg
import duckdb
import pytest

from survey_assets.charts import render, specs
from survey_assets.defs.constants import chart_key
from survey_assets.lab import world as W

# The first test that asks for lab_survey builds it: fourteen lab days and the warehouse, about
# five minutes on two busy cores, more than the default per-test timeout.
pytestmark = pytest.mark.timeout(900)
LATEST_ONLY = {"top_dnssec_tlds", "failure_reasons", "denial"}  # the newest day's rows


def _canonical(rows: list[dict]) -> list[str]:
    """Rows as sorted JSON texts: a multiset, whatever order the chart put them in."""
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


def _mart(con: duckdb.DuckDBPyConnection, mart: str, latest: bool = False) -> list[dict]:
    where = f" WHERE date = (SELECT max(date) FROM {mart})" if latest else ""
    return [
        json.loads(r[0]) for r in con.execute(f"SELECT to_json(t) FROM {mart} t{where}").fetchall()
    ]


@pytest.fixture(scope="module")
def con(lab_survey):
    connection = duckdb.connect(str(lab_survey / "warehouse.duckdb"), read_only=True)
    yield connection
    connection.close()


@pytest.mark.parametrize("name", sorted(specs.CHARTS))
def test_every_chart_draws_exactly_its_marts(lab_survey, con, name):
    chart = specs.CHARTS[name]
    spec = json.loads((lab_survey / "charts" / f"{name}.vl.json").read_text())
    drawn = specs.datasets(spec)
    for mart in chart.marts:
        want = _canonical(_mart(con, mart, latest=name in LATEST_ONLY))
        assert want, f"{mart} is empty in the lab survey: nothing to compare"
        assert drawn[mart], f"{name} does not draw {mart}"
        for values in drawn[mart]:
            assert _canonical(values) == want, f"{name}: its {mart} data differs from the mart"
    if chart.time_series:
        # The annotations are the checks' marts, whole: a rule per import, a band per decay.
        assert [_canonical(v) for v in drawn["mart_import_events"]] == [
            _canonical(_mart(con, "mart_import_events"))
        ] * 2
        assert [_canonical(v) for v in drawn["mart_decay"]] == [
            _canonical(_mart(con, "mart_decay"))
        ] * 2
    png = (lab_survey / "charts" / f"{name}.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    page = (lab_survey / "charts" / f"{name}.html").read_text()
    assert json.loads(page.split('id="spec">', 1)[1].split("</script>", 1)[0]) == spec


def test_the_lab_annotations_are_the_list_import_and_the_fading_tld(con):
    """What the annotations mean in the lab, known without the marts: the name list's first
    import on its day, and lab-fade's decay."""
    spec = specs.CHARTS["candidates"].spec(
        {m: _mart(con, m) for m in specs.CHARTS["candidates"].reads}
    )
    drawn = specs.datasets(spec)
    events = {(e["date"], e["source"]) for e in drawn["mart_import_events"][0]}
    assert (W.date_of(W.Day.LIST_IMPORT).isoformat(), "passive-dns") in events
    bands = [d["suffix"] for d in drawn["mart_decay"][0] if d["decaying"]]
    assert bands == ["lab-fade."]
    layers = spec["layer"]
    assert any(layer["mark"]["type"] == "rule" for layer in layers)
    band = next(layer for layer in layers if layer["mark"]["type"] == "rect")
    assert band["transform"] == [{"filter": "datum.decaying"}]
    assert band["encoding"]["x"]["field"] == "window_start"
    assert band["encoding"]["x2"]["field"] == "window_end"


def test_the_denial_mart_is_the_lab_zones_parameters(con):
    """mart_chart_denial (parsed from the scans' evidence) against the lab's world: each zone
    it saw that is a lab domain or TLD denies with the world's NSEC or NSEC3 parameters."""
    import dns.name

    rows = con.execute(
        "SELECT date, zone, denial, iterations, salted, opt_out FROM mart_chart_denial"
    ).fetchall()
    checked = set()
    for date, zone, denial, iterations, salted, opt_out in rows:
        labels = dns.name.from_text(zone).labels
        if len(labels) == 2 and labels[0].decode() in W.ALL_TLDS:
            tld = W.ALL_TLDS[labels[0].decode()]
            want = (
                tld.denial.upper(),
                tld.nsec3_iterations,
                bool(tld.nsec3_salt),
                tld.nsec3_optout,
            )
        else:
            domain = W.world(W.DEFAULT_SEED, "tiny", date).lookup_domain(labels)
            if domain is None or domain.tld == W.INFRA_TLD.label:
                continue  # a provider's zone: the world does not describe its denial here
            want = (domain.denial.upper(), domain.nsec3_iterations, bool(domain.nsec3_salt), False)
        if denial == "NSEC":
            want = want[:1] + (None, None, None)
        assert (denial, iterations, salted, opt_out) == want, (date, zone)
        checked.add((zone, denial, iterations))
    assert {d for _, d, _ in checked} == {"NSEC", "NSEC3"}
    assert any(i == W.NSEC3_HIGH_ITERATIONS for *_, i in checked)  # the showcase domain


def test_charts_wait_for_the_blocking_checks():
    """Every chart asset reads mart_spikes and mart_decay, whose checks block on bad data."""
    from survey_assets.definitions import build
    from survey_assets.settings import Settings

    graph = build(Settings(lab_scale="tiny")).resolve_asset_graph()
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert {("mart_spikes", "import_spikes"), ("mart_decay", "gentle_decay")} <= checks
    for name, chart in specs.CHARTS.items():
        parents = {k.to_user_string() for k in graph.get(chart_key(name)).parent_keys}
        assert {"mart_spikes", "mart_decay", *chart.marts} <= parents, name
        assert graph.get(chart_key(name)).group_name == "charts"
        assert graph.get(chart_key(name)).partitions_def is None


def test_a_failed_blocking_check_keeps_the_old_chart(lab_survey, tmp_path):
    """An unexplained jump (one day's candidates doubled) fails import_spikes: the chart is
    not redrawn, its files stay as they were."""
    from survey_assets.definitions import build
    from survey_assets.settings import Settings
    from survey_assets_tests.conftest import materialize_warehouse, warehouse_selection

    root = tmp_path / "copy"
    shutil.copytree(lab_survey, root, ignore=shutil.ignore_patterns("lab", "dagster", "site"))
    folder = root / "lake" / "candidate_domains" / f"date={W.date_of(10)}"
    for part in sorted(folder.glob("*.parquet")):
        shutil.copy(part, part.with_name("part-dup-" + part.name))
    key = chart_key("candidates")
    graph = build(Settings(data_dir=root, lab_scale="tiny")).resolve_asset_graph()
    upstream = dg.AssetSelection.assets(key).upstream().resolve(graph)
    before = {p.name: p.stat().st_mtime_ns for p in (root / "charts").glob("candidates.*")}
    assert sorted(before) == ["candidates.html", "candidates.png", "candidates.vl.json"]
    result = materialize_warehouse(root, upstream & warehouse_selection(root))
    spikes = [e for e in result.get_asset_check_evaluations() if e.check_name == "import_spikes"]
    assert len(spikes) == 1 and not spikes[0].passed and spikes[0].severity.value == "ERROR"
    assert result.asset_materializations_for_node("mart_suffix_daily")  # the marts were built
    assert not result.asset_materializations_for_node(key.to_user_string())
    assert {p.name: p.stat().st_mtime_ns for p in (root / "charts").glob("candidates.*")} == before


def test_a_chart_asset_shows_its_png_in_metadata(lab_survey, tmp_path):
    from survey_assets.definitions import build
    from survey_assets.settings import Settings

    shutil.copy(lab_survey / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    key = chart_key("dane_providers")
    job = build(
        Settings(data_dir=tmp_path, lab_scale="tiny")
    ).resolve_implicit_global_asset_job_def()
    result = job.get_subset(asset_selection={key}).execute_in_process(
        instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    metadata = result.asset_materializations_for_node(key.to_user_string())[0].metadata
    markdown = metadata["chart"].value
    assert markdown.startswith("![DANE MX host zones (providers)](data:image/png;base64,")
    png = base64.b64decode(markdown.split("base64,", 1)[1].rstrip(")"))
    assert png == (tmp_path / "charts" / "dane_providers.png").read_bytes()
    assert metadata["png"].value == str(tmp_path / "charts" / "dane_providers.png")


HOSTILE = [
    "<script>alert(1)</script>.",
    "x' + alert(1) + '.",
    'q"x\\.',
    "</script><b>.",
    "a&amp;b.",
]


def _hostile_marts() -> specs.Marts:
    """Every mart a chart reads, with hostile suffix and provider names."""
    days = ["2026-11-01", "2026-11-02"]
    suffix = [{"date": d, "suffix": s, "candidates": 10, "signed": 5, "secure_mx": 4,
               "dane_domains": 1, "pct_problem_free": 80.0, "pct_working_dnskey": 90.0}
              for d in days for s in HOSTILE]  # fmt: skip
    return {
        "mart_daily_totals": [
            {
                "date": d,
                "candidates": 50,
                "signed": 25,
                "secure_mx": 20,
                "dane_domains": 5,
                "dane_providers": 2,
                "tlsa_hosts": 3,
                "pct_dane_of_secure_mx": 25.0,
            }
            for d in days
        ],  # fmt: skip
        "mart_suffix_daily": suffix,
        "mart_top_dnssec_tlds": [
            {**r, "rank": 1, "change": 0, "pct_change": 0.0, "story": HOSTILE[0]} for r in suffix
        ],  # fmt: skip
        "mart_new_dane_providers": [
            {
                "provider": p,
                "first_seen": days[1],
                "dane_domains_first_day": 1,
                "tlsa_hosts_first_day": 1,
                "dane_domains_now": 2,
                "tlsa_hosts_now": 1,
            }
            for p in HOSTILE
        ],  # fmt: skip
        "mart_ds_algorithms": [
            {"date": d, "algorithm": 13, "digest_type": 2, "ds_records": 3, "domains": 3}
            for d in days
        ],  # fmt: skip
        "mart_failure_reasons": [
            {"date": d, "dnssec": "bogus", "reason": p, "domains": 1} for d in days for p in HOSTILE
        ],  # fmt: skip
        "mart_import_events": [
            {
                "date": days[1],
                "source": p,
                "kind": "first import",
                "names_added": 3,
                "suffixes": HOSTILE,
            }
            for p in HOSTILE
        ],  # fmt: skip
        "mart_chart_denial": [
            {
                "date": d,
                "zone": p,
                "denial": "NSEC3",
                "iterations": 1,
                "salted": True,
                "opt_out": False,
            }
            for d in days
            for p in HOSTILE
        ],
        "mart_decay": [
            {
                "suffix": p,
                "window_start": days[0],
                "window_end": days[1],
                "slope_pct_per_day": -2.0,
                "decaying": True,
            }
            for p in HOSTILE
        ],  # fmt: skip
    }


def _without_data(node: object) -> object:
    if isinstance(node, dict):
        return {k: _without_data(v) for k, v in node.items() if k != "values"}
    if isinstance(node, list):
        return [_without_data(v) for v in node]
    return node


@pytest.mark.parametrize("name", sorted(specs.CHARTS))
def test_scanned_names_are_data_never_expressions(name):
    marts = _hostile_marts()
    spec = specs.CHARTS[name].spec(marts)
    outside = json.dumps(_without_data(spec))
    for payload in HOSTILE:
        assert payload.rstrip(".") not in outside, f"{name} put a name outside its data"
        assert json.dumps(payload)[1:-1].rstrip(".") not in outside
    # ... and the names are there, as data, whenever the chart draws a mart that has them.
    has_names = any("alert(1)" in json.dumps(marts[m]) for m in specs.CHARTS[name].reads)
    assert ("alert(1)" in json.dumps(spec)) == has_names


def test_a_chart_page_keeps_a_hostile_name_inside_its_json():
    spec = specs.CHARTS["top_dnssec_tlds"].spec(_hostile_marts())
    page = render.chart_page(spec, "top </title><script>alert(1)</script>", "bundle.js")
    assert "<script>alert" not in page and "</script><b>" not in page
    assert page.count("<script") == 3  # the bundle, the JSON, the drawing: nothing else
    assert json.loads(page.split('id="spec">', 1)[1].split("</script>", 1)[0]) == spec


def test_a_missing_renderer_is_said(tmp_path):
    from survey_assets.charts.files import write_chart

    with pytest.raises(render.RendererMissing, match="vl-convert-python is not installed"):
        write_chart(tmp_path, "x", "x", {"mark": "bar"}, None)
    assert json.loads((tmp_path / "x.vl.json").read_text()) == {"mark": "bar"}
    assert not (tmp_path / "x.png").exists()
