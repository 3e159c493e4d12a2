"""An independent DANE implementation agrees: Postfix's posttls-finger at level `dane`.

For every address of every lab MX host that publishes TLSA records, on the day of the botched
rotation and the day of the issuer change, the survey's own path (its DNS scan of the TLSA
answer, its STARTTLS capture, its matcher and verdicts: `survey check`'s `check_hosts`) and
posttls-finger (its own resolver calls through a validating Unbound, its own SMTP client,
OpenSSL's DANE) must reach the same outcome: a DANE-authenticated session, or not. Where both
pass, the record Postfix says matched must be one the survey says matched, at the same depth;
wherever Postfix saw a certificate, it must be the leaf the survey captured.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from survey_assets import reasons as R
from survey_assets.dns.check import check_hosts, tls_options
from survey_assets.dns.client import ClientSettings
from survey_assets.dns.scan import read_anchor, scan_hosts
from survey_assets.lab import posttls
from survey_assets.lab import world as W
from survey_assets_tests.conftest import tiny_lab

pytestmark = pytest.mark.skipif(posttls.unavailable() is not None,
                                reason=str(posttls.unavailable()))  # fmt: skip

DAYS = [W.Day.BOTCH, W.Day.ISSUER_CHANGE]


def _ours(lab, truth: list[dict], now: dt.datetime) -> tuple[dict, dict]:
    """(host, address) -> the survey's outcome and its address report ({} when not contacted);
    and host -> the survey's verdict on the host."""
    hosts = [r["name"] for r in truth if r["kind"] == "mx_host" and r["tlsa_count"]]
    resolver = (lab.info.resolver, lab.info.dns_port)
    anchors = read_anchor(lab.info.trust_anchor.read_text())

    async def run():
        rows = await scan_hosts(hosts, resolver, anchors, now, ClientSettings(timeout=1.0))
        return await check_hosts(rows, resolver, tls_options(lab.smtp_port, lab=True), now)

    reports, _ = asyncio.run(run())
    ours = {}
    hosts_dane = {host["name"]: host["dane"] for host in reports}
    for host in reports:
        by_address = {a["address"]: a for a in host["addresses"]}
        for address in W.World(W.DEFAULT_SEED, "tiny", lab.info.date).host(host["name"]).addresses:
            report = by_address.get(address, {})
            # Not contacted (a TLSA answer that is not secure): the host's verdict decides,
            # fail (bogus: mail deferred) or n/a (insecure: no DANE, so no authentication).
            outcome = report.get("dane", host["dane"])
            ours[host["name"], address] = (outcome, report)
    return ours, hosts_dane


@pytest.fixture(scope="module", params=DAYS, ids=lambda d: f"day{d}")
def compared(request, tmp_path_factory) -> dict:
    day = request.param
    date = W.date_of(day)
    root = tmp_path_factory.mktemp(f"posttls{day}")
    with tiny_lab(root / "lab", date, tarpit_seconds=5) as lab:
        truth = [json.loads(x) for x in lab.info.truth.read_text().splitlines()]
        ours, hosts = _ours(lab, truth, dt.datetime.combine(date, dt.time(12), dt.UTC))
        with posttls.PostTlsFinger(lab.info, root / "posttls") as finger:
            theirs = {key: finger.check(*key) for key in ours}
    return {"day": day, "ours": ours, "hosts": hosts, "theirs": theirs}


def test_posttls_finger_agrees_address_by_address(compared):
    ours, theirs = compared["ours"], compared["theirs"]
    assert len(ours) >= 25
    disagree = [(host, address, ours[host, address][0], t.output.strip()[-300:])
                for (host, address), t in theirs.items()
                if (ours[host, address][0] == R.PASS) != t.verified]  # fmt: skip
    assert not disagree, disagree
    # Both outcomes are there: agreement is not two programs that always say the same word.
    outcomes = {o for o, _ in ours.values()}
    assert {R.PASS, R.FAIL} <= outcomes, outcomes
    assert sum(t.verified for t in theirs.values()) >= 10
    assert sum(not t.verified for t in theirs.values()) >= 10


def test_posttls_finger_agrees_host_by_host(compared):
    """A host passes for Postfix when every address is verified; for the survey, by its host
    verdict (which also weighs the TLSA answer: unusable, malformed, not secure)."""
    theirs: dict[str, bool] = {}
    for (host, _), t in compared["theirs"].items():
        theirs[host] = theirs.get(host, True) and t.verified
    ours = {host: dane == R.PASS for host, dane in compared["hosts"].items()}
    assert ours == theirs, {h for h in ours if ours[h] != theirs[h]}
    assert any(theirs.values()) and not all(theirs.values())


def test_posttls_finger_reached_the_address_asked_for(compared):
    """Each run judged the address under test (the others were closed), when it got that far."""
    for (host, address), t in compared["theirs"].items():
        assert t.reached in (None, address), (host, address, t.reached)
        if t.verified:
            assert t.reached == address


def test_posttls_finger_saw_the_same_leaf_and_matched_the_same_records(compared):
    seen = 0
    for key, t in compared["theirs"].items():
        _, report = compared["ours"][key]
        if t.leaf_sha256 is None or not report.get("certificates"):
            continue  # no certificate seen by one side (no TLS, or a host we do not contact)
        seen += 1
        leaf = report["certificates"][0]
        assert (t.leaf_sha256, t.leaf_spki_sha256) == (leaf["sha256"], leaf["spki_sha256"]), key
        if t.verified:
            assert t.matched, (key, t.output)
            ours = {(d, r["text"]) for r in report["records"] if r["status"] == "matched"
                    for d in r["depths"]}  # fmt: skip
            assert set(t.matched) <= ours, (key, t.matched, ours)
    assert seen >= 15


def test_the_rollover_days_are_among_them(compared):
    """The day's story is in the comparison: the botched host fails, the issuer change passes."""
    ours = compared["ours"]
    if compared["day"] == W.Day.BOTCH:
        assert ours["mx1.rollbad.lab-net.", "127.25.4.1"][0] == R.FAIL
        assert not compared["theirs"]["mx1.rollbad.lab-net.", "127.25.4.1"].verified
    else:
        assert ours["mx1.eeta.lab-net.", "127.25.5.1"][0] == R.PASS
        assert compared["theirs"]["mx1.eeta.lab-net.", "127.25.5.1"].verified
