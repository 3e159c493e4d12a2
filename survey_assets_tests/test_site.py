"""The static site built from the lab survey: its pages, links and numbers against the
warehouse, the explore index against mart_domain_history, the lab's hostile names as text
everywhere, and a site that still builds whole from an empty warehouse, a missing mart, a
suffix with no rows, or no chart renderer."""

from __future__ import annotations

import html
import html.parser
import json
import re
import shutil
from pathlib import Path

import dns.name
import duckdb
import pytest

from survey_assets.charts import specs
from survey_assets.lab import world as W
from survey_assets.site import explore
from survey_assets.site.build import build_site, slug
from survey_assets.site.stories import CONSISTENT, JUMP, LEADER, LOSS, REENABLED, stories

# The first test that asks for lab_survey builds it: fourteen lab days and the warehouse, about
# five minutes on two busy cores, more than the default per-test timeout.
pytestmark = pytest.mark.timeout(900)
PAGES = ["index.html", "tlds.html", "providers.html", "new-providers.html", "awards.html",
         "health.html", "explore.html"]  # fmt: skip
# Tags the templates use: anything else in a page would be markup from data.
TAGS = {"html", "head", "meta", "title", "link", "script", "body", "header", "a", "nav", "main",
        "p", "code", "footer", "h1", "h2", "h3", "span", "ul", "li", "em", "div", "figure",
        "figcaption", "section", "table", "caption", "thead", "tr", "th", "tbody", "td", "form",
        "label", "input", "button"}  # fmt: skip


class Page(html.parser.HTMLParser):
    """What a browser would see as markup: tags, attributes, scripts, text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.scripts: list[tuple[dict, str]] = []
        self._script: dict | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = dict(attrs)
            self.scripts.append((self._script, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)
        else:
            self.text.append(data)


def _rows(page_html: str, table_id: str) -> list[list[str | None]]:
    body = page_html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    body = body.split("<tbody>", 1)[1]
    return [
        [html.unescape(v) for v in re.findall(r'<td[^>]*data-sort="([^"]*)"', row)]
        for row in body.split("<tr>")[1:]
    ]


@pytest.fixture(scope="module")
def site(lab_survey) -> Path:
    return lab_survey / "site"


@pytest.fixture(scope="module")
def con(lab_survey):
    connection = duckdb.connect(str(lab_survey / "warehouse.duckdb"), read_only=True)
    yield connection
    connection.close()


def _html_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.html"))


def test_every_page_is_there_and_every_link_resolves(site, con):
    suffixes = [
        r[0] for r in con.execute("SELECT DISTINCT suffix FROM mart_suffix_daily").fetchall()
    ]
    assert len(suffixes) == 8
    for page in PAGES + [f"tld/{slug(s)}.html" for s in suffixes]:
        assert (site / page).is_file(), page
    for path in _html_files(site):
        parsed = Page(path.read_text())
        for _tag, attrs in parsed.tags:
            for attr in ("href", "src"):
                target = attrs.get(attr)
                if target is None or target.startswith(("#", "data:")):
                    continue
                assert not re.match(r"[a-z]+:", target), f"{path}: {target} leaves the site"
                local = (path.parent / target.split("#")[0]).resolve()
                assert local.is_file(), f"{path.relative_to(site)}: {target} is missing"


def test_the_headline_and_suffix_table_are_the_marts(site, con):
    page = (site / "index.html").read_text()
    last = con.execute("SELECT * FROM mart_daily_totals ORDER BY date DESC LIMIT 1").fetchone()
    columns = [d[0] for d in con.description]
    latest = dict(zip(columns, last, strict=True))
    values = dict(re.findall(r'<li data-key="(\w+)"><span class="value">([^<]*)</span>', page))
    assert values["candidates"] == f"{latest['candidates']:,}"
    assert values["dane_domains"] == f"{latest['dane_domains']:,}"
    assert values["secure_mx"] == f"{latest['secure_mx']:,}"
    assert values["pct_dane_of_secure_mx"] == f"{latest['pct_dane_of_secure_mx']:.2f} %"
    rows = _rows(page, "suffixes")
    want = con.execute(
        "SELECT suffix, candidates, signed, secure_mx, dane_domains FROM mart_suffix_daily "
        "WHERE date = (SELECT max(date) FROM mart_suffix_daily)"
    ).fetchall()
    got = {(r[0], int(r[1]), int(r[2]), int(r[4]), int(r[5])) for r in rows}
    assert got == set(want)


def test_the_charts_in_the_pages_draw_the_marts(site, con):
    def rows(sql: str, params: list | None = None) -> list[str]:
        found = con.execute(f"SELECT to_json(t) FROM ({sql}) t", params or []).fetchall()
        return sorted(json.dumps(json.loads(r[0]), sort_keys=True) for r in found)

    def charts(page: Path) -> dict[str, dict]:
        parsed = Page(page.read_text())
        return {a["id"]: json.loads(body) for a, body in parsed.scripts
                if a.get("type") == "application/json"}  # fmt: skip

    overview = charts(site / "index.html")
    assert set(overview) == {f"chart-{n}-spec" for n in ("secure_mx_and_dane", "dane_providers",
                                                         "zones_with_ds", "candidates")}  # fmt: skip
    drawn = specs.datasets(overview["chart-candidates-spec"])
    assert [
        sorted(json.dumps(r, sort_keys=True) for r in v) for v in drawn["mart_suffix_daily"]
    ] == [rows("SELECT * FROM mart_suffix_daily")]
    fade = charts(site / "tld" / "lab-fade.html")["chart-trend-spec"]
    drawn = specs.datasets(fade)
    assert sorted(json.dumps(r, sort_keys=True) for r in drawn["mart_suffix_daily"][0]) == rows(
        "SELECT * FROM mart_suffix_daily WHERE suffix = ?", ["lab-fade."]
    )
    assert [r["suffix"] for r in drawn["mart_decay"][0]] == ["lab-fade."]  # its own band only
    cc = specs.datasets(charts(site / "tld" / "lab-cc.html")["chart-trend-spec"])
    assert "mart_decay" not in cc  # lab-cc does not decay: no band
    assert [e["date"] for e in cc["mart_import_events"][0]] == [
        W.date_of(W.Day.LIST_IMPORT).isoformat()
    ]


def _index(site: Path) -> tuple[dict, dict[str, dict]]:
    manifest = (site / "explore" / "manifest.js").read_text()
    info = json.loads(manifest.split("manifest(", 1)[1].rsplit(")", 1)[0])
    entries = {}
    for n in range(info["shards"]):
        text = (site / "explore" / f"shard-{n}.js").read_text()
        prefix = f"window.surveyExplore.shard({n},"
        assert text.startswith(prefix)
        shard = json.loads(text[len(prefix) :].rstrip().removesuffix(");"))
        assert all(explore.shard_of(name, info["shards"]) == n for name in shard)
        entries |= shard
    return info, entries


def test_the_explore_index_is_the_domain_history(site, con):
    info, entries = _index(site)
    history = con.execute(
        "SELECT name, date, dnssec, dane, rollover, reasons FROM mart_domain_history ORDER BY date"
    ).fetchall()
    latest = {r[0]: r for r in history}
    assert set(entries) == set(latest) and info["names"] == len(latest)
    for name, (_, date, dnssec, dane, rollover, reasons) in latest.items():
        got = entries[name]["latest"]
        assert (got["date"], got["dnssec"], got["dane"], got["rollover"], got["reasons"]) == (
            date.isoformat(), dnssec, dane, rollover, reasons)  # fmt: skip
        assert len(entries[name]["history"]) == sum(r[0] == name for r in history)
    # A DANE domain's hosts carry their TLSA records and the outcome at every address.
    dane = next(e for e in entries.values() if e["latest"]["dane"] == "pass")
    assert dane["hosts"] and all(h["tlsa"] and h["addresses"] for h in dane["hosts"])
    assert all(a["dane"] == "pass" for h in dane["hosts"] for a in h["addresses"])


def test_fnv_matches_the_reference_vectors():
    assert explore.fnv1a("") == 0x811C9DC5
    assert explore.fnv1a("a") == 0xE40C292C
    assert explore.fnv1a("foobar") == 0xBF9CF968


def _hostile_names() -> list[str]:
    return [dns.name.Name([label, b"lab-cc", b""]).to_text() for label in W.HOSTILE_LABELS]


def test_hostile_names_are_text_everywhere(site):
    names = [n for n in _hostile_names() if any(c in n for c in '<"\\&')]
    assert "<script>alert\\(1\\)</script>.lab-cc." in names
    _, entries = _index(site)
    for name in names:  # the lab's hostile names are in the survey ...
        assert name in entries, name
    shown = {n: 0 for n in names}
    for path in sorted(site.rglob("*")):
        if not path.is_file() or path.name == "vega-bundle.js":
            continue
        text = path.read_text()
        # ... never in a file as they are (every `<` of data is an entity or a \u003c escape)
        assert "<script>alert" not in text, path
        if path.suffix != ".html":
            continue
        parsed = Page(text)
        assert {tag for tag, _ in parsed.tags} <= TAGS, path
        for tag, attrs in parsed.tags:
            assert not any(a.startswith("on") for a in attrs), (path, tag, attrs)
        for attrs, body in parsed.scripts:
            assert attrs.get("src", "").endswith(("assets/vega-bundle.js", "assets/site.js",
                                                  "explore/manifest.js")) or (
                attrs.get("type") == "application/json" and json.loads(body)), (path, attrs)  # fmt: skip
        words = "".join(parsed.text)
        for name in names:
            shown[name] += words.count(name)  # ... but in the page's text, exactly
    assert all(shown.values()), shown
    cc = (site / "tld" / "lab-cc.html").read_text()
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;.lab-cc." in cc


def test_stories_table():
    rows = [
        {"date": "d1", "suffix": "a.", "signed": 10, "rank": 1, "change": 0, "story": "new"},
        {"date": "d2", "suffix": "a.", "signed": 11, "rank": 1, "change": 1, "story": "steady"},
        {"date": "d1", "suffix": "b.", "signed": 5, "rank": 2, "change": 0, "story": "new"},
        {"date": "d2", "suffix": "b.", "signed": 9, "rank": 2, "change": 4, "story": "big jump"},
        {"date": "d1", "suffix": "c.", "signed": 3, "rank": 3, "change": 0, "story": "new"},
        {"date": "d2", "suffix": "c.", "signed": 0, "rank": 3, "change": -3, "story": "disabled"},
        {"date": "d1", "suffix": "e.", "signed": 4, "rank": 3, "change": 0, "story": "new"},
        {"date": "d2", "suffix": "e.", "signed": 2, "rank": 3, "change": -2, "story": "some loss"},
    ]
    told = {(s.kind, s.suffix, s.date) for s in stories(rows)}
    assert told == {(LEADER, "a.", "d2"), (CONSISTENT, "a.", "d2"), (JUMP, "b.", "d2"),
                    ("disabled", "c.", "d2"), (LOSS, "e.", "d2")}  # fmt: skip
    again = rows + [{"date": "d3", "suffix": "c.", "signed": 3, "rank": 3, "change": 3,
                     "story": "re-enabled"}]  # fmt: skip
    assert (REENABLED, "c.", "d3") in {(s.kind, s.suffix, s.date) for s in stories(again)}
    assert stories([]) == []


def test_slugs_never_leave_the_folder():
    assert slug("lab-cc.") == "lab-cc" and slug("co.uk.") == "co.uk"
    for bad in ("../x.", "a/b.", "<x>.", "..", "A.", ""):
        assert re.fullmatch(r"_[0-9a-f]{16}", slug(bad)), bad


# Bad input -----------------------------------------------------------------------------------


def _all_pages_whole(out: Path) -> None:
    for path in _html_files(out):
        text = path.read_text()
        assert text.rstrip().endswith("</html>"), path
        Page(text)
    assert (out / "index.html").is_file() and (out / "explore.html").is_file()


def test_no_warehouse_builds_a_site_that_says_so(tmp_path):
    for warehouse in (tmp_path / "none.duckdb", tmp_path / "empty.duckdb"):
        if warehouse.name == "empty.duckdb":
            duckdb.connect(str(warehouse)).close()  # a file with no table: before the first day
        out = tmp_path / f"site-{warehouse.stem}"
        report = build_site(warehouse, out)
        _all_pages_whole(out)
        index = (out / "index.html").read_text()
        assert "Not available yet: the warehouse has no mart_daily_totals" in index
        assert ("There is no warehouse yet" in index) == (warehouse.name == "none.duckdb")
        assert "mart_daily_totals" in report.missing and report.domains == 0
        assert (
            "Not available yet: the warehouse has no mart_domain_history"
            in (out / "explore.html").read_text()
        )


def test_a_missing_mart_and_a_suffix_without_rows(lab_survey, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(lab_survey / "warehouse.duckdb", warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("DELETE FROM mart_top_dnssec_tlds WHERE suffix = 'lab-cc.'")
        con.execute("DROP TABLE mart_awards")
        con.execute("DELETE FROM mart_failure_reasons")
    out = tmp_path / "site"
    report = build_site(warehouse, out)
    _all_pages_whole(out)
    assert report.missing == ["mart_awards"]
    assert (
        "mart_top_dnssec_tlds has no rows for lab-cc." in (out / "tld" / "lab-cc.html").read_text()
    )
    assert "has no rows" not in (out / "tld" / "lab-jump.html").read_text()
    awards = (out / "awards.html").read_text()
    assert "Not available yet: the warehouse has no mart_awards." in awards
    assert "no domain with a reason" in (out / "health.html").read_text()


def test_no_chart_renderer_still_builds_the_site(lab_survey, tmp_path):
    out = tmp_path / "site"
    report = build_site(lab_survey / "warehouse.duckdb", out, renderer=None)
    _all_pages_whole(out)
    assert not report.renderer and report.charts == 0
    assert not (out / "assets" / "vega-bundle.js").exists()
    index = (out / "index.html").read_text()
    assert "vega-bundle.js" not in index and 'class="vega"' not in index
    assert index.count("the chart renderer (vl-convert-python) is not installed") == 4
    assert 'id="suffixes"' in index  # the numbers are still there
    # Building again replaces the folder whole, and leaves nothing beside it.
    build_site(lab_survey / "warehouse.duckdb", out, renderer=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]
