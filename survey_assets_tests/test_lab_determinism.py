"""Same (seed, scale, date) gives the same bytes: zone files, keys, certificates and truth."""

from __future__ import annotations

import datetime as dt
import hashlib

from survey_assets.lab import keys, pki
from survey_assets.lab import world as W
from survey_assets.lab.serve import trust_anchor_text
from survey_assets.lab.truth import write_truth
from survey_assets.lab.zonefiles import write_zonefiles

DATE = dt.date(2026, 11, 6)


def _digests(folder):
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _clear_caches():
    for cached in (
        keys.ec_key,
        keys.ed25519_key,
        keys._rsa_pool_key,
        pki.root_ca,
        pki.issuing_ca,
        pki.leaf,
        W.world,
    ):
        cached.cache_clear()


def test_zone_files_truth_and_anchor_are_reproducible(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    write_zonefiles(W.World(1, "tiny", DATE), first)
    write_truth(W.World(1, "tiny", DATE), first / "truth.jsonl")
    anchor = trust_anchor_text(W.World(1, "tiny", DATE))
    _clear_caches()
    write_zonefiles(W.World(1, "tiny", DATE), second)
    write_truth(W.World(1, "tiny", DATE), second / "truth.jsonl")
    assert _digests(first) == _digests(second)
    assert trust_anchor_text(W.World(1, "tiny", DATE)) == anchor
    assert len(_digests(first)) >= 7  # CZDS files, a master file and the truth (the list is weekly)


def test_seed_and_date_change_the_world(tmp_path):
    write_zonefiles(W.World(1, "tiny", DATE), tmp_path / "a")
    write_zonefiles(W.World(2, "tiny", DATE), tmp_path / "b")
    write_zonefiles(W.World(1, "tiny", DATE + dt.timedelta(days=1)), tmp_path / "c")
    a, b, c = (_digests(tmp_path / x) for x in "abc")
    assert a["czds/lab-secure.txt.gz"] != b["czds/lab-secure.txt.gz"]
    assert a["czds/lab-secure.txt.gz"] != c["czds/lab-secure.txt.gz"]


def test_certificates_and_keys_are_reproducible():
    host = W.World(1, "tiny", DATE).provider_hosts("bigdane")[0]
    names = tuple(n.rstrip(".") for n in host.cert_names)
    before = pki.leaf(1, host.key, names, host.issuer).der, keys.rsa_key(1, "x").private_numbers()
    _clear_caches()
    after = pki.leaf(1, host.key, names, host.issuer).der, keys.rsa_key(1, "x").private_numbers()
    assert before == after
    assert pki.leaf(2, host.key, names, host.issuer).der != before[0]
