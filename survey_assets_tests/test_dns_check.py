"""`survey check DOMAIN` against a running lab (the DNS part, then STARTTLS and DANE), and its
errors for bad input."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from survey_assets.lab import tlsa as lab_tlsa
from survey_assets.lab import world as W
from survey_assets_tests.conftest import tiny_lab

SURVEY = str(Path(sys.executable).with_name("survey"))
DATE = W.date_of(0)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    with tiny_lab(root / "lab", DATE) as running:
        yield root, running


def _check(root, lab, *args):
    env = {
        **os.environ,
        "SURVEY_DATA_DIR": str(root),
        "SURVEY_LAB_DNS_PORT": str(lab.info.dns_port),
        "SURVEY_LAB_SMTP_PORT": str(lab.info.smtp_port),
    }
    return subprocess.run(
        [SURVEY, "check", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_check_reports_what_the_truth_says(lab):
    root, running = lab
    rows = map(json.loads, running.info.truth.read_text().splitlines())
    truth = {r["name"]: r for r in rows if r["kind"] in ("domain", "mx_host")}
    for index in range(len(W.DOMAIN_FAULTS)):
        name = W.World(1, "tiny", DATE).domain("lab-secure", index).name
        done = _check(root, running, name, "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert (result["domain"]["dnssec"], result["domain"]["reasons"]) == (
            truth[name]["dnssec"], truth[name]["reasons"]), name  # fmt: skip
        for host in result["mx_hosts"]:
            assert (host["dnssec"], host["reasons"]) == (
                truth[host["name"]]["dnssec"],
                truth[host["name"]]["reasons"],
            )
    text = _check(root, running, W.World(1, "tiny", DATE).domain("lab-secure", 0).name).stdout
    assert "MX answer: bogus (ds_no_matching_dnskey)" in text and "TLSA answer" in text
    assert "DANE: n/a (mx_not_secure)" in text


def _truth(running) -> list[dict]:
    return [json.loads(x) for x in running.info.truth.read_text().splitlines()]


def _domain_using(truth: list[dict], predicate) -> dict:
    """The first secure domain whose MX hosts satisfy `predicate` (names, truth rows by name)."""
    hosts = {r["name"]: r for r in truth if r["kind"] == "mx_host"}
    for row in truth:
        secure = row["kind"] == "domain" and row["dnssec"] == "secure" and row["mx"]
        if secure and predicate(row, [hosts[h] for h in row["mx"]]):
            return row
    raise AssertionError("the lab has no such domain")


def _examples(truth: list[dict]) -> dict[str, dict]:
    return {
        # IPv4 and ::1, two keys each: a DANE domain that passes
        "pass": _domain_using(truth, lambda d, hs: d["dane"] == "pass"
                              and any(h["name"].endswith(".bigdane.lab-net.") for h in hs)),
        # one address without STARTTLS beside one that matches: fails
        "halfbad": _domain_using(truth, lambda d, hs: d["mx"] == ["halfbad.faultymail.lab-net."]),
        # a served key that no TLSA record names: fails
        "mismatch": _domain_using(truth, lambda d, hs: d["mx"] == ["mismatch.faultymail.lab-net."]),
        # DNSSEC but no TLSA: DANE does not apply, nothing is contacted
        "no_tlsa": _domain_using(truth, lambda d, hs: d["dane_reasons"] == ["no_tlsa"]),
    }  # fmt: skip


@pytest.fixture(scope="module")
def checked(lab) -> dict[str, tuple[dict, dict]]:
    """Per example: the truth's domain row and `survey check --json`'s result."""
    root, running = lab
    out = {}
    for label, row in _examples(_truth(running)).items():
        done = _check(root, running, row["name"], "--json")
        assert done.returncode == 0, done.stderr
        out[label] = (row, json.loads(done.stdout))
    return out


@pytest.mark.parametrize("label", ["pass", "halfbad", "mismatch", "no_tlsa"])
def test_tls_part_equals_the_truth(lab, checked, label):
    """Per address the outcome and reasons, per domain the verdict and rollover readiness."""
    _, running = lab
    truth = _truth(running)
    row, result = checked[label]
    assert (result["dane"]["dane"], result["dane"]["dane_reasons"]) == (
        row["dane"], row["dane_reasons"]), label  # fmt: skip
    assert (result["dane"]["rollover"], result["dane"]["rollover_reasons"]) == (
        row["rollover"], row["rollover_reasons"]), label  # fmt: skip
    want = {(r["name"], r["address"]): (r["dane"], r["reasons"]) for r in truth
            if r["kind"] == "address" and r["name"] in row["mx"]}  # fmt: skip
    got = {(h["name"], a["address"]): (a["dane"], a["reasons"])
           for h in result["tls"]["hosts"] for a in h["addresses"]}  # fmt: skip
    assert got == want, label
    hosts = {r["name"]: r for r in truth if r["kind"] == "mx_host"}
    for host in result["tls"]["hosts"]:
        expected = hosts[host["name"]]
        assert (host["dane"], host["dane_reasons"]) == (
            expected["dane"], expected["dane_reasons"]), host["name"]  # fmt: skip
        assert host["contacted"] == bool(expected["tlsa_count"])
    if label == "no_tlsa":
        assert got == {} and not any(h["contacted"] for h in result["tls"]["hosts"])
    if label == "halfbad":  # one address fails, the other passes: both are reported
        assert {dane for dane, _ in got.values()} == {"pass", "fail"}
        assert {a["starttls"] for h in result["tls"]["hosts"] for a in h["addresses"]} == {
            "ok", "starttls_not_offered"}  # fmt: skip
    assert result["tls"]["previous_capture"] is None and "botched" in result["tls"]["rollover_note"]


def test_json_holds_the_chain_digests(checked):
    """The digests reported are those of the certificates the lab's hosts present, and the
    record said to match the leaf holds the leaf's digest."""
    w = W.World(W.DEFAULT_SEED, "tiny", DATE)
    for label in ("pass", "mismatch"):
        _, result = checked[label]
        for host in result["tls"]["hosts"]:
            chain = [c.der for c in lab_tlsa.host_chain(w.seed, w.host(host["name"]))]
            assert host["addresses"]
            for address in host["addresses"]:
                certs = address["certificates"]
                assert [c["sha256"] for c in certs] == [
                    hashlib.sha256(d).hexdigest() for d in chain
                ]
                assert all(c["spki_sha256"] and c["subject"] and c["issuer"] for c in certs)
                matched = [t for t in certs[0]["tlsa"] if t["status"] == "matched"]
                assert bool(matched) == (label == "pass"), (label, address)
                for t in matched:
                    u, s, m, data = t["text"].split()
                    digest = certs[0]["spki_sha256"] if s == "1" else certs[0]["sha256"]
                    assert (u, m, data) == ("3", "1", digest)


def test_text_shows_what_danecheck_shows(lab, checked):
    root, running = lab
    row, result = checked["pass"]
    text = _check(root, running, row["name"]).stdout
    address = result["tls"]["hosts"][0]["addresses"][0]
    leaf = address["certificates"][0]
    assert f"[{address['address']}] pass: STARTTLS ok, TLSv1" in text
    assert f"cert sha256 {leaf['sha256']}" in text and f"spki sha256 {leaf['spki_sha256']}" in text
    assert "[matched]" in text and "no previous capture" in text
    assert f"{row['name']}  DANE: pass; rollover readiness: {row['rollover']}" in text
    text = _check(root, running, checked["mismatch"][0]["name"]).stdout
    assert "fail (tlsa_no_match): STARTTLS ok" in text and "matches no certificate" in text
    no_tls = _check(root, running, row["name"], "--no-tls").stdout
    assert "TLS (" not in no_tls and "TLSA answer: secure" in no_tls


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad..name"], "not a valid DNS name"),
        (
            ["x.lab-secure.", "--resolver", "127.53.250.250@9"],
            "no DNS answer from the resolver at 127.53.250.250@9",
        ),
        (
            ["x.lab-secure.", "--trust-anchor", "/nonexistent/anchor"],
            "trust anchor /nonexistent/anchor",
        ),
        (["x.lab-secure.", "--resolver", "nonsense@port"], "expected ADDRESS or ADDRESS@PORT"),
    ],
)
def test_bad_input_is_one_clear_line(lab, args, message):
    root, running = lab
    done = _check(root, running, *args)
    assert done.returncode == 2 and done.stdout == ""
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
