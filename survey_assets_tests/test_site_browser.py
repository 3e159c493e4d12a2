"""The site in a real browser: headless Chromium (Debian's, driven by Playwright) loads the
overview over HTTP from `survey site serve`'s server, and a suffix page and explore from the
folder (file://). No console error, no request that leaves the machine, no dialog (a script
from a scanned name would open one); the charts are drawn; a click on a column name sorts the
rows both ways; explore finds a lab domain with the warehouse's status, and a hostile name as
text. Screenshots are kept in test-artifacts/browser/ (SURVEY_TEST_ARTIFACTS moves it)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import duckdb
import pytest

from survey_assets.settings import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The first test that asks for lab_survey builds it: fourteen lab days and the warehouse, about
# five minutes on two busy cores, more than the default per-test timeout.
pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Debian's chromium is not installed (.ci/run installs it)",
    ),
    pytest.mark.timeout(900),
]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-default-apps",
        "--disable-sync", "--no-default-browser-check"]  # fmt: skip
HOSTILE = "<script>alert\\(1\\)</script>.lab-cc."


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = (
        Path(os.environ.get("SURVEY_TEST_ARTIFACTS", PROJECT_ROOT / "test-artifacts")) / "browser"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def server(lab_survey):
    from survey_assets.site.serve import make_server

    httpd = make_server(lab_survey / "site", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


class Watch:
    """Everything a page did that it must not: console errors, uncaught exceptions, dialogs,
    and requests for anything but the site itself."""

    def __init__(self, page, allowed: tuple[str, ...]) -> None:
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

        def route(request_route) -> None:
            url = request_route.request.url
            if url.startswith(allowed):
                request_route.continue_()
            else:
                self.outside.append(url)
                request_route.abort()

        page.route("**/*", route)

    def clean(self) -> None:
        assert self.errors == [] and self.outside == [] and self.dialogs == []


def _charts_drawn(page) -> int:
    total = page.locator(".vega[data-spec]").count()
    page.wait_for_function(
        f"document.querySelectorAll('.vega[data-drawn] svg').length === {total}", timeout=30_000
    )
    return total


def _column(page, table: str, index: int) -> list[str]:
    return page.eval_on_selector_all(
        f"#{table} tbody tr td:nth-child({index})", "cells => cells.map(c => c.dataset.sort)"
    )


def _sorts_both_ways(page, table: str, header: str, numeric: bool) -> list:
    th = page.locator(f"#{table} thead th", has_text=header).first
    index = page.eval_on_selector_all(f"#{table} thead th", "ths => ths.map(t => t.textContent)")
    column = [i for i, text in enumerate(index) if text.strip() == header][0] + 1
    before = _column(page, table, column)
    key = float if numeric else str
    th.click()
    up = [key(v) for v in _column(page, table, column)]
    assert th.get_attribute("aria-sort") == "ascending"
    th.click()
    down = [key(v) for v in _column(page, table, column)]
    assert th.get_attribute("aria-sort") == "descending"
    assert sorted(up) == sorted(key(v) for v in before) and len(up) > 2
    assert up == sorted(up) and down == sorted(down, reverse=True) and up != down
    return up


def test_the_site_in_chromium(browser, server, lab_survey, artifacts):
    site = lab_survey / "site"
    con = duckdb.connect(str(lab_survey / "warehouse.duckdb"), read_only=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watch = Watch(page, ("file://", server + "/", "data:"))

    # The overview, over HTTP from the loopback server.
    page.goto(server + "/index.html")
    assert _charts_drawn(page) == 4
    page.screenshot(path=artifacts / "overview.png", full_page=True)
    candidates = _sorts_both_ways(page, "suffixes", "candidates", numeric=True)
    want = sorted(r[0] for r in con.execute(
        "SELECT candidates FROM mart_suffix_daily WHERE date = (SELECT max(date) FROM mart_suffix_daily)"
    ).fetchall())  # fmt: skip
    assert candidates == want
    suffixes = _sorts_both_ways(page, "suffixes", "suffix", numeric=False)
    assert suffixes[0] == "lab-cc."
    page.screenshot(path=artifacts / "overview-sorted.png", full_page=True)

    # A suffix page, from the folder.
    page.goto((site / "tld" / "lab-jump.html").as_uri())
    assert _charts_drawn(page) == 2
    signed = _sorts_both_ways(page, "daily", "signed (DS)", numeric=True)
    days = con.execute("SELECT signed FROM mart_suffix_daily WHERE suffix = 'lab-jump.'").fetchall()
    assert signed == sorted(r[0] for r in days)
    page.screenshot(path=artifacts / "tld-lab-jump.png", full_page=True)

    # Explore, from the folder: a DANE domain of the newest day, as the warehouse has it.
    name, dnssec, dane, rollover, mx = con.execute(
        "SELECT name, dnssec, dane, rollover, mx FROM mart_domain_history "
        "WHERE date = (SELECT max(date) FROM mart_domain_history) AND dane = 'pass' "
        "AND rollover = 'ready' ORDER BY name LIMIT 1"
    ).fetchone()
    page.goto((site / "explore.html").as_uri())
    page.fill("#q", name.rstrip(".").upper())  # as a person types it
    page.press("#q", "Enter")
    page.wait_for_selector("#explore-result[data-found='1']")
    field = lambda f: page.inner_text(f"#explore-result [data-field='{f}']")  # noqa: E731
    assert (field("name"), field("dnssec"), field("dane"), field("rollover")) == (
        name, dnssec, dane, rollover)  # fmt: skip
    assert page.locator("#explore-hosts tbody tr").count() == len(mx)
    history = con.execute("SELECT count(*) FROM mart_domain_history WHERE name = ?", [name])
    assert page.locator("#explore-history tbody tr").count() == history.fetchone()[0]
    _sorts_both_ways(page, "explore-history", "day", numeric=False)
    page.screenshot(path=artifacts / "explore.png", full_page=True)

    # A hostile name: found, shown as the text it is, and nothing runs.
    page.fill("#q", HOSTILE)
    page.press("#q", "Enter")
    page.wait_for_function(
        "n => document.querySelector(\"#explore-result [data-field='name']\")?.textContent === n",
        arg=HOSTILE,
    )
    assert field("name") == HOSTILE
    assert page.locator("#explore-result script").count() == 0
    page.screenshot(path=artifacts / "explore-hostile.png", full_page=True)
    # ... and from a link with the name in the URL's fragment.
    page.goto((site / "explore.html").as_uri() + "#q=quote%5C%22x.lab-cc.")
    page.wait_for_selector("#explore-result[data-found='1']")
    assert field("name") == 'quote\\"x.lab-cc.'
    # A name the survey never saw says so.
    page.fill("#q", "never-seen.lab-cc")
    page.press("#q", "Enter")
    page.wait_for_selector("#explore-result[data-found='0']")
    assert "is not in the survey's index" in page.inner_text("#explore-result")
    con.close()
    watch.clean()
    context.close()
