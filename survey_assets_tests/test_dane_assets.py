"""`certificate_captures` and `dane_verdicts` through Dagster, on the lab, against the truth.

The scan partitions they read are written here from the lab's truth and world (the scan assets
are another layer, tested on their own), plus a few rows of bad input; the two assets then run
for two consecutive days (the botched rollover's eve and day) against the lab's real SMTP
servers, and their lake rows must equal the truth.
"""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest

from survey_assets import reasons as R
from survey_assets.defs.dane.assets import certificate_captures, dane_verdicts
from survey_assets.defs.resources import SurveySettings
from survey_assets.lab import tlsa as lab_tlsa
from survey_assets.lab import world as W
from survey_assets.lab.truth import BEHAVIOUR_REASON, truth_rows
from survey_assets.lake.parquet import replace_partition
from survey_assets_tests.conftest import tiny_lab

DAYS = [W.date_of(W.Day.BOTCH - 1), W.date_of(W.Day.BOTCH)]
BAD_HOSTS = {
    # name: (TLSA texts, expected host verdict)
    "nowhere.bigdane.lab-net.": (["3 1 1 " + "ab" * 32], (R.FAIL, ["connect_failed"])),
    "garbled.bigdane.lab-net.": (["not a record", "3 1 1 zz"], (R.FAIL, ["tlsa_malformed"])),
}


def _scan_partitions(lake, date) -> list[dict]:
    """domain_scans and mx_host_scans for `date`, as the scan layer would write them."""
    w = W.world(W.DEFAULT_SEED, "tiny", date)
    truth = list(truth_rows(w))
    domains, hosts = [], []
    for row in truth:
        if row["kind"] == "domain":
            d = w.lookup_domain(tuple(_labels(row["name"])))
            mx = w.mx_records(d) if d is not None and row["mx"] else [(10, h) for h in row["mx"]]
            evidence = "\n".join(f"{row['name']} 300 IN MX {p} {h}" for p, h in mx)
            domains.append({"name": row["name"], "dnssec": row["dnssec"], "reasons": row["reasons"],
                            "mx": [h for _, h in sorted(mx)], "zone": row["name"],
                            "evidence": [evidence] if mx else []})  # fmt: skip
        elif row["kind"] == "mx_host":
            host = w.host(row["name"])
            tlsa = [lab_tlsa.tlsa_text(w.seed, host, s) for s in host.tlsa]
            hosts.append({"name": row["name"], "dnssec": row["dnssec"], "reasons": row["reasons"],
                          "tlsa": tlsa, "zone": host.zone, "evidence": [], "domains": 1})  # fmt: skip
    for name, (tlsa, _) in BAD_HOSTS.items():
        hosts.append({"name": name, "dnssec": R.SECURE, "reasons": [], "tlsa": tlsa,
                      "zone": "bigdane.lab-net.", "evidence": [], "domains": 0})  # fmt: skip
    replace_partition(lake, "domain_scans", date, pl.DataFrame(domains))
    replace_partition(lake, "mx_host_scans", date, pl.DataFrame(hosts))
    return truth


def _labels(name: str) -> list[bytes]:
    import dns.name

    return list(dns.name.from_text(name).labels)


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    root = tmp_path_factory.mktemp("dane-assets")
    truths, results = {}, {}
    with tiny_lab(root / "lab", DAYS[0]) as lab:  # tarpit 30 s: longer than the deadline
        survey = SurveySettings(data_dir=str(root), lab_scale="tiny", lab_dns_port=lab.dns_port,
                                lab_smtp_port=lab.smtp_port, sources_file="unused")  # fmt: skip
        for day in DAYS:
            lab.set_date(day)
            truths[day] = _scan_partitions(root / "lake", day)
            results[day] = dg.materialize(
                [certificate_captures, dane_verdicts], partition_key=day.isoformat(),
                resources={"survey": survey},
            )  # fmt: skip
            assert results[day].success
    return root, truths, results


def _lake(root, dataset, day) -> pl.DataFrame:
    return pl.read_parquet(root / "lake" / dataset / f"date={day}" / "*.parquet")


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_captures_equal_the_truth(materialized, day):
    root, truths, _ = materialized
    w = W.world(W.DEFAULT_SEED, "tiny", day)
    caps = {
        (r["host"], r["address"]): r for r in _lake(root, "certificate_captures", day).to_dicts()
    }
    expected = [r for r in truths[day] if r["kind"] == "address"]
    for row in expected:
        cap = caps.pop((row["name"], row["address"]))
        want = None if row["smtp"] == "ok" else BEHAVIOUR_REASON[row["smtp"]]
        assert cap["reason"] == want, (row, cap)
        if want is None:
            chain = [c.der for c in lab_tlsa.host_chain(w.seed, w.host(row["name"]))]
            assert cap["chain"] == chain
            assert [t["code"] for t in cap["transcript"]] == [220, 250, 220, 221]
    # What is left: hosts with TLSA whose zone is unsigned (no truth rows), and the bad input.
    for name in BAD_HOSTS:  # no address: one row saying so
        bad = caps.pop((name, None))
        assert (bad["reason"], bad["stage"]) == ("connect_failed", "dns")
    assert not [k for k in caps if not w.host(k[0]) or w.host(k[0]).zone_signed], caps.keys()


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_verdicts_equal_the_truth(materialized, day):
    root, truths, _ = materialized
    rows = _lake(root, "dane_verdicts", day).to_dicts()
    got = {(r["kind"], r["name"], r["address"]): r for r in rows}
    wrong = []
    for t in truths[day]:
        if t["kind"] not in ("domain", "mx_host", "address"):
            continue
        r = got.pop((t["kind"], t["name"], t.get("address")))
        if t["kind"] == "address":
            want, have = (t["dane"], t["reasons"]), (r["dane"], r["dane_reasons"])
        else:
            want = (t["dane"], t["dane_reasons"], t["rollover"], t["rollover_reasons"])
            have = (r["dane"], r["dane_reasons"], r["rollover"], r["rollover_reasons"])
        if want != have:
            wrong.append((t["kind"], t["name"], t.get("address"), want, have))
    assert not wrong, wrong[:20]
    for name, (_, (dane, why)) in BAD_HOSTS.items():
        bad = got.pop(("mx_host", name, None))
        assert (bad["dane"], bad["dane_reasons"]) == (dane, why)
    assert not [k for k in got if k[0] != "address"], list(got)[:10]
    botched = [r["name"] for r in rows if r["kind"] == "mx_host" and r["rollover"] == "botched"]
    assert botched == (["mx1.rollbad.lab-net.", "mx2.rollbad.lab-net."] if day == DAYS[1] else [])


def test_address_rows_say_which_record_matched_which_certificate(materialized):
    root, _, _ = materialized
    rows = (
        _lake(root, "dane_verdicts", DAYS[1])
        .filter((pl.col("kind") == "address") & (pl.col("name") == "mx1.eeta.lab-net."))
        .to_dicts()
    )
    assert len(rows) == 1
    records = {r["text"].split()[0]: (r["status"], r["depths"]) for r in rows[0]["records"]}
    assert records == {"3": ("matched", [0]), "2": ("matched", [1])}
    certs = rows[0]["certificates"]
    assert [c["depth"] for c in certs] == [0, 1]
    assert certs[1]["subject"] == "CN=Lab Issuing CA R1,O=DNSSEC Survey Lab"


def test_metadata(materialized):
    _, _, results = materialized
    events = results[DAYS[1]].asset_materializations_for_node("dane_verdicts")
    meta = events[0].metadata
    assert "mx1.rollbad.lab-net." in meta["botched_rotations"].value
    assert meta["previous_capture"].value == DAYS[0].isoformat()
    first = results[DAYS[0]].asset_materializations_for_node("dane_verdicts")[0].metadata
    assert first["previous_capture"].value == "none"
    caps = results[DAYS[1]].asset_materializations_for_node("certificate_captures")[0].metadata
    assert caps["dagster/row_count"].value >= 30
    assert json.dumps(meta["hosts_by_rollover"].value)


def test_whole_pipeline_equals_the_truth(tmp_path):
    """Zone lists to verdicts through every layer's own assets (the passive-DNS list's first
    day, then the good rollover's switch): every domain, MX host and address equals the truth."""
    from survey_assets.defs import constants as K
    from survey_assets_tests.conftest import materialize_days

    days = [W.date_of(W.Day.LIST_IMPORT), W.date_of(W.Day.GOOD_SWITCH)]
    selection = [K.ZONE_DOWNLOADS, K.RAW_ZONE_LISTS, K.CANDIDATE_DOMAINS, K.DOMAIN_SCANS,
                 K.MX_HOST_SCANS, K.CERTIFICATE_CAPTURES, K.DANE_VERDICTS]  # fmt: skip
    materialize_days(tmp_path, days, selection)
    for day in days:
        truth = [json.loads(x) for x in (tmp_path / "lab" / "truth" / f"{day}.jsonl").read_text().splitlines()]  # fmt: skip
        got = {(r["kind"], r["name"], r["address"]): r
               for r in _lake(tmp_path, "dane_verdicts", day).to_dicts()}  # fmt: skip
        wrong, compared = [], 0
        for t in truth:
            if t["kind"] not in ("domain", "mx_host", "address"):
                continue
            r = got.get((t["kind"], t["name"], t.get("address")))
            if t["kind"] == "address":
                want = (t["dane"], t["reasons"])
                have = r and (r["dane"], r["dane_reasons"])
            else:
                want = (t["dane"], t["dane_reasons"], t["rollover"], t["rollover_reasons"])
                have = r and (r["dane"], r["dane_reasons"], r["rollover"], r["rollover_reasons"])
            compared += 1
            if want != have:
                wrong.append((t["kind"], t["name"], t.get("address"), want, have))
        assert compared > 500 and not wrong, (day, wrong[:10])
    ready = got[("mx_host", "mx1.rollgood.lab-net.", None)]
    assert (ready["rollover"], ready["rollover_reasons"]) == (R.READY, ["ee_plus_next_ee"])
