"""Contracts: Great Expectations 1.x suites run on bounded frames of the warehouse's tables.

Each contract is a query (at most `LIMIT` rows, a fixed sample for big tables) and the
expectations its rows must meet: keys present and unique, statuses in their vocabulary,
percentages in [0, 100], and counts that agree between levels (a day's suffixes add up to the
day's total). GX runs in an ephemeral context: nothing is written to disk.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

import duckdb

from survey_assets import reasons as R

LIMIT = 200_000
DANE = [R.PASS, R.FAIL, R.NOT_APPLICABLE]
ROLLOVER = list(R.ROLLOVER_STATES)


@dataclass(frozen=True)
class Contract:
    table: str
    sql: str
    expectations: tuple  # (expectation class name, kwargs)


def _e(name: str, **kwargs) -> tuple:
    return name, kwargs


CONTRACTS = {
    c.table: c
    for c in (
        Contract(
            "stg_domains",
            f"SELECT date, name, suffix, dnssec, dane, rollover FROM stg_domains "
            f"USING SAMPLE {LIMIT} ROWS (reservoir, 42)",
            (
                *(_e("ExpectColumnValuesToNotBeNull", column=c) for c in ("date", "name", "suffix")),
                _e("ExpectCompoundColumnsToBeUnique", column_list=["date", "name"]),
                _e("ExpectColumnValuesToBeInSet", column="dnssec", value_set=list(R.DNSSEC_STATUSES)),
                _e("ExpectColumnValuesToBeInSet", column="dane", value_set=DANE),
                _e("ExpectColumnValuesToBeInSet", column="rollover", value_set=ROLLOVER),
            ),
        ),
        Contract(
            "stg_mx_hosts",
            f"SELECT date, host, dnssec, dane, rollover FROM stg_mx_hosts "
            f"USING SAMPLE {LIMIT} ROWS (reservoir, 42)",
            (
                _e("ExpectColumnValuesToNotBeNull", column="host"),
                _e("ExpectCompoundColumnsToBeUnique", column_list=["date", "host"]),
                _e("ExpectColumnValuesToBeInSet", column="dnssec", value_set=list(R.DNSSEC_STATUSES)),
                _e("ExpectColumnValuesToBeInSet", column="dane", value_set=DANE),
            ),
        ),
        Contract(
            "mart_suffix_daily",
            f"SELECT * FROM mart_suffix_daily LIMIT {LIMIT}",
            (
                _e("ExpectCompoundColumnsToBeUnique", column_list=["date", "suffix"]),
                _e("ExpectColumnValuesToBeBetween", column="pct_problem_free", min_value=0, max_value=100),
                _e("ExpectColumnValuesToBeBetween", column="pct_working_dnskey", min_value=0, max_value=100),
                _e("ExpectColumnPairValuesAToBeGreaterThanB", column_A="candidates", column_B="signed", or_equal=True),
                _e("ExpectColumnPairValuesAToBeGreaterThanB", column_A="signed", column_B="secure_mx", or_equal=True),
            ),
        ),
        Contract(
            "mart_daily_totals",
            # The day's total and the sum over its suffixes, side by side.
            f"""SELECT t.date, t.candidates, s.candidates AS suffix_candidates, t.signed,
                       s.signed AS suffix_signed, t.dane_domains, s.dane_domains AS suffix_dane,
                       t.pct_dane_of_secure_mx
                FROM mart_daily_totals t
                JOIN (SELECT date, sum(candidates) AS candidates, sum(signed) AS signed,
                             sum(dane_domains) AS dane_domains
                      FROM mart_suffix_daily GROUP BY date) s USING (date) LIMIT {LIMIT}""",
            (
                _e("ExpectColumnValuesToBeUnique", column="date"),
                _e("ExpectColumnPairValuesToBeEqual", column_A="candidates", column_B="suffix_candidates"),
                _e("ExpectColumnPairValuesToBeEqual", column_A="signed", column_B="suffix_signed"),
                _e("ExpectColumnPairValuesToBeEqual", column_A="dane_domains", column_B="suffix_dane"),
                _e("ExpectColumnValuesToBeBetween", column="pct_dane_of_secure_mx", min_value=0, max_value=100),
            ),
        ),
    )
}  # fmt: skip


@functools.cache
def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    return gx, context


def run_contract(con: duckdb.DuckDBPyConnection, contract: Contract) -> dict:
    """Validate the contract's frame; returns success, rows checked and each expectation's result."""
    gx, context = _context()
    frame = con.execute(contract.sql).df()
    source = context.data_sources.add_or_update_pandas(f"warehouse_{contract.table}")
    asset = source.add_dataframe_asset(contract.table)
    batch = asset.add_batch_definition_whole_dataframe("bounded").get_batch(
        batch_parameters={"dataframe": frame}
    )
    suite = gx.ExpectationSuite(name=f"{contract.table}_contract")
    for name, kwargs in contract.expectations:
        suite.add_expectation(getattr(gx.expectations, name)(**kwargs))
    result = batch.validate(suite)
    return {
        "success": bool(result.success),
        "rows": len(frame),
        "results": [
            {
                "expectation": r.expectation_config.type,
                "kwargs": {k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"},
                "success": bool(r.success),
                "unexpected": r.result.get("unexpected_count"),
                "examples": [str(v) for v in (r.result.get("partial_unexpected_list") or [])[:5]],
            }
            for r in result.results
        ],
    }
