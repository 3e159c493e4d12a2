"""The lab's DNS servers, checked from outside over real sockets with dnspython.

Every nameserver row of the ground truth is queried directly and must behave as its reasons
say (and a server without reasons must behave well). Zone transfers, the resolver address,
hostile input and DNSSEC proofs are checked too; signatures are validated with dnspython's own
`dns.dnssec.validate`, never with the lab's signer.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import socket
import struct
import time
from collections.abc import Iterator

import dns.dnssec
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype as T
import dns.rrset
import dns.xfr
import pytest

from survey_assets.lab import sources
from survey_assets.lab import world as W
from survey_assets.lab.serve import Lab
from survey_assets.lab.truth import truth_rows
from survey_assets_tests.conftest import free_port, tiny_lab

DATE = dt.date(2026, 11, 9)  # day 8
WORLD = W.World(W.DEFAULT_SEED, "tiny", DATE)
YESTERDAY = WORLD.day - 1
# Signatures are valid from three days before the world's date: validate as of that date's noon.
NOW = dt.datetime(DATE.year, DATE.month, DATE.day, 12, tzinfo=dt.UTC).timestamp()
TIMEOUT = 2.0
SILENCE = 1.0  # how long a server that never answers is given
UNKNOWN = 65280  # a private-use type no server knows
NS_ROWS = [r for r in truth_rows(WORLD) if r["kind"] == "nameserver"]
RESOLVER = W.RESOLVER_ADDRESS
TLD_SERVER = W.TLD_SERVERS["ns1.nic.lab-net."]


# --- the lab ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("lab")
    dns_port, smtp_port = free_port(RESOLVER), free_port("127.25.1.1")
    with Lab(
        seed=W.DEFAULT_SEED,
        scale="tiny",
        date=DATE,
        workdir=workdir,
        dns_port=dns_port,
        smtp_port=smtp_port,
    ) as running:
        yield running


# --- queries ---------------------------------------------------------------------------------------
def query(
    name: str | dns.name.Name, rdtype: int | str, *, edns: bool = True, do: bool = True
) -> dns.message.Message:
    return dns.message.make_query(
        name, rdtype, use_edns=0 if edns else False, want_dnssec=do and edns
    )


def udp(lab: Lab, q: dns.message.Message, address: str, timeout: float = TIMEOUT):
    return dns.query.udp(q, address, port=lab.dns_port, timeout=timeout)


def tcp(lab: Lab, q: dns.message.Message, address: str, timeout: float = TIMEOUT):
    return dns.query.tcp(q, address, port=lab.dns_port, timeout=timeout)


def rrsigs(message: dns.message.Message) -> list[dns.rrset.RRset]:
    sections = (message.answer, message.authority, message.additional)
    return [r for section in sections for r in section if r.rdtype == T.RRSIG]


def find(section, name, rdtype: int, covers: int = T.NONE) -> dns.rrset.RRset | None:
    name = dns.name.from_text(name) if isinstance(name, str) else name
    for rrset in section:
        if rrset.name == name and rrset.rdtype == rdtype and rrset.covers == covers:
            return rrset
    return None


def soa_serial(message: dns.message.Message, zone: str) -> int:
    soa = find(message.answer, zone, T.SOA)
    assert soa is not None, message.to_text()
    return soa[0].serial


def silent(lab: Lab, q: dns.message.Message, address: str, timeout: float = SILENCE) -> bool:
    try:
        udp(lab, q, address, timeout=timeout)
    except dns.exception.Timeout:
        return True
    return False


def edns_options(message: dns.message.Message, otype: int) -> list:
    return [o for o in message.options if o.otype == otype]


# --- which zone to ask each server about -------------------------------------------------------------
def served_domain(provider: str) -> W.Domain:
    """A healthy domain of `provider` that also existed yesterday (for the stale copy).

    Signed domains come first; for the ENT-bug provider a `self_dane` domain (its TLSA name
    makes `_tcp.mail.<domain>` an empty non-terminal).
    """
    best: tuple[int, W.Domain] | None = None
    for tld in W.TLDS:
        for i, _ in WORLD.domain_names(tld):
            d = WORLD.domain(tld.label, i)
            if d.dns != provider or d.fault is not None or not WORLD.alive(tld, i, YESTERDAY):
                continue
            if provider == "entbug" and d.mail != "self_dane":
                continue
            score = 0 if d.signed else 1
            if best is None or score < best[0]:
                best = (score, d)
    assert best is not None, f"no domain hosted by {provider}"
    return best[1]


def zone_of(row: dict) -> tuple[str, bool]:
    """(zone the server serves, whether that zone is signed)."""
    name = row["name"]
    if name in W.ROOT_SERVERS:
        return ".", True
    if name in W.TLD_SERVERS:
        return "lab-secure.", True
    if row["address"] == W.BLACKHOLE_ADDRESS:
        return name.split(".", 1)[1], True
    d = served_domain(name.split(".")[1])
    return d.name, d.signed


def sibling(row: dict) -> str:
    """The address of the other server of the same provider."""
    label, provider = row["name"].split(".")[:2]
    other = "ns2" if label == "ns1" else "ns1"
    return WORLD.nameservers()[f"{other}.{provider}.lab-net."][0]


# --- behaviours --------------------------------------------------------------------------------------
def check_healthy(lab: Lab, address: str, zone: str, signed: bool, *, udp_ok: bool = True) -> None:
    send = (lambda q: udp(lab, q, address)) if udp_ok else (lambda q: tcp(lab, q, address))
    r = send(query(zone, T.SOA))
    assert r.rcode() == dns.rcode.NOERROR, r.to_text()
    assert r.flags & dns.flags.AA, r.to_text()
    assert not r.flags & dns.flags.TC
    serial = soa_serial(r, zone)
    sig = find(r.answer, zone, T.RRSIG, T.SOA)
    if signed:
        assert sig is not None, f"no RRSIG over the SOA of signed {zone}:\n{r.to_text()}"
    else:
        assert sig is None and not rrsigs(r)
    # TCP gives the same answer
    rt = tcp(lab, query(zone, T.SOA), address)
    assert rt.rcode() == dns.rcode.NOERROR and soa_serial(rt, zone) == serial
    assert (find(rt.answer, zone, T.RRSIG, T.SOA) is not None) == signed
    # an unknown type: NOERROR and NODATA (no answer, the SOA in the authority section)
    ru = send(query(zone, UNKNOWN))
    assert ru.rcode() == dns.rcode.NOERROR, ru.to_text()
    assert ru.answer == [] and find(ru.authority, zone, T.SOA) is not None, ru.to_text()
    # a TLSA question is an ordinary question
    rl = send(query(f"_25._tcp.{zone}" if zone != "." else "_25._tcp.lab-net.", T.TLSA))
    assert rl.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN), rl.to_text()
    # a plain (no EDNS) query is answered and gets no OPT back
    rp = send(query(zone, T.SOA, edns=False))
    assert rp.rcode() == dns.rcode.NOERROR and rp.edns == -1 and soa_serial(rp, zone) == serial


def check_no_edns(lab: Lab, address: str, zone: str) -> None:
    r = udp(lab, query(zone, T.SOA), address)
    assert r.rcode() == dns.rcode.FORMERR, r.to_text()
    assert r.edns == -1, "a server without EDNS must not send an OPT record"
    assert r.answer == []
    plain = udp(lab, query(zone, T.SOA, edns=False), address)
    assert plain.rcode() == dns.rcode.NOERROR and plain.flags & dns.flags.AA
    soa_serial(plain, zone)


def check_notimp_tlsa(lab: Lab, address: str, zone: str) -> None:
    for rdtype in (T.TLSA, UNKNOWN):
        name = f"_25._tcp.{zone}" if rdtype == T.TLSA else zone
        r = udp(lab, query(name, rdtype), address)
        assert r.rcode() == dns.rcode.NOTIMP, (rdtype, r.to_text())
    ok = udp(lab, query(zone, T.SOA), address)  # the types it knows work
    assert ok.rcode() == dns.rcode.NOERROR and ok.flags & dns.flags.AA
    soa_serial(ok, zone)


def check_refused_unknown(lab: Lab, address: str, zone: str) -> None:
    r = udp(lab, query(zone, UNKNOWN), address)
    assert r.rcode() == dns.rcode.REFUSED, r.to_text()
    tlsa = udp(lab, query(f"_25._tcp.{zone}", T.TLSA), address)  # TLSA is a known type
    assert tlsa.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN), tlsa.to_text()
    ok = udp(lab, query(zone, T.SOA), address)
    assert ok.rcode() == dns.rcode.NOERROR
    soa_serial(ok, zone)


def check_truncating(lab: Lab, address: str, zone: str) -> None:
    for rdtype in (T.SOA, T.A, T.DNSKEY):
        r = udp(lab, query(zone, rdtype), address)
        assert r.flags & dns.flags.TC, f"UDP {T.to_text(rdtype)} answer not truncated"
        assert r.answer == []


def check_do_stripped(lab: Lab, address: str, zone: str, signed: bool) -> None:
    assert signed, f"{zone}: a do_stripped server must be checked on a signed zone"
    for rdtype in (T.SOA, T.DNSKEY, UNKNOWN):
        r = udp(lab, query(zone, rdtype), address)
        assert r.rcode() == dns.rcode.NOERROR, r.to_text()
        assert rrsigs(r) == [], f"DO was not stripped for {T.to_text(rdtype)}:\n{r.to_text()}"
        assert not r.ednsflags & dns.flags.DO
    soa_serial(udp(lab, query(zone, T.SOA), address), zone)
    # the same question to its healthy sibling carries signatures: the zone is signed
    healthy = udp(lab, query(zone, T.SOA), sibling_address(address))
    assert find(healthy.answer, zone, T.RRSIG, T.SOA) is not None


def sibling_address(address: str) -> str:
    for name, (a, _) in WORLD.nameservers().items():
        if a == address:
            return sibling({"name": name})
    raise KeyError(address)


def check_stale(lab: Lab, address: str, zone: str, row: dict) -> None:
    stale = soa_serial(udp(lab, query(zone, T.SOA), address), zone)
    fresh = soa_serial(udp(lab, query(zone, T.SOA), sibling(row)), zone)
    assert stale < fresh, f"stale server serial {stale} is not older than its sibling's {fresh}"


def check_ent(lab: Lab, address: str, zone: str, row: dict) -> None:
    ent = f"_tcp.mail.{zone}"
    # the name really is an empty non-terminal: a name below it exists
    below = udp(lab, query(f"_25.{ent}", T.TLSA), sibling(row))
    assert below.rcode() == dns.rcode.NOERROR and below.answer, below.to_text()
    buggy = udp(lab, query(ent, T.A), address)
    assert buggy.rcode() == dns.rcode.NXDOMAIN, buggy.to_text()
    healthy = udp(lab, query(ent, T.A), sibling(row))
    assert healthy.rcode() == dns.rcode.NOERROR and healthy.answer == [], healthy.to_text()
    assert find(healthy.authority, zone, T.SOA) is not None


def row_id(row: dict) -> str:
    return f"{row['name']}@{row['address']}"


@pytest.mark.parametrize("row", NS_ROWS, ids=row_id)
def test_nameserver_behaves_as_its_reasons_say(lab: Lab, row: dict) -> None:
    address, fault, reasons = row["address"], row["fault"], row["reasons"]
    zone, signed = zone_of(row)
    assert reasons == (W.NAMESERVER_REASONS[fault] if fault else [])
    if address == W.BLACKHOLE_ADDRESS:
        assert reasons == ["timeout"]
        for rdtype in (T.SOA, T.NS):
            assert silent(lab, query(zone, rdtype), address), "the blackhole answered"
        return
    if fault is None:
        check_healthy(lab, address, zone, signed)
    elif fault == "stale":
        check_healthy(lab, address, zone, signed)  # a stale copy is still a working server
        check_stale(lab, address, zone, row)
    elif fault == "no_edns":
        check_no_edns(lab, address, zone)
    elif fault == "notimp_tlsa":
        check_notimp_tlsa(lab, address, zone)
    elif fault == "refused_unknown":
        check_refused_unknown(lab, address, zone)
    elif fault == "tcp_only":
        assert reasons == []  # slow but healthy: everything works over TCP
        check_truncating(lab, address, zone)
        check_healthy(lab, address, zone, signed, udp_ok=False)
    elif fault == "tc_no_tcp":
        check_truncating(lab, address, zone)
        with pytest.raises(ConnectionRefusedError):
            tcp(lab, query(zone, T.SOA), address)
    elif fault == "do_stripped":
        check_do_stripped(lab, address, zone, signed)
    elif fault == "timeout":
        assert silent(lab, query(zone, T.SOA), address)
        assert silent(lab, query(zone, T.SOA, edns=False), address)
    elif fault == "ent_nxdomain":
        check_ent(lab, address, zone, row)
    else:
        pytest.fail(f"the truth names a fault this test does not know: {fault}")


def test_truth_covers_every_faulty_server() -> None:
    faults = {r["fault"] for r in NS_ROWS if r["address"] != W.BLACKHOLE_ADDRESS}
    assert faults - {None} == set(W.NAMESERVER_REASONS)
    assert any(r["address"] == W.BLACKHOLE_ADDRESS for r in NS_ROWS)


@pytest.mark.parametrize("row", NS_ROWS, ids=row_id)
def test_nameserver_row_address_is_where_dns_points(lab: Lab, row: dict) -> None:
    name, address = row["name"], row["address"]
    if address == W.BLACKHOLE_ADDRESS:
        # a self-hosted domain's servers: the TLD's referral carries their glue
        domain = name.split(".", 1)[1]
        r = udp(lab, query(domain, T.NS), TLD_SERVER)
        glue = find(r.additional, name, T.A)
    else:
        r = udp(lab, query(name, T.A), RESOLVER)
        assert r.rcode() == dns.rcode.NOERROR, r.to_text()
        glue = find(r.answer, name, T.A)
    assert glue is not None, r.to_text()
    assert {rd.address for rd in glue} == {address}


def test_empty_nonterminals_get_nodata_from_healthy_providers(lab: Lab) -> None:
    """Only the ENT-bug server lies: other healthy servers hosting self_dane domains say NODATA."""
    checked = 0
    for name, (address, fault) in WORLD.nameservers().items():
        provider = name.split(".")[1]
        if fault is not None or provider == "entbug":
            continue
        hosted = [
            WORLD.domain(t.label, i)
            for t in W.TLDS
            for i, _ in WORLD.domain_names(t)
            if WORLD.domain(t.label, i).dns == provider
            and WORLD.domain(t.label, i).mail == "self_dane"
            and WORLD.domain(t.label, i).fault is None
        ]
        for d in hosted[:1]:
            r = udp(lab, query(f"_tcp.mail.{d.name}", T.A), address)
            assert r.rcode() == dns.rcode.NOERROR and r.answer == [], r.to_text()
            checked += 1
    assert checked, "no self_dane domain on a healthy server in this world"


HEALTHY = [
    ("resolver", RESOLVER, "lab-secure."),
    ("root", W.ROOT_SERVERS["a.root.nic.lab-net."], "."),
    ("tld", TLD_SERVER, "lab-secure."),
    ("dnshost", "127.53.2.1", None),
]
HEALTHY_ARGS = pytest.mark.parametrize(
    ("address", "zone"), [h[1:] for h in HEALTHY], ids=[h[0] for h in HEALTHY]
)


@HEALTHY_ARGS
def test_healthy_servers_echo_the_do_bit(lab: Lab, address: str, zone: str | None) -> None:
    zone = zone or served_domain("dnshost").name
    r = udp(lab, query(zone, T.SOA), address)
    assert r.rcode() == dns.rcode.NOERROR and rrsigs(r), r.to_text()
    assert r.ednsflags & dns.flags.DO, f"{address}: DO not echoed"


@HEALTHY_ARGS
def test_healthy_servers_reject_unknown_edns_versions(
    lab: Lab, address: str, zone: str | None
) -> None:
    zone = zone or served_domain("dnshost").name
    r = udp(lab, dns.message.make_query(zone, T.SOA, use_edns=1), address)
    assert r.rcode() == dns.rcode.BADVERS and r.edns == 0, r.to_text()
    assert r.answer == []


@HEALTHY_ARGS
def test_answers_never_mix_classes(lab: Lab, address: str, zone: str | None) -> None:
    zone = zone or served_domain("dnshost").name
    q = dns.message.make_query(zone, T.SOA, rdclass=dns.rdataclass.CH)
    r = udp(lab, q, address)
    classes = {rrset.rdclass for rrset in r.answer}
    assert classes <= {dns.rdataclass.CH}, r.to_text()


# --- zone transfers ----------------------------------------------------------------------------------
def transfer(lab: Lab, address: str, zone: str) -> list[dns.message.Message]:
    return list(
        dns.query.xfr(address, zone, port=lab.dns_port, timeout=5, lifetime=15, relativize=False)
    )


def merged(rrsets: list[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
    """dnspython reads a transfer one record per RRset: put the RRsets back together."""
    out: list[dns.rrset.RRset] = []
    last = None
    for rrset in rrsets:
        if last is not None and (last.name, last.rdtype, last.covers) == (
            rrset.name,
            rrset.rdtype,
            rrset.covers,
        ):
            last.union_update(rrset)
            continue
        last = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
        last.update(rrset)
        out.append(last)
    return out


@pytest.mark.parametrize("address", list(W.TLD_SERVERS.values()))
def test_axfr_of_the_open_tld_is_the_whole_zone(lab: Lab, address: str) -> None:
    messages = transfer(lab, address, "lab-open.")
    rrsets = merged([r for m in messages for r in m.answer])
    origin = dns.name.from_text("lab-open.")
    first, last = rrsets[0], rrsets[-1]
    assert first.rdtype == T.SOA and first.name == origin
    assert last.rdtype == T.SOA and last.name == origin and last == first
    assert sum(r.rdtype == T.SOA for r in rrsets) == 2
    assert all(m.flags & dns.flags.AA and m.rcode() == dns.rcode.NOERROR for m in messages)

    delegated = {r.name for r in rrsets if r.rdtype == T.NS and r.name != origin}
    expected = set(sources.delegations(WORLD, "lab-open"))
    assert expected, "no lab-open domain alive today"
    assert delegated == expected
    # NS sets name the servers the world says host each domain
    for r in rrsets:
        if r.rdtype == T.NS and r.name != origin:
            d = WORLD.lookup_domain(r.name.labels)
            assert d is not None
            assert {ns.target.to_text() for ns in r} == set(WORLD.ns_records(d))
    # DS exactly for the signed ones
    with_ds = {r.name for r in rrsets if r.rdtype == T.DS}
    assert with_ds == {n for n in expected if WORLD.lookup_domain(n.labels).signed}

    # the NSEC chain: one closed loop over the apex and every delegation, in canonical order
    nsecs = {r.name: r[0].next for r in rrsets if r.rdtype == T.NSEC}
    assert nsecs, "no NSEC records in the transfer"
    assert set(nsecs) == expected | {origin}
    order = sorted(nsecs)
    for here, following in zip(order, [*order[1:], order[0]], strict=True):
        assert nsecs[here] == following, f"NSEC at {here} points at {nsecs[here]}"

    # and the NSEC RRsets are signed by the TLD's keys (checked by dnspython, not the lab)
    dnskey = find(rrsets, origin, T.DNSKEY)
    assert dnskey is not None
    sigs = {r.name: r for r in rrsets if r.rdtype == T.RRSIG and r.covers == T.NSEC}
    for r in rrsets[:-1]:
        if r.rdtype == T.NSEC:
            dns.dnssec.validate(r, sigs[r.name], {origin: dnskey}, now=NOW)


@pytest.mark.parametrize(
    ("address", "zone"),
    [
        (TLD_SERVER, "lab-secure."),
        (TLD_SERVER, "lab-vast."),
        (W.ROOT_SERVERS["a.root.nic.lab-net."], "."),
        (WORLD.nameservers()["ns1.dnshost.lab-net."][0], None),
    ],
    ids=["tld-lab-secure", "tld-lab-vast", "root", "provider"],
)
def test_axfr_elsewhere_is_refused(lab: Lab, address: str, zone: str | None) -> None:
    zone = zone or served_domain("dnshost").name
    with pytest.raises(dns.xfr.TransferError) as caught:
        transfer(lab, address, zone)
    assert caught.value.rcode == dns.rcode.REFUSED


# --- the resolver ------------------------------------------------------------------------------------
def test_resolver_answers_provider_hosts(lab: Lab) -> None:
    r = udp(lab, query("mx1.bigdane.lab-net.", T.A), RESOLVER)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.RA and not r.flags & dns.flags.AA
    a = find(r.answer, "mx1.bigdane.lab-net.", T.A)
    assert a is not None
    expected = [h for h in WORLD.provider_hosts("bigdane") if h.name == "mx1.bigdane.lab-net."]
    assert {rd.address for rd in a} == {x for x in expected[0].addresses if ":" not in x}
    assert find(r.answer, "mx1.bigdane.lab-net.", T.RRSIG, T.A) is not None


def test_resolver_follows_cname_to_the_apex(lab: Lab) -> None:
    d = served_domain("dnshost")
    r = udp(lab, query(f"www.{d.name}", T.A), RESOLVER)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.RA
    cname = find(r.answer, f"www.{d.name}", T.CNAME)
    assert cname is not None and cname[0].target == dns.name.from_text(d.name)
    a = find(r.answer, d.name, T.A)
    assert a is not None, r.to_text()
    # the same address the domain's own server gives for its apex
    auth = udp(lab, query(d.name, T.A), WORLD.nameservers()["ns1.dnshost.lab-net."][0])
    assert {rd.address for rd in a} == {rd.address for rd in find(auth.answer, d.name, T.A)}


@pytest.mark.parametrize("fault", ["lame", "ns_timeout"])
def test_resolver_servfail_with_ede_for_unreachable_domains(lab: Lab, fault: str) -> None:
    tld = next(t for t in W.TLDS if t.label == "lab-secure")
    d = next(
        WORLD.domain("lab-secure", i)
        for i, _ in WORLD.domain_names(tld)
        if WORLD.domain("lab-secure", i).fault == fault
    )
    r = udp(lab, query(d.name, T.MX), RESOLVER)
    assert r.rcode() == dns.rcode.SERVFAIL, r.to_text()
    assert r.answer == []
    ede = edns_options(r, dns.edns.OptionType.EDE)
    assert [o.code for o in ede] == [22], r.to_text()
    if fault == "lame":  # the delegated server really does not serve it
        ns = udp(lab, query(d.name, T.SOA), WORLD.nameservers()[WORLD.ns_records(d)[0]][0])
        assert ns.rcode() == dns.rcode.REFUSED and not ns.flags & dns.flags.AA


# --- hostile input -----------------------------------------------------------------------------------
HOSTILE_TARGETS = {
    "resolver": (RESOLVER, lambda: "lab-secure."),
    "root": (W.ROOT_SERVERS["a.root.nic.lab-net."], lambda: "."),
    "tld": (TLD_SERVER, lambda: "lab-secure."),
    "dnshost": ("127.53.2.1", lambda: served_domain("dnshost").name),
    "oldbind-no-edns": ("127.53.2.9", lambda: served_domain("oldbind").name),
    "strictfw-refused-unknown": ("127.53.2.14", lambda: served_domain("strictfw").name),
    "tinyudp-tcp-only": ("127.53.2.17", lambda: served_domain("tinyudp").name),
}
RESPONSE_ID = 0x5151


def garbage() -> list[bytes]:
    blob = bytearray(random.Random(8).randbytes(512))
    blob[:2] = b"\x12\x34"
    qr = query("lab-secure.", T.SOA)
    qr.id = RESPONSE_ID
    qr.flags |= dns.flags.QR
    return [b"\x00\x01\x02", bytes(12), bytes(blob), qr.to_wire()]


@pytest.mark.parametrize("target", HOSTILE_TARGETS)
def test_malformed_input_never_kills_a_server(lab: Lab, target: str) -> None:
    address, zone_of_target = HOSTILE_TARGETS[target]
    zone = zone_of_target()
    edns = target != "oldbind-no-edns"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        for blob in garbage():
            s.sendto(blob, (address, lab.dns_port))
        replies = []
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            try:
                replies.append(s.recv(65535))
            except TimeoutError:
                break
        assert all(len(reply) >= 12 and reply[2] & 0x80 for reply in replies)
        # a message with QR set is a response: answering it would start a loop
        ids = {int.from_bytes(reply[:2], "big") for reply in replies}
        assert RESPONSE_ID not in ids, "answered a response"
    if target != "tinyudp-tcp-only":  # its UDP answers are always truncated; TCP below
        ok = udp(lab, query(zone, T.SOA, edns=edns), address)
        assert ok.rcode() == dns.rcode.NOERROR and find(ok.answer, zone, T.SOA) is not None
    # and the same over TCP, each blob framed as a message on one connection
    with socket.create_connection((address, lab.dns_port), timeout=TIMEOUT) as s:
        for blob in garbage():
            s.sendall(struct.pack("!H", len(blob)) + blob)
    ok = tcp(lab, query(zone, T.SOA, edns=edns), address)
    assert ok.rcode() == dns.rcode.NOERROR and find(ok.answer, zone, T.SOA) is not None


def test_truncated_tcp_length_prefix_does_not_kill_the_server(lab: Lab) -> None:
    with socket.create_connection((TLD_SERVER, lab.dns_port), timeout=TIMEOUT) as s:
        s.sendall(b"\x01\x00" + b"\x00" * 10)  # announces 256 bytes, sends 10, hangs up
    r = tcp(lab, query("lab-secure.", T.SOA), TLD_SERVER)
    assert r.rcode() == dns.rcode.NOERROR


# A zone transfer request whose TLD label is not UTF-8 (a valid DNS label): it gets a lab of its
# own, so an error the handler might record cannot reach `test_no_server_recorded_an_error`.
NON_UTF8_AXFR = [dns.name.Name((b"\xff", b"")), dns.name.Name((b"lab-open\xc3", b""))]


@pytest.fixture(scope="module")
def scratch_lab(tmp_path_factory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("scratch")
    with tiny_lab(workdir, DATE) as running:
        yield running


def test_axfr_of_a_non_utf8_name_is_refused(scratch_lab: Lab) -> None:
    for qname in NON_UTF8_AXFR:
        try:
            r = tcp(scratch_lab, dns.message.make_query(qname, T.AXFR), TLD_SERVER)
        except EOFError:
            pytest.fail(f"AXFR {qname}: the server closed the connection without an answer")
        assert r.rcode() == dns.rcode.REFUSED, r.to_text()
    assert scratch_lab.errors == []
    r = tcp(scratch_lab, query("lab-secure.", T.SOA), TLD_SERVER)
    assert r.rcode() == dns.rcode.NOERROR
    assert transfer(scratch_lab, TLD_SERVER, "lab-open.")


# --- DNSSEC proofs, validated independently ------------------------------------------------------------
def signed_domain(denial: str, *, wildcard: bool) -> W.Domain:
    candidates = []
    for tld in W.TLDS:
        for i, _ in WORLD.domain_names(tld):
            d = WORLD.domain(tld.label, i)
            if (
                d.signed
                and d.fault is None
                and d.dns == "dnshost"
                and d.denial == denial
                and d.wildcard == wildcard
            ):
                candidates.append(d)
    assert candidates, f"no signed {denial} domain (wildcard={wildcard})"
    # prefer a salted, iterated NSEC3 chain: it exercises more of the hashing
    return max(candidates, key=lambda d: (d.nsec3_iterations, -d.index))


def zone_keys(lab: Lab, zone: str) -> dict[dns.name.Name, dns.rrset.RRset]:
    r = udp(lab, query(zone, T.DNSKEY), RESOLVER)
    origin = dns.name.from_text(zone)
    keys = find(r.answer, origin, T.DNSKEY)
    sig = find(r.answer, origin, T.RRSIG, T.DNSKEY)
    assert keys is not None and sig is not None, r.to_text()
    dns.dnssec.validate(keys, sig, {origin: keys}, now=NOW)  # self-signed by its KSK
    return {origin: keys}


def validate_all(message: dns.message.Message, section, rdtype: int, keys) -> list[dns.rrset.RRset]:
    found = [r for r in section if r.rdtype == rdtype]
    assert found, f"no {T.to_text(rdtype)} in:\n{message.to_text()}"
    for rrset in found:
        sig = find(section, rrset.name, T.RRSIG, rdtype)
        assert sig is not None, f"{rrset.name} {T.to_text(rdtype)} unsigned"
        dns.dnssec.validate(rrset, sig, keys, now=NOW)
    return found


def covers(owner: dns.name.Name, nxt: dns.name.Name, name: dns.name.Name) -> bool:
    if owner < nxt:
        return owner < name < nxt
    return name > owner or name < nxt  # the last NSEC wraps to the apex


def b32hex(data: bytes) -> str:
    return base64.b32hexencode(data).decode().lower().rstrip("=")


def hash_covers(owner: str, nxt: str, h: str) -> bool:
    if owner < nxt:
        return owner < h < nxt
    return h > owner or h < nxt


def test_nsec_nxdomain_proof_validates(lab: Lab) -> None:
    d = signed_domain("nsec", wildcard=False)
    keys = zone_keys(lab, d.name)
    qname = dns.name.from_text(f"nothere-at-all.{d.name}")
    r = udp(lab, query(qname, T.A), RESOLVER)
    assert r.rcode() == dns.rcode.NXDOMAIN, r.to_text()
    nsecs = validate_all(r, r.authority, T.NSEC, keys)
    wildcard = dns.name.from_text(f"*.{d.name}")
    assert any(covers(n.name, n[0].next, qname) for n in nsecs), "qname not covered"
    assert any(covers(n.name, n[0].next, wildcard) for n in nsecs), "wildcard not covered"
    validate_all(r, r.authority, T.SOA, keys)


def test_nsec3_nxdomain_proof_validates(lab: Lab) -> None:
    d = signed_domain("nsec3", wildcard=False)
    keys = zone_keys(lab, d.name)
    origin = dns.name.from_text(d.name)
    qname = dns.name.from_text(f"nothere-at-all.{d.name}")
    r = udp(lab, query(qname, T.A), RESOLVER)
    assert r.rcode() == dns.rcode.NXDOMAIN, r.to_text()
    nsec3s = validate_all(r, r.authority, T.NSEC3, keys)
    param = nsec3s[0][0]
    assert (param.iterations, param.salt.hex()) == (d.nsec3_iterations, d.nsec3_salt)

    def h(name: dns.name.Name) -> str:
        return dns.dnssec.nsec3_hash(name, param.salt or None, param.iterations, 1).lower()

    chain = [(r3.name.labels[0].decode().lower(), b32hex(r3[0].next)) for r3 in nsec3s]
    owners = {o for o, _ in chain}
    assert h(origin) in owners, "no NSEC3 matching the closest encloser"
    assert any(hash_covers(o, n, h(qname)) for o, n in chain), "next closer not covered"
    wildcard = dns.name.from_text(f"*.{d.name}")
    assert any(hash_covers(o, n, h(wildcard)) for o, n in chain), "wildcard not covered"


def test_wildcard_answer_validates(lab: Lab) -> None:
    d = signed_domain("nsec", wildcard=True)
    keys = zone_keys(lab, d.name)
    qname = dns.name.from_text(f"nothere.{d.name}")
    r = udp(lab, query(qname, T.A), RESOLVER)
    assert r.rcode() == dns.rcode.NOERROR, r.to_text()
    a = find(r.answer, qname, T.A)
    sig = find(r.answer, qname, T.RRSIG, T.A)
    assert a is not None and sig is not None, r.to_text()
    wildcard = dns.name.from_text(f"*.{d.name}")
    assert {s.labels for s in sig} == {len(wildcard) - 2}  # '*' and the root do not count
    dns.dnssec.validate(a, sig, keys, now=NOW)
    # a tampered answer must not validate: the check above has teeth
    forged = dns.rrset.from_text(qname, a.ttl, "IN", "A", "192.0.2.66")
    with pytest.raises(dns.dnssec.ValidationFailure):
        dns.dnssec.validate(forged, sig, keys, now=NOW)


def test_no_server_recorded_an_error(lab: Lab) -> None:
    """Runs last in this module: nothing above made a handler raise."""
    assert lab.errors == []
