"""Full zone transfers (AXFR, RFC 5936) over TCP, read as a stream of record batches.

Messages are read one at a time and their records handed on in batches; the zone is never held
whole. The transfer is driven here rather than by `dns.query.xfr`, which connects without a
time limit when no total lifetime is given (a silent server would hold the import for minutes)
and whose total lifetime would cap a large zone's transfer: here the connection and every read
have `timeout`, and the transfer as a whole has none.

Rows are (owner canonical text, lower-case type mnemonic, rdata text); rdata is written out only
for the kept types, the others pass with empty rdata for `clean` to count. The closing SOA that
ends a transfer is not a record of the zone and is not counted.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import polars as pl

from survey_assets.sources.records import KEPT_TYPES, SCHEMA, ImportStats, SourceError, clean

BATCH = 50_000  # rows per yielded frame
KEPT = frozenset(KEPT_TYPES)


def read_axfr(
    address: str, port: int, zone: str, stats: ImportStats, timeout: float = 30.0
) -> Iterator[pl.DataFrame]:
    """The kept records of `zone` (e.g. "lab-open.") transferred from `address`:`port`, cleaned.

    Batches of about `BATCH` rows, each through `records.clean`; `stats.lines` counts the records
    received. Raises `SourceError` (one line, naming the zone and `address@port`) when the server
    cannot be reached, refuses, times out, or sends something that is not a transfer of the zone.
    """
    origin = dns.name.from_text(zone).canonicalize()
    zone_text = origin.to_text()
    where = f"{address}@{port}"

    def fail(reason: str) -> SourceError:
        return SourceError(f"AXFR of {zone_text} from {where} failed: {reason}")

    owners: list[str] = []
    rtypes: list[str] = []
    rdatas: list[str] = []
    try:
        for name, rdtype, rdclass, rdatas_of_set in _transfer(address, port, origin, timeout, fail):
            if rdclass != dns.rdataclass.IN:
                stats.lines += len(rdatas_of_set)
                text = f"{name.to_text()}\t{dns.rdataclass.to_text(rdclass)}"
                stats.reject("bad_class", [text] * len(rdatas_of_set))
                continue
            owner = name.canonicalize().to_text()
            mnemonic = dns.rdatatype.to_text(rdtype).lower()
            keep = mnemonic in KEPT
            for rdata in rdatas_of_set:
                owners.append(owner)
                rtypes.append(mnemonic)
                rdatas.append(rdata.to_text() if keep else "")
            stats.lines += len(rdatas_of_set)
            if len(owners) >= BATCH:
                yield clean(_frame(owners, rtypes, rdatas), zone_text, stats)
                owners, rtypes, rdatas = [], [], []
    except TimeoutError:
        raise fail(f"timed out after {timeout:g} s") from None
    except ConnectionRefusedError:
        raise fail("connection refused") from None
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from None
    if owners:
        yield clean(_frame(owners, rtypes, rdatas), zone_text, stats)


def _frame(owners: list[str], rtypes: list[str], rdatas: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"owner": owners, "rtype": rtypes, "rdata": rdatas}, schema=SCHEMA)


def _transfer(address: str, port: int, origin: dns.name.Name, timeout: float, fail) -> Iterator:
    """(name, type, class, rdataset) of every RRset of the transfer but the closing SOA."""
    query = dns.message.make_query(origin, dns.rdatatype.AXFR)
    wire = query.to_wire()
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        first = True
        done = False
        while not done:
            length = _read(sock, 2, first, fail)
            data = _read(sock, struct.unpack("!H", length)[0], first, fail)
            try:
                message = dns.message.from_wire(data, xfr=True)
            except dns.exception.DNSException as exc:
                raise fail(f"malformed message: {exc}") from None
            if not query.is_response(message, xfr_continuation=not first):
                raise fail("a message that is not a response to the transfer")
            rcode = message.rcode()
            if rcode != dns.rcode.NOERROR:
                raise fail(f"the server answered {dns.rcode.to_text(rcode)}")
            for rrset in message.answer:
                if done:
                    raise fail("records after the closing SOA")
                is_soa = rrset.rdtype == dns.rdatatype.SOA and rrset.name == origin
                if first:
                    if not is_soa:
                        got = f"{dns.rdatatype.to_text(rrset.rdtype)} of {rrset.name}"
                        raise fail(f"the transfer does not start with the SOA (got {got})")
                    first = False
                elif is_soa:
                    done = True  # RFC 5936 §2.2: the zone's SOA again ends the transfer
                    continue
                yield rrset.name, rrset.rdtype, rrset.rdclass, list(rrset)
            if first:
                raise fail("the transfer does not start with the SOA (an empty answer)")


def _read(sock: socket.socket, count: int, first: bool, fail) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            when = "before answering" if first and not data else "in the middle of the transfer"
            raise fail(f"the server closed the connection {when}")
        data += chunk
    return data
