"""Public suffixes: the ICANN section of the Public Suffix List (from the maintained
`publicsuffixlist` package), plus the extra suffixes a sources file declares (the lab's TLDs).

Rules become three small tables that SQL joins against: exact suffixes, wildcard bases
(`*.ck` → `ck.`) and exceptions (`!www.ck` → `www.ck.`), all canonical names with a final dot.
A single-label name is a suffix by the list's default rule `*`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import dns.exception
import dns.name
import duckdb
import polars as pl
import publicsuffixlist

PSL_FILE = Path(publicsuffixlist.__file__).with_name("public_suffix_list.dat")


def _canonical(rule: str) -> str | None:
    try:
        return dns.name.from_text(rule.strip(".")).canonicalize().to_text()
    except (dns.exception.DNSException, UnicodeError):
        return None


@functools.lru_cache(maxsize=4)
def icann_rules(path: Path = PSL_FILE) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(exact, wildcard bases, exceptions) of the list's ICANN section."""
    exact, wild, exceptions = set(), set(), set()
    in_icann = False
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if "===BEGIN ICANN DOMAINS===" in line:
            in_icann = True
        elif "===END ICANN DOMAINS===" in line:
            break
        if not in_icann or not line or line.startswith("//"):
            continue
        rule = line.split()[0]
        if rule.startswith("!"):
            target, name = exceptions, _canonical(rule[1:])
        elif rule.startswith("*."):
            target, name = wild, _canonical(rule[2:])
        else:
            target, name = exact, _canonical(rule)
        if name:
            target.add(name)
    return frozenset(exact), frozenset(wild), frozenset(exceptions)


def register(con: duckdb.DuckDBPyConnection, extra: tuple[str, ...] = ()) -> None:
    """Create the tables psl_exact, psl_wild, psl_exception, psl_all (each name with its three
    flags: `wild` marks a wildcard base) and the macros that use them."""
    exact, wild, exceptions = icann_rules()
    extra_names = {n for n in (_canonical(e) for e in extra) if n}
    for table, names in (
        ("psl_exact", exact | extra_names),
        ("psl_wild", wild),
        ("psl_exception", exceptions),
    ):
        frame = pl.DataFrame({"name": sorted(names)}, schema={"name": pl.String})
        con.register(f"{table}_frame", frame)
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT name FROM {table}_frame")
        con.unregister(f"{table}_frame")
    # All three in one table, so that a name's flags take one join.
    con.execute("""
        CREATE OR REPLACE TABLE psl_all AS
        SELECT name, bool_or(t = 'exact') AS exact, bool_or(t = 'wild') AS wild,
               bool_or(t = 'exception') AS exception
        FROM (SELECT name, 'exact' AS t FROM psl_exact UNION ALL SELECT name, 'wild' FROM psl_wild
              UNION ALL SELECT name, 'exception' FROM psl_exception)
        GROUP BY name
    """)
    # Labels are split on dots that are not escaped: `a\.b.example.` has two labels above root.
    # Names without a backslash (nearly all) take the plain string path; the regex is for the rest.
    con.execute(r"""
        CREATE OR REPLACE TEMP MACRO dns_parent(n) AS CASE
            WHEN NOT contains(n, '\') THEN substr(n, strpos(n, '.') + 1)
            ELSE regexp_replace(n, '^(?:[^.\\]|\\.)+\.', '') END;
        CREATE OR REPLACE TEMP MACRO dns_single_label(n) AS CASE
            WHEN NOT contains(n, '\') THEN n <> '' AND strpos(n, '.') = length(n)
            ELSE regexp_full_match(n, '(?:[^.\\]|\\.)+\.') END;
        CREATE OR REPLACE TEMP MACRO dns_tld(n) AS CASE
            WHEN NOT contains(n, '\') THEN string_split(rtrim(n, '.'), '.')[-1] || '.'
            ELSE regexp_extract(n, '((?:[^.\\]|\\.)+\.)$', 1) END;
    """)
