"""RFC 1035 master files (gzipped or plain), read as a stream of record batches.

A master file is not one record a line: `$ORIGIN` and `$TTL` change the context, owners may be
relative, `@` or left blank (the previous owner), TTL and class are optional and come in either
order, parentheses continue a record over lines and `;` starts a comment except inside quotes.
Physical lines are gathered into entries (a line, or the lines up to the closing parenthesis),
and each entry goes through dnspython's tokenizer; the rdata of the kept types is parsed by
`dns.rdata.from_text` against the current origin, so names come out absolute. Other types are
passed on with empty rdata for `clean` to count. Nothing but the current batch is held.

Bad entries are counted and skipped, never fatal: a syntax error is `not_a_record`, an
`$INCLUDE` (not followed) or unknown directive is `directive`, a class other than IN is
`bad_class`, an owner that is not a DNS name is `bad_name`; `clean` counts unknown types and
owners outside the zone. Only a file that cannot be read, or that is for another zone, raises.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tokenizer
import dns.ttl
import polars as pl

from survey_assets.sources.records import KEPT_TYPES, SCHEMA, ImportStats, SourceError, clean

BATCH = 50_000  # records per yielded frame
MAX_ENTRY_LINES = 200  # an entry still open after this many lines is an unclosed parenthesis
SAMPLE_CHARS = 200
MNEMONIC = re.compile(r"[A-Za-z][A-Za-z0-9-]*")  # what an unknown type's name looks like
IN = dns.rdataclass.IN
KEPT = frozenset(KEPT_TYPES)
PARSE_ERRORS = (dns.exception.DNSException, ValueError, UnicodeError)


# The plain line's fast path: no quotes, escapes, parentheses, comments or odd characters.
_SPECIAL = re.compile(r'[\x00-\x08\x0a-\x1f"();\\\x7f-\U0010ffff]')
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_*-]+(?:\.[A-Za-z0-9_*-]+)*\.?")
_TYPES = {
    t.name: (t, t.name.lower())
    for t in dns.rdatatype.RdataType
    if not t.name.startswith("TYPE") and not dns.rdatatype.is_metatype(t)
}
_SLOW = object()  # the fast path's answer: "use the tokenizer"
_BAD_NAME = "\x00bad"  # the last owner was not a DNS name


def _fits(name: str) -> bool:
    """A plain name's label and total lengths are within RFC 1035's limits."""
    if len(name) > 253 + name.endswith("."):
        return False
    return len(name) <= 63 or all(len(label) <= 63 for label in name.split("."))


class _NotARecord(Exception):
    """An entry that is not `owner [ttl] [class] type rdata` nor a known directive."""


def read_masterfile(path: Path, zone: str, stats: ImportStats) -> Iterator[pl.DataFrame]:
    """The kept records of the master file of `zone` (canonical, e.g. "lab-secure."), cleaned.

    Batches of about `BATCH` records, each through `records.clean`. Raises `SourceError` when
    the file cannot be read or decompressed, when its SOA is for another zone, or when it has
    no SOA at all (batches yielded before the error stand for nothing: the import fails).
    """
    reader = _Reader(Path(path), zone, stats)
    owners: list[str] = []
    rtypes: list[str] = []
    rdatas: list[str] = []
    for owner, rtype, rdata in reader.records():
        owners.append(owner)
        rtypes.append(rtype)
        rdatas.append(rdata)
        if len(owners) >= BATCH:
            yield clean(_frame(owners, rtypes, rdatas), reader.zone_text, stats)
            owners, rtypes, rdatas = [], [], []
    if owners:
        yield clean(_frame(owners, rtypes, rdatas), reader.zone_text, stats)
    if not reader.soa_seen:
        raise SourceError(f"{path}: no SOA record: not a master file of {reader.zone_text}")


def _frame(owners: list[str], rtypes: list[str], rdatas: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"owner": owners, "rtype": rtypes, "rdata": rdatas}, schema=SCHEMA)


class _Reader:
    def __init__(self, path: Path, zone: str, stats: ImportStats) -> None:
        self.path = path
        self.stats = stats
        self.zone = dns.name.from_text(zone).canonicalize()
        self.zone_text = self.zone.to_text()
        self.origin = self.zone  # RFC 1035 §5.1: the zone's name until an $ORIGIN
        self.origin_text = self.zone_text
        self.last_owner: str | None = None  # absolute presentation text, or _BAD_NAME
        self.soa_seen = False

    # --- physical lines and entries --------------------------------------------------------------
    def _open(self) -> TextIO:
        try:
            with self.path.open("rb") as f:
                magic = f.read(2)
            if magic == b"\x1f\x8b":
                return gzip.open(self.path, "rt", encoding="utf-8", errors="surrogateescape")
            return self.path.open(encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot read the file: {exc.strerror or exc}") from exc

    def _lines(self) -> Iterator[str]:
        with self._open() as f:
            lines = iter(f)
            while True:
                try:
                    line = next(lines)
                except StopIteration:
                    return
                except (OSError, EOFError, zlib.error) as exc:
                    raise SourceError(f"{self.path}: damaged file: {exc}") from exc
                self.stats.lines += 1
                yield line

    def _entries(self) -> Iterator[str]:
        """Lines, or runs of lines joined while a parenthesis is open."""
        lines = self._lines()
        pending: deque[str] = deque()  # lines read ahead for an entry that never closed
        while True:
            line = pending.popleft() if pending else next(lines, None)
            if line is None:
                return
            if "(" not in line:
                yield line
                continue
            depth = _paren_depth(line)
            parts = [line]
            while depth > 0 and len(parts) < MAX_ENTRY_LINES:
                more = pending.popleft() if pending else next(lines, None)
                if more is None:
                    break
                parts.append(more)
                depth += _paren_depth(more)
            if depth > 0:  # never closed: the opening line is bad, read on from the next one
                self.stats.reject("not_a_record", [_sample(line)])
                pending.extendleft(reversed(parts[1:]))
                continue
            yield "".join(parts)

    # --- entries to records ----------------------------------------------------------------------
    def records(self) -> Iterator[tuple[str, str, str]]:
        for text in self._entries():
            try:
                record = self._simple(text)
                if record is _SLOW:
                    record = self._record(text)
            except (_NotARecord, *PARSE_ERRORS):
                self.stats.reject("not_a_record", [_sample(text)])
                continue
            if record is not None:
                yield record

    def _simple(self, line: str):
        """The common line without quotes, escapes, parentheses or comments, split in Python.

        Gives what `_record` gives for such a line, or `_SLOW` for anything less plain.
        """
        body = line.rstrip("\n")
        if _SPECIAL.search(body):
            return _SLOW
        words = body.split()
        if not words:
            self.stats.blank += 1
            return None
        if body[0] in " \t":
            owner = self.last_owner
            if owner is None or owner is _BAD_NAME:
                return _SLOW
            rest = words
        else:
            word = words[0]
            if word == "@":
                owner = self.origin_text
            elif _PLAIN_NAME.fullmatch(word):
                owner = word if word.endswith(".") else self._absolute(word)
            else:
                return _SLOW
            self.last_owner = owner
            rest = words[1:]
        i, ttl_seen, class_seen = 0, False, False
        while i < len(rest):
            word = rest[i]
            if not ttl_seen and word.isdigit() and int(word) <= dns.ttl.MAX_TTL:
                ttl_seen = True
            elif not class_seen and word.upper() == "IN":
                class_seen = True
            else:
                break
            i += 1
        if i == len(rest):
            raise _NotARecord
        found = _TYPES.get(rest[i].upper())
        if found is None:
            return _SLOW  # another class, a bad TTL, TYPEnnn or an unknown type
        rdtype, mnemonic = found
        if mnemonic not in KEPT:
            return owner, mnemonic, ""
        if rdtype == dns.rdatatype.NS and i + 2 == len(rest):
            target = rest[i + 1]
            if target == "@":
                return owner, mnemonic, self.origin_text
            if _PLAIN_NAME.fullmatch(target) and _fits(target):
                absolute = target if target.endswith(".") else self._absolute(target)
                if _fits(absolute):
                    return owner, mnemonic, absolute
            return _SLOW
        text = " ".join(rest[i + 1 :])
        rdata = dns.rdata.from_text(IN, rdtype, text, origin=self.origin, relativize=False)
        if rdtype == dns.rdatatype.SOA:
            self._check_soa(dns.name.from_text(owner))
        return owner, mnemonic, rdata.to_text()

    def _absolute(self, relative: str) -> str:
        return relative + "." + self.origin_text if self.origin_text != "." else relative + "."

    def _record(self, text: str) -> tuple[str, str, str] | None:
        """Any entry, through dnspython's tokenizer."""
        tok = dns.tokenizer.Tokenizer(text, filename=str(self.path))
        token = tok.get(want_leading=True)
        if token.is_whitespace():  # a blank owner: the previous one
            token = tok.get()
            if token.is_eol_or_eof():
                self.stats.blank += 1
                return None
            if self.last_owner is None:
                raise _NotARecord
            if self.last_owner is _BAD_NAME:
                self.stats.reject("bad_name", [_sample(text)])
                return None
            owner = dns.name.from_text(self.last_owner)
        elif token.is_eol_or_eof():  # an empty or comment-only line
            self.stats.blank += 1
            return None
        elif not token.is_identifier():
            raise _NotARecord
        elif token.value.startswith("$"):
            self._directive(token.value.upper(), tok, text)
            return None
        else:
            try:
                owner = dns.name.from_text(token.value, self.origin)
            except PARSE_ERRORS:
                self.stats.reject("bad_name", [_sample(text)])
                self.last_owner = _BAD_NAME
                return None
            self.last_owner = owner.to_text()
            token = tok.get()

        # [ttl] [class] or [class] [ttl], then the type.
        rdclass: int | None = None
        ttl_seen = False
        while token.is_identifier():
            if not ttl_seen and token.value[:1].isdigit():
                dns.ttl.from_text(token.value)  # BadTTL: not a record
                ttl_seen = True
            elif rdclass is None and _is_class(token.value):
                rdclass = dns.rdataclass.from_text(token.value)
            else:
                break
            token = tok.get()
        if not token.is_identifier():
            raise _NotARecord
        if rdclass is not None and rdclass != IN:
            self.stats.reject("bad_class", [_sample(text)])
            return None
        try:
            rdtype = dns.rdatatype.from_text(token.value)
        except PARSE_ERRORS:
            if _is_class(token.value):  # a second class where the type belongs
                raise _NotARecord from None
            if MNEMONIC.fullmatch(token.value) and not tok.get().is_eol_or_eof():
                return owner.to_text(), token.value.lower(), ""  # `clean` counts unknown_type
            raise _NotARecord from None
        if dns.rdatatype.is_metatype(rdtype):
            raise _NotARecord
        mnemonic = dns.rdatatype.to_text(rdtype).lower()
        if mnemonic not in KEPT:
            return owner.to_text(), mnemonic, ""  # counted by `clean`, not kept: rdata unread
        rdata = dns.rdata.from_text(IN, rdtype, tok, origin=self.origin, relativize=False)
        if rdtype == dns.rdatatype.SOA:
            self._check_soa(owner)
        return owner.to_text(), mnemonic, rdata.to_text()

    def _directive(self, word: str, tok: dns.tokenizer.Tokenizer, text: str) -> None:
        if word == "$ORIGIN":
            origin = dns.name.from_text(tok.get_identifier(), self.origin)
            tok.get_eol()
            self.origin, self.origin_text = origin, origin.to_text()
        elif word == "$TTL":
            dns.ttl.from_text(tok.get_identifier())
            tok.get_eol()
        else:  # $INCLUDE is not followed (a registry's file is whole); $GENERATE and others
            self.stats.reject("directive", [_sample(text)])

    def _check_soa(self, owner: dns.name.Name) -> None:
        if owner.canonicalize() != self.zone:
            raise SourceError(
                f"{self.path}: the file's SOA is for {owner.canonicalize().to_text()}, "
                f"not {self.zone_text}"
            )
        self.soa_seen = True


def _is_class(word: str) -> bool:
    try:
        dns.rdataclass.from_text(word)
    except PARSE_ERRORS:
        return False
    return True


def _paren_depth(line: str) -> int:
    """Opening minus closing parentheses on one line, outside quotes, escapes and comments."""
    depth = 0
    quoted = False
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if quoted:
            quoted = c != '"'
        elif c == '"':
            quoted = True
        elif c == ";":
            break
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        i += 1
    return depth


def _sample(text: str) -> str:
    return " ".join(text.split())[:SAMPLE_CHARS]
