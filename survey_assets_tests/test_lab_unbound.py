"""The lab's DNSSEC is real: Unbound, validating on its own, agrees with the ground truth."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from survey_assets import reasons as R
from survey_assets.lab import unbound
from survey_assets_tests.conftest import free_port, tiny_lab

pytestmark = pytest.mark.skipif(not unbound.available(), reason="Debian's unbound is not installed")

# Day 0 shows the faults that lab-secure fixes later; day 8 the jump, the DANE provider, the
# expired signatures and the disabled DS.
DATES = [dt.date(2026, 11, 1), dt.date(2026, 11, 9)]


def expected(status: str) -> str:
    """What a validator's answer can show of a truth status: bogus and indeterminate both SERVFAIL."""
    return "servfail" if status in (R.BOGUS, R.INDETERMINATE) else status


@pytest.mark.parametrize("date", DATES, ids=str)
def test_unbound_agrees_with_truth(tmp_path, date):
    with (
        tiny_lab(tmp_path / "lab", date) as lab,
        unbound.Unbound(lab.info, tmp_path / "unbound", free_port("127.0.0.1")) as validator,
    ):  # fmt: skip
        rows = [json.loads(line) for line in lab.info.truth.read_text().splitlines()]
        domains = [r for r in rows if r["kind"] == "domain"]
        hosts = [r for r in rows if r["kind"] == "mx_host"]
        assert len(domains) > 300 and len(hosts) > 30
        seen = {s: 0 for s in R.DNSSEC_STATUSES}
        disagreements = []
        for row in domains:
            got = validator.status(row["name"], "MX")
            if got != expected(row["dnssec"]):
                disagreements.append((row["name"], "MX", row["dnssec"], row["reasons"], got))
            seen[row["dnssec"]] += 1
        for row in hosts:
            got = validator.status(f"_25._tcp.{row['name']}", "TLSA")
            if got != expected(row["dnssec"]):
                disagreements.append((row["name"], "TLSA", row["dnssec"], row["reasons"], got))
        assert not disagreements, disagreements[:20]
        assert not lab.errors
    # Every status occurs, so the agreement is not vacuous.
    assert all(seen.values()), seen
