"""The ground truth is complete and tells the lab's story: every fault, spike, decay and rollover."""

from __future__ import annotations

import contextlib
import gzip
from collections import Counter

import dns.name
import dns.zone
import pytest

from survey_assets import reasons as R
from survey_assets.lab import world as W
from survey_assets.lab.sources import LAB_SOURCES
from survey_assets.lab.truth import truth_rows
from survey_assets.lab.zonefiles import LIST_FILE, write_zonefiles

WINDOW = [W.date_of(d) for d in range(14)]


@pytest.fixture(scope="module")
def window():
    return {date: list(truth_rows(W.World(1, "tiny", date))) for date in WINDOW}


def _delegations_in_files(folder) -> set[dns.name.Name]:
    """Second-level names with NS records in the CZDS and master files, and the list's names.

    The master file is read with dnspython's own zone parser, not the survey's reader.
    """
    names = set()
    for path in folder.glob("czds/*.txt.gz"):
        with gzip.open(path, "rt") as lines:
            for line in lines:
                owner, _ttl, _cls, rtype, _ = line.split("\t", 4)
                name = dns.name.from_text(owner.strip())
                if rtype == "ns" and len(name) == 3:
                    names.add(name.canonicalize())
    for path in folder.glob("registry-files/*.zone.gz"):
        with gzip.open(path, "rt") as f:
            zone = dns.zone.from_file(f, relativize=False, check_origin=False)
        names |= {
            n.canonicalize()
            for n, node in zone.nodes.items()
            if len(n) == 3 and node.get_rdataset(1, 2)
        }
    for path in folder.glob(f"passive-dns/{LIST_FILE}"):
        for line in path.read_text().splitlines():
            with contextlib.suppress(dns.exception.DNSException):
                names.add(dns.name.from_text(line).canonicalize())
    return names


@pytest.mark.parametrize("day", [W.Day.LIST_IMPORT, W.Day.LIST_IMPORT + 2])
def test_domain_rows_are_the_candidates_of_the_files(tmp_path, day):
    """Domain rows = names in the CZDS files + the open TLD's delegations + the newest list."""
    date = W.date_of(day)
    w = W.World(1, "tiny", date)
    published = W.date_of(W.Day.LIST_IMPORT)
    write_zonefiles(w, tmp_path / "today")
    write_zonefiles(W.World(1, "tiny", published), tmp_path / "list")
    for path in [
        *(tmp_path / "list").glob("czds/*"),
        *(tmp_path / "list").glob("registry-files/*"),
    ]:
        path.unlink()  # only the list is taken from that day
    expected = _delegations_in_files(tmp_path / "today")
    expected |= (
        {
            n
            for n in _delegations_in_files(tmp_path / "list")
            if n.labels[-2] in (b"lab-cc", b"lab-vast")
        }
        if day != W.Day.LIST_IMPORT
        else set()
    )
    open_tld = next(t for t in W.TLDS if t.source == "axfr")
    expected |= {
        dns.name.Name((label, open_tld.label.encode(), b""))
        for _, label in w.domain_names(open_tld)
    }
    rows = [r for r in truth_rows(w) if r["kind"] == "domain"]
    assert {dns.name.from_text(r["name"]).canonicalize() for r in rows} >= expected
    extra = {dns.name.from_text(r["name"]) for r in rows} - expected
    assert all(n.labels[-2] in (b"lab-cc", b"lab-vast") for n in extra)  # only list names
    assert len(rows) == len({r["name"] for r in rows})


def test_every_fault_class_occurs(window):
    reasons: Counter[str] = Counter()
    statuses, dane, rollover = Counter(), Counter(), Counter()
    for rows in window.values():
        for r in rows:
            for key in ("reasons", "dane_reasons", "rollover_reasons", "notes"):
                reasons.update(r.get(key, []))
            statuses[r.get("dnssec")] += 1
            dane[r.get("dane")] += 1
            rollover[r.get("rollover")] += 1
    scanner_only = {
        "servfail",
        "refused",
        "formerr",
        "malformed",
        "network_error",
        "refused_by_policy",
        # The scanner's own limits: never reached at their defaults (test_dns_limits sets them).
        "query_budget_exceeded",
        "deadline_exceeded",
        # Hostile SMTP servers, odd certificates and bad input the lab does not serve: the
        # capture client's and matcher's own tests make them (test_smtp_client, test_dane_match).
        "smtp_rejected",
        "smtp_bad_reply",
        "address_not_allowed",
        "bad_host_name",
        "capture_error",
        "chain_empty",
        "certificate_unparsable",
        "chain_out_of_order",
        "dane_ta_chain_invalid",
        "dane_ta_expired",
    }
    wanted = set(R.REASONS) - {"nsec3_optout"} - scanner_only
    assert wanted - set(reasons) == set()
    assert all(statuses[s] for s in R.DNSSEC_STATUSES)
    assert all(dane[s] for s in R.DANE_OUTCOMES)
    assert all(rollover[s] for s in R.ROLLOVER_STATES)


def _count(rows, **match):
    return sum(all(r.get(k) == v for k, v in match.items()) for r in rows)


def test_story_import_spike_and_decay(window):
    counts = [_count(window[d], kind="domain") for d in WINDOW]
    jumps = [b / a for a, b in zip(counts, counts[1:], strict=False)]
    spike = W.Day.LIST_IMPORT
    assert jumps[spike - 1] > 1.05, jumps  # the list's first import
    assert all(0.97 < j < 1.03 for i, j in enumerate(jumps) if i + 1 not in (spike, spike + 7))
    fade = [_count(window[d], kind="domain", tld="lab-fade") for d in WINDOW]
    assert all(b <= a for a, b in zip(fade, fade[1:], strict=False)) and fade[-1] < 0.85 * fade[0]
    steady = [_count(window[d], kind="domain", tld="lab-secure") for d in WINDOW]
    assert max(steady) - min(steady) <= 0.05 * max(steady)
    source = next(s for s in LAB_SOURCES if s.kind == "list")
    before = window[W.date_of(spike - 1)]
    after = window[W.date_of(spike)]
    assert not any(source.name in r.get("sources", []) for r in before)
    assert any(source.name in r.get("sources", []) for r in after)


def test_story_signing_jump_and_dane_provider(window):
    def share(date, tld):
        rows = [r for r in window[date] if r["kind"] == "domain" and r["tld"] == tld]
        return sum(r["signed"] for r in rows) / len(rows)

    assert share(W.date_of(W.Day.JUMP), "lab-jump") > 2 * share(
        W.date_of(W.Day.JUMP - 1), "lab-jump"
    )
    mx1 = "mx1.mailnova.lab-net."
    host = {
        d: next(r for r in window[d] if r["kind"] == "mx_host" and r["name"] == mx1) for d in WINDOW
    }
    assert host[W.date_of(W.Day.DANE_ON - 1)]["dane"] == R.NOT_APPLICABLE
    assert host[W.date_of(W.Day.DANE_ON)]["dane"] == R.PASS


def test_story_rollovers(window):
    def host(day, name):
        return next(
            r for r in window[W.date_of(day)] if r["kind"] == "mx_host" and r["name"] == name
        )

    bad, good, eeta = "mx1.rollbad.lab-net.", "mx1.rollgood.lab-net.", "mx1.eeta.lab-net."
    assert host(W.Day.BOTCH - 1, bad)["dane"] == R.PASS
    assert host(W.Day.BOTCH, bad)["rollover"] == R.BOTCHED
    assert host(W.Day.BOTCH, bad)["dane"] == R.FAIL
    assert host(W.Day.BOTCH + 1, bad)["rollover"] != R.BOTCHED  # the event, not the state
    assert host(W.Day.BOTCH_FIX, bad)["dane"] == R.PASS
    assert all(host(d, good)["dane"] == R.PASS for d in range(14))  # done right: never fails
    assert host(W.Day.GOOD_SWITCH, good)["rollover"] == R.READY
    assert host(W.Day.GOOD_RETIRE, good)["rollover_reasons"] == ["single_tlsa"]
    assert host(W.Day.ISSUER_CHANGE, eeta)["rollover_reasons"] == [
        "issuer_changed",
        "ta_not_ancestor",
    ]
    assert host(W.Day.ISSUER_CHANGE - 1, eeta)["rollover"] == R.READY


def test_healthy_is_not_flagged(window):
    """A signed domain without an injected fault is secure, and its reasons say only facts."""
    for date, rows in window.items():
        w = W.World(1, "tiny", date)
        for r in rows:
            if r["kind"] != "domain" or r["tld"] == "lab-net" or "nxdomain" in r["reasons"]:
                continue
            d = w.lookup_domain(dns.name.from_text(r["name"]).labels)
            if d.signed and d.fault is None:
                assert r["dnssec"] == R.SECURE and set(r["reasons"]) <= {"no_mx"}, r
