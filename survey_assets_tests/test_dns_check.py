"""`survey check DOMAIN` against a running lab, and its errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
