"""The warehouse over fourteen lab days: every mart against the lab's ground truth (computed
here from the truth rows, not by the marts' SQL), the checks on the lab's import spike and
decaying TLD, and an injected unexplained jump that must fail and block."""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter, defaultdict

import dns.name
import duckdb
import polars as pl
import pytest

from survey_assets import reasons as R
from survey_assets.lab import world as W
from survey_assets.lab.truth import _hosts_of, truth_rows
from survey_assets_tests.conftest import SURVEY_DAYS, materialize_warehouse
from survey_assets_tests.test_warehouse_rerun import RUN_TIMES, tables

# The session's lab_survey fixture (14 lab days) is built by whichever test asks first.
pytestmark = pytest.mark.timeout(1800)

DAYS = [W.date_of(i) for i in range(SURVEY_DAYS)]
CHAIN = {"ds_no_matching_dnskey", "dnskey_not_signed_by_ds_key", "revoked_key",
         "unsupported_algorithm", "unsupported_digest"}  # fmt: skip


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


class Truth:
    """What the marts must hold on one day, derived from the lab's truth rows."""

    def __init__(self, day: dt.date) -> None:
        self.world = W.world(W.DEFAULT_SEED, "tiny", day)
        rows = list(truth_rows(self.world))
        self.domains = [r for r in rows if r["kind"] == "domain"]
        self.hosts = {r["name"]: r for r in rows if r["kind"] == "mx_host"}

    def suffix_daily(self) -> dict[str, tuple]:
        by_suffix = defaultdict(list)
        for d in self.domains:
            by_suffix[d["tld"] + "."].append(d)
        out = {}
        for suffix, ds in by_suffix.items():
            signed = [d for d in ds if d["signed"]]
            out[suffix] = (
                len(ds),
                len(signed),
                sum(d["dnssec"] == R.SECURE and bool(d["mx"]) for d in ds),
                sum(d["dane"] == R.PASS for d in ds),
                _pct(sum(d["dnssec"] == R.SECURE for d in signed), len(signed)),
                _pct(
                    sum(
                        d["dnssec"] != R.INDETERMINATE and not CHAIN & set(d["reasons"])
                        for d in signed
                    ),
                    len(signed),
                ),  # fmt: skip
            )
        return out

    def primaries(self, row: dict) -> list[str]:
        if row["tld"] == W.INFRA_TLD.label:
            return row["mx"]
        domain = self.world.lookup_domain(dns.name.from_text(row["name"]).labels)
        hosts = _hosts_of(self.world, domain)
        best = min(p for p, _ in hosts)
        return [h.name for p, h in hosts if p == best]

    def providers(self) -> dict[str, tuple[int, int]]:
        """provider zone -> (TLSA-protected hosts, DANE-enabled domains), for providers with any."""
        zone = lambda host: dns.name.from_text(host).parent().to_text()  # noqa: E731
        hosts = Counter(zone(h) for h, r in self.hosts.items()
                        if r["dnssec"] == R.SECURE and r["tlsa_count"])  # fmt: skip
        domains = defaultdict(set)
        for d in self.domains:
            if d["dane"] == R.PASS:
                for host in self.primaries(d):
                    domains[zone(host)].add(d["name"])
        return {p: (hosts[p], len(names)) for p, names in domains.items()}


@pytest.fixture(scope="module")
def truths() -> dict[dt.date, Truth]:
    return {day: Truth(day) for day in DAYS}


@pytest.fixture(scope="module")
def con(lab_survey):
    connection = duckdb.connect(str(lab_survey / "warehouse.duckdb"), read_only=True)
    yield connection
    connection.close()


def test_every_day_is_in_the_warehouse(con):
    days = [r[0] for r in con.execute("SELECT date FROM mart_daily_totals ORDER BY 1").fetchall()]
    assert days == DAYS


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_suffix_daily_equals_the_truth(con, truths, day):
    got = {
        r[0]: tuple(r[1:])
        for r in con.execute(
            "SELECT suffix, candidates, signed, secure_mx, dane_domains, pct_problem_free, "
            "pct_working_dnskey FROM mart_suffix_daily WHERE date = ?",
            [day],
        ).fetchall()
    }
    assert got == truths[day].suffix_daily()


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_totals_and_providers_equal_the_truth(con, truths, day):
    truth = truths[day]
    providers = truth.providers()
    got = {
        r[0]: (r[1], r[2])
        for r in con.execute(
            "SELECT provider, tlsa_hosts, dane_domains FROM mart_dane_providers WHERE date = ?",
            [day],
        ).fetchall()
    }
    assert got == providers
    total = con.execute(
        "SELECT candidates, dane_domains, dane_providers FROM mart_daily_totals WHERE date = ?",
        [day],
    ).fetchone()
    dane = sum(d["dane"] == R.PASS for d in truth.domains)
    assert total == (len(truth.domains), dane, len(providers))


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_domain_history_and_rollover_equal_the_truth(con, truths, day):
    truth = truths[day]
    got = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT name, dnssec, dane, rollover, reasons FROM mart_domain_history WHERE date = ?",
            [day],
        ).fetchall()
    }
    want = {d["name"]: (d["dnssec"], d["dane"], d["rollover"], d["reasons"]) for d in truth.domains}
    assert got == want
    rollover = dict(
        con.execute("SELECT host, rollover FROM mart_rollover WHERE date = ?", [day]).fetchall()
    )
    want_hosts = {h: r["rollover"] for h, r in truth.hosts.items() if r["tlsa_count"]}
    assert rollover == want_hosts
    reasons = {
        (r[0], r[1]): r[2]
        for r in con.execute(
            "SELECT dnssec, reason, domains FROM mart_failure_reasons WHERE date = ?", [day]
        ).fetchall()
    }
    assert reasons == Counter((d["dnssec"], c) for d in truth.domains for c in d["reasons"])


def test_source_coverage_and_the_import_event(con, truths):
    for day in DAYS:
        got = dict(
            con.execute(
                "SELECT source, names FROM mart_source_coverage WHERE date = ?", [day]
            ).fetchall()
        )
        assert got == Counter(s for d in truths[day].domains for s in d["sources"]), day
    events = con.execute("SELECT date, source, kind FROM mart_import_events").fetchall()
    list_day = W.date_of(W.Day.LIST_IMPORT)
    assert (list_day, "passive-dns", "first import") in events
    assert all(e[0] != list_day or e[1] == "passive-dns" for e in events)


def test_new_dane_provider_and_the_jump_story(con):
    first = dict(con.execute("SELECT provider, first_seen FROM mart_new_dane_providers").fetchall())
    assert first["mailnova.lab-net."] == W.date_of(W.Day.DANE_ON)
    story = con.execute(
        "SELECT story FROM mart_top_dnssec_tlds WHERE suffix = 'lab-jump.' AND date = ?",
        [W.date_of(W.Day.JUMP)],
    ).fetchone()[0]
    assert story == "big jump"
    quiet = con.execute(
        "SELECT count(*) FROM mart_top_dnssec_tlds WHERE suffix = 'lab-jump.' AND date <> ? "
        "AND story = 'big jump'", [W.date_of(W.Day.JUMP)]
    ).fetchone()[0]  # fmt: skip
    assert quiet == 0


def test_the_spike_check_explains_the_list_import(lab_survey):
    from survey_assets.warehouse import checks

    with duckdb.connect(str(lab_survey / "warehouse.duckdb"), read_only=True) as con:
        finding = checks.import_spikes(con)
    assert not finding.passed and finding.severity == checks.WARN
    days = {r["date"] for r in finding.rows}
    assert days == {W.date_of(W.Day.LIST_IMPORT).isoformat()}
    assert all(r["explained_by"] == ["passive-dns"] for r in finding.rows)


def test_the_decay_check_finds_the_fading_tld_only(lab_survey):
    from survey_assets.warehouse import checks

    with duckdb.connect(str(lab_survey / "warehouse.duckdb"), read_only=True) as con:
        finding = checks.gentle_decay(con)
    assert not finding.passed and finding.severity == checks.WARN
    assert finding.metadata["decaying"] == ["lab-fade."]
    assert finding.rows[0]["slope_pct_per_day"] < 0


def test_an_unexplained_jump_fails_and_blocks(lab_survey, tmp_path):
    """Doubling one day's candidates (the same names twice) is no import: ERROR, and what
    reads the spikes is not built."""
    root = tmp_path / "copy"
    shutil.copytree(lab_survey, root, ignore=shutil.ignore_patterns("lab", "dagster"))
    day = DAYS[-3]
    folder = root / "lake" / "candidate_domains" / f"date={day}"
    for part in sorted(folder.glob("*.parquet")):
        shutil.copy(part, part.with_name("part-dup-" + part.name))
    result = materialize_warehouse(root)
    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }
    spikes = evaluations["mart_spikes", "import_spikes"]
    assert not spikes.passed and spikes.severity.value == "ERROR"
    assert "unexplained jump" in spikes.description and day.isoformat() in spikes.description
    # ... and the day after, when the count falls back by half, is a sudden drop.
    decay = evaluations["mart_decay", "gentle_decay"]
    assert not decay.passed and decay.severity.value == "ERROR"
    # The staging contract sees the duplicate keys too (and reports them without blocking).
    assert not evaluations["stg_domains", "contract"].passed
    assert not result.success  # the blocking check fails its step: nothing downstream is built


def test_the_readme_queries_run_and_answer(con):
    from survey_assets.warehouse.query import readme_queries

    queries = readme_queries()
    assert len(queries) == 10
    answers = [con.execute(q).fetchall() for q in queries]
    assert [len(a) for a in answers[:1]] == [SURVEY_DAYS]
    assert any(r[0] == "mailnova.lab-net." for r in answers[4])  # a new DANE provider
    assert answers[8] and all(r[4] for r in answers[8])  # the lab's spike, explained


def test_dane_changes_equal_the_truth(con, truths):
    for before, day in zip(DAYS, DAYS[1:], strict=False):
        old = {d["name"]: d["dane"] for d in truths[before].domains}
        new = {d["name"]: d["dane"] for d in truths[day].domains}
        want = {
            (n, old.get(n, R.NOT_APPLICABLE), new.get(n, R.NOT_APPLICABLE))
            for n in old.keys() | new.keys()
            if old.get(n, R.NOT_APPLICABLE) != new.get(n, R.NOT_APPLICABLE)
        }
        got = set(
            con.execute(
                "SELECT name, dane_before, dane_after FROM mart_dane_changes WHERE date = ?", [day]
            ).fetchall()
        )
        assert got == want, day
    botched = con.execute(
        "SELECT count(*) FROM mart_dane_changes WHERE date = ? AND dane_before = 'pass' "
        "AND dane_after = 'fail'", [W.date_of(W.Day.BOTCH)]
    ).fetchone()[0]  # fmt: skip
    assert botched > 0  # the botched rotation breaks its domains' mail


def test_scans_of_an_older_schema_give_the_same_marts(lab_survey, tmp_path):
    """Domain scans written before they carried each candidate's suffix and parent DS are
    counted from the candidates joined with them: every table equals the survey's own."""
    from survey_assets.warehouse.models import build_all

    lake = tmp_path / "lake"
    shutil.copytree(lab_survey / "lake", lake)
    older = DAYS[:3] + DAYS[-1:]
    for day in older:
        for part in (lake / "domain_scans" / f"date={day}").glob("*.parquet"):
            pl.read_parquet(part).drop("suffix", "parent_ds").write_parquet(part)
    leave_out = ("counted_from", *RUN_TIMES)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as rebuilt:
        build_all(rebuilt, lake)
        counted = dict(rebuilt.execute(
            "SELECT date, list_sort(list(DISTINCT counted_from)) FROM stg_domain_counts GROUP BY date"
        ).fetchall())  # fmt: skip
        assert counted == {d: ["candidates"] if d in older else ["scans"] for d in DAYS}
    got = tables(tmp_path / "warehouse.duckdb", leave_out)
    assert got == tables(lab_survey / "warehouse.duckdb", leave_out)
