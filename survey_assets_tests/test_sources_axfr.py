"""Zone transfers read by the sources layer, over real sockets: the lab's TLD server, and a
one-connection fake server for the answers the lab never gives (NOTAUTH, a transfer that does not
start with the SOA, a connection closed mid-transfer)."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import polars as pl
import pytest

from survey_assets.lab import world as W
from survey_assets.lab.authority import LabData
from survey_assets.lab.dnsserver import zone_rrsets
from survey_assets.lab.serve import Lab
from survey_assets.lab.sources import delegations
from survey_assets.sources import axfr as A
from survey_assets.sources.records import ImportStats, SourceError
from survey_assets_tests.conftest import free_port, tiny_lab

DATE = dt.date(2026, 11, 9)
TLD_SERVER = W.TLD_SERVERS["ns1.nic.lab-net."]
TIMEOUT = 2.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    with tiny_lab(tmp_path_factory.mktemp("lab"), DATE) as lab:
        yield lab


def transfer(address: str, port: int, zone: str, stats: ImportStats) -> pl.DataFrame:
    return pl.concat(list(A.read_axfr(address, port, zone, stats, timeout=TIMEOUT)))


def test_open_tld_transfer(lab):
    stats = ImportStats()
    got = transfer(TLD_SERVER, lab.dns_port, "lab-open.", stats)
    world = lab.world
    names = list(delegations(world, "lab-open"))
    ns_owners = set(got.filter(pl.col("rtype") == "ns")["owner"])
    assert ns_owners == {n.canonicalize().to_text() for n in names} | {"lab-open."}
    signed = {n.canonicalize().to_text() for n in names if world.lookup_domain(n.labels).signed}
    assert 0 < len(signed) < len(names)
    assert set(got.filter(pl.col("rtype") == "ds")["owner"]) == signed
    soa = got.filter(pl.col("rtype") == "soa")
    assert soa.rows() == [("lab-open.", "soa", soa["rdata"][0])] and soa["rdata"][0].startswith(
        "ns1.nic.lab-net. "
    )
    data = LabData(world)
    zone = data.zone(dns.name.from_text("lab-open."))
    records = sum(len(rrset) for rrset in zone_rrsets(data, zone))
    assert stats.lines == records  # the closing SOA is not a record
    assert sum(stats.types.values()) == records
    assert stats.records == got.height
    assert not stats.bad
    assert lab.errors == []


def test_transfer_in_batches(lab, monkeypatch):
    monkeypatch.setattr(A, "BATCH", 50)
    stats = ImportStats()
    frames = list(A.read_axfr(TLD_SERVER, lab.dns_port, "lab-open.", stats, timeout=TIMEOUT))
    assert len(frames) >= 3
    assert sum(f.height for f in frames) == stats.records


def test_refused_transfer_names_zone_and_server(lab):
    with pytest.raises(SourceError) as info:
        transfer(TLD_SERVER, lab.dns_port, "lab-secure.", ImportStats())
    message = str(info.value)
    assert "lab-secure." in message and f"{TLD_SERVER}@{lab.dns_port}" in message
    assert "REFUSED" in message and "\n" not in message


def test_nothing_listening(lab):
    port = free_port(TLD_SERVER)
    with pytest.raises(SourceError, match=f"lab-open.*{TLD_SERVER}@{port}.*connection refused"):
        transfer(TLD_SERVER, port, "lab-open.", ImportStats())


def test_silent_server_times_out(lab):
    with pytest.raises(SourceError, match=f"{W.BLACKHOLE_ADDRESS}@{lab.dns_port}.*timed out"):
        list(A.read_axfr(W.BLACKHOLE_ADDRESS, lab.dns_port, "lab-open.", ImportStats(), 0.3))


# --- a fake server -------------------------------------------------------------------------------


@contextlib.contextmanager
def fake_server(reply: Callable[[dns.message.Message], list[bytes]]) -> Iterator[int]:
    """Serve one TCP connection on 127.0.0.1: read one query, send `reply(query)`, close."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    port = listener.getsockname()[1]

    def run() -> None:
        with contextlib.suppress(OSError), listener:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                size = struct.unpack("!H", conn.recv(2))[0]
                query = dns.message.from_wire(conn.recv(size))
                for wire in reply(query):
                    conn.sendall(struct.pack("!H", len(wire)) + wire)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        thread.join(TIMEOUT + 1)


def message(query: dns.message.Message, *records: str, rcode: int = dns.rcode.NOERROR) -> bytes:
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    for text in records:
        name, rtype, rdata = text.split(" ", 2)
        response.answer.append(dns.rrset.from_text(name, 3600, "IN", rtype, rdata))
    return response.to_wire()


SOA = "lab-x. SOA ns1.lab-x. h.lab-x. 1 2 3 4 5"


def test_notauth():
    with (
        fake_server(lambda q: [message(q, rcode=dns.rcode.NOTAUTH)]) as port,
        pytest.raises(SourceError, match=f"lab-x. from 127.0.0.1@{port}.*NOTAUTH"),
    ):
        list(A.read_axfr("127.0.0.1", port, "lab-x.", ImportStats(), timeout=TIMEOUT))


def test_transfer_not_starting_with_soa():
    reply = lambda q: [message(q, "a.lab-x. NS ns1.", SOA)]  # noqa: E731
    with (
        fake_server(reply) as port,
        pytest.raises(SourceError, match="does not start with the SOA"),
    ):
        list(A.read_axfr("127.0.0.1", port, "lab-x.", ImportStats(), timeout=TIMEOUT))


def test_connection_closed_mid_transfer():
    reply = lambda q: [message(q, SOA, "a.lab-x. NS ns1.")]  # noqa: E731
    with (
        fake_server(reply) as port,
        pytest.raises(SourceError, match="closed the connection in the middle"),
    ):
        list(A.read_axfr("127.0.0.1", port, "lab-x.", ImportStats(), timeout=TIMEOUT))


def test_several_messages_and_the_closing_soa():
    def reply(q):
        return [
            message(q, SOA, "a.lab-x. NS ns1.", "a.lab-x. TXT hello"),
            message(q, "b.lab-x. NS ns1.b.lab-x.", "ns1.b.lab-x. A 192.0.2.1", "c.other. NS x."),
            message(q, SOA),
        ]

    stats = ImportStats()
    with fake_server(reply) as port:
        frames = list(A.read_axfr("127.0.0.1", port, "LAB-X", stats, timeout=TIMEOUT))
    got = set(pl.concat(frames).iter_rows())
    assert got == {
        ("lab-x.", "soa", "ns1.lab-x. h.lab-x. 1 2 3 4 5"),
        ("a.lab-x.", "ns", "ns1."),
        ("b.lab-x.", "ns", "ns1.b.lab-x."),
        ("ns1.b.lab-x.", "a", "192.0.2.1"),
    }
    assert stats.lines == 6
    assert stats.types["txt"] == 1
    assert dict(stats.bad) == {"out_of_zone": 1}
