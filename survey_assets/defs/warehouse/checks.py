"""Warehouse checks: import spikes and gentle decay (blocking: charts are not redrawn on bad
data), Great Expectations contracts on the staging tables and marts, and scan freshness."""

import dagster as dg

from survey_assets.defs.constants import (
    CONTRACT_CHECK,
    GENTLE_DECAY_CHECK,
    IMPORT_SPIKES_CHECK,
    LAKE_VIEWS,
    SCAN_FRESHNESS_CHECK,
    WAREHOUSE_POOL,
)
from survey_assets.defs.metadata import md_table
from survey_assets.defs.resources import SurveySettings
from survey_assets.defs.warehouse.assets import warehouse
from survey_assets.warehouse import checks
from survey_assets.warehouse.contracts import CONTRACTS, run_contract


def _result(finding: checks.Finding, columns: tuple[str, ...] = ()) -> dg.AssetCheckResult:
    metadata = {k: dg.MetadataValue.json(v) if isinstance(v, dict | list) else v
                for k, v in finding.metadata.items()}  # fmt: skip
    if finding.rows and columns:
        metadata["observed"] = md_table(columns, [[r[c] for c in columns] for r in finding.rows])
    return dg.AssetCheckResult(
        passed=finding.passed,
        severity=dg.AssetCheckSeverity.ERROR
        if finding.severity == checks.ERROR
        else dg.AssetCheckSeverity.WARN,
        description=finding.description,
        metadata=metadata,
    )


@dg.asset_check(asset="mart_spikes", name=IMPORT_SPIKES_CHECK, blocking=True, pool=WAREHOUSE_POOL)
def import_spikes(survey: SurveySettings) -> dg.AssetCheckResult:
    """A day-over-day jump in candidates: WARN when a source's first import or re-import
    explains it (charts draw it as an annotation), ERROR and blocking when nothing does."""
    with warehouse(survey, read_only=True) as con:
        finding = checks.import_spikes(con)
    return _result(finding, ("date", "scope", "before", "after", "explained_names", "explained_by"))


@dg.asset_check(asset="mart_decay", name=GENTLE_DECAY_CHECK, blocking=True, pool=WAREHOUSE_POOL)
def gentle_decay(survey: SurveySettings) -> dg.AssetCheckResult:
    """A suffix that loses names steadily: WARN with the slope and the window; a sudden drop:
    ERROR and blocking."""
    with warehouse(survey, read_only=True) as con:
        finding = checks.gentle_decay(con)
    return _result(
        finding, ("suffix", "window_start", "window_end", "slope_pct_per_day", "worst_drop")
    )


@dg.asset_check(asset=LAKE_VIEWS, name=SCAN_FRESHNESS_CHECK, pool=WAREHOUSE_POOL)
def scan_freshness(survey: SurveySettings) -> dg.AssetCheckResult:
    """Every day that has candidates has its domain, MX host and DANE results; in production,
    the newest is at most a day old."""
    import datetime as dt

    with warehouse(survey, read_only=True) as con:
        finding = checks.scan_freshness(con, None if survey.lab else dt.date.today())
    return _result(finding)


def contract_check(table: str) -> dg.AssetChecksDefinition:
    contract = CONTRACTS[table]

    # Contracts on marts block what reads them; on staging tables they report (an ERROR) and
    # let the marts build, so the spike and decay checks still judge the day.
    @dg.asset_check(asset=table, name=CONTRACT_CHECK, blocking=table.startswith("mart_"),
                    pool=WAREHOUSE_POOL,
                    description=f"Great Expectations contract of {table}: "
                    + ", ".join(name for name, _ in contract.expectations))  # fmt: skip
    def _check(survey: SurveySettings) -> dg.AssetCheckResult:
        with warehouse(survey, read_only=True) as con:
            outcome = run_contract(con, contract)
        failed = [r for r in outcome["results"] if not r["success"]]
        return dg.AssetCheckResult(
            passed=outcome["success"],
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{len(failed)} of {len(outcome['results'])} expectations failed"
            if failed
            else f"{len(outcome['results'])} expectations met on {outcome['rows']:,} rows",
            metadata={
                "rows_checked": outcome["rows"],
                "expectations": md_table(
                    ("expectation", "arguments", "met", "unexpected", "examples"),
                    [
                        (
                            r["expectation"],
                            r["kwargs"],
                            r["success"],
                            r["unexpected"] or 0,
                            ", ".join(r["examples"]),
                        )
                        for r in outcome["results"]
                    ],
                ),  # fmt: skip
            },
        )

    return _check


CONTRACT_CHECKS = [contract_check(table) for table in CONTRACTS]
