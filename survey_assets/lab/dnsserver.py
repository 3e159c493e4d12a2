"""The lab's DNS servers on loopback: root, TLD, provider nameservers, and one resolver address.

Each server has its own 127.x.y.z address and speaks UDP and TCP on the lab's DNS port. The
authoritative servers answer only for the zones delegated to them, each with its own fault (no
EDNS, NOTIMP for TLSA, truncation, silence, a stale copy ...). The resolver address answers any
lab name with the authoritative data and signatures, as a recursive resolver queried with CD=1
would, and SERVFAIL with an Extended DNS Error where recursion would fail.

Answers are cached in wire form keyed by the query's bytes after the ID, so a repeated question
costs a dictionary lookup and a two-byte patch.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import struct
from dataclasses import dataclass

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype as T
import dns.rrset

from survey_assets.lab import world as W
from survey_assets.lab.authority import Answer, LabData, answer
from survey_assets.lab.zones import ROOT, TldZone, Zone

# Types an old or firewalled server knows; others are "unknown" to the faulty ones.
LEGACY_TYPES = {T.A, T.NS, T.SOA, T.MX, T.TXT, T.AAAA, T.CNAME, T.DS, T.DNSKEY, T.RRSIG, T.PTR}
KNOWN_TYPES = LEGACY_TYPES | {T.NSEC, T.NSEC3, T.NSEC3PARAM, T.TLSA, T.ANY, T.CAA, T.SRV}
AXFR_TLDS = {t.label.encode() for t in W.TLDS if t.source == "axfr"}
CACHE_LIMIT = 500_000
EDE_NO_REACHABLE_AUTHORITY = 22


@dataclass(frozen=True)
class ServerSpec:
    """One lab DNS server: its address, its role and its fault."""

    name: str
    address: str
    role: str  # resolver | root | tld | provider | blackhole
    provider: str | None = None
    fault: str | None = None


def server_specs(world: W.World) -> list[ServerSpec]:
    specs = [ServerSpec("resolver", W.RESOLVER_ADDRESS, "resolver")]
    specs += [ServerSpec(n, a, "root") for n, a in W.ROOT_SERVERS.items()]
    specs += [ServerSpec(n, a, "tld") for n, a in W.TLD_SERVERS.items()]
    for name, (address, fault) in world.nameservers().items():
        specs.append(ServerSpec(name, address, "provider", name.split(".")[1], fault))
    specs.append(ServerSpec("blackhole", W.BLACKHOLE_ADDRESS, "blackhole", fault="timeout"))
    return specs


class Responder:
    """Turns a query's wire bytes into the response of one server, for one date."""

    def __init__(self, spec: ServerSpec, data: LabData, stale: LabData | None = None) -> None:
        self.spec = spec
        self.data = stale if spec.fault == "stale" and stale is not None else data
        self.cache: dict[bytes, bytes | None] = {}

    # --- which zone ------------------------------------------------------------------------------
    def serves(self, zone: Zone) -> bool:
        role, origin = self.spec.role, zone.origin
        if role == "root":
            return origin == ROOT
        if role == "tld":
            return isinstance(zone, TldZone) or origin == dns.name.from_text("nic.lab-net.")
        if role == "provider":
            if len(origin) == 3 and origin.labels[1] == b"lab-net":
                return self.spec.provider == "dnshost" and origin.labels[0] != b"nic"
            domain = self.data.world.lookup_domain(origin.labels)
            return (
                domain is not None and domain.dns == self.spec.provider and domain.fault != "lame"
            )
        return False

    def zone_for(self, qname: dns.name.Name, qtype: int) -> Zone | None:
        zone = self.data.zone_for(qname)
        first = True
        while zone is not None:
            at_apex_ds = first and qtype == T.DS and zone.origin == qname and zone.origin != ROOT
            if self.serves(zone) and not at_apex_ds:
                return zone
            if zone.origin == ROOT:
                return None
            zone = self.data.zone(zone.origin.parent() if len(zone.origin) > 2 else ROOT)
            first = False
        return None

    # --- answering -------------------------------------------------------------------------------
    def respond(self, wire: bytes, tcp: bool) -> bytes | None:
        key = (b"T" if tcp else b"U") + wire[2:]
        cached = self.cache.get(key, b"")
        if cached != b"":
            return None if cached is None else wire[:2] + cached[2:]
        response = self._respond(wire, tcp)
        if len(self.cache) > CACHE_LIMIT:
            self.cache.clear()
        self.cache[key] = response
        return response

    def _respond(self, wire: bytes, tcp: bool) -> bytes | None:
        fault = self.spec.fault
        if fault == "timeout":
            return None
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            if len(wire) < 12:
                return None
            return wire[:2] + struct.pack("!HHHHH", 0x8001, 0, 0, 0, 0)  # FORMERR, header only
        if query.flags & dns.flags.QR or not query.question:
            return None
        response = dns.message.make_response(query)
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        if fault == "no_edns" and query.edns >= 0:
            response.use_edns(False)
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response.to_wire()
        if query.edns > 0:  # RFC 6891 §6.1.3: only version 0 exists
            response.use_edns(0, 0, 1232)
            response.set_rcode(dns.rcode.BADVERS)
            return response.to_wire()
        if question.rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        if not tcp and fault in ("tcp_only", "tc_no_tcp"):
            response.flags |= dns.flags.TC
            return response.to_wire()
        unknown = qtype not in KNOWN_TYPES
        if fault == "notimp_tlsa" and (qtype == T.TLSA or qtype not in LEGACY_TYPES):
            response.set_rcode(dns.rcode.NOTIMP)
            return response.to_wire()
        if fault == "refused_unknown" and unknown:
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        dnssec = bool(query.ednsflags & dns.flags.DO) and fault != "do_stripped"
        if dnssec:
            response.ednsflags |= dns.flags.DO  # RFC 3225: copied into the response
        if self.spec.role == "resolver":
            result = self._resolve(qname, qtype, dnssec, response)
            response.flags |= dns.flags.RA
            response.flags &= ~dns.flags.AA
        else:
            zone = self.zone_for(qname, qtype)
            if zone is None:
                response.set_rcode(dns.rcode.REFUSED)
                return response.to_wire()
            result = answer(self.data, zone, qname, qtype, dnssec)
            if fault == "ent_nxdomain" and _is_empty_nonterminal(zone, qname, result):
                result.rcode = dns.rcode.NXDOMAIN
            if result.authoritative:
                response.flags |= dns.flags.AA
        _fill(response, result)
        return _to_wire(response, query, tcp)

    def _resolve(self, qname: dns.name.Name, qtype: int, dnssec: bool, response) -> Answer:
        """What a recursive resolver (CD=1) would return: every CNAME followed."""
        total = Answer(authoritative=False)
        for _ in range(8):
            zone = self._resolver_zone(qname, qtype)
            if zone is None:
                total.rcode = dns.rcode.SERVFAIL
                return total
            domain = self.data.world.lookup_domain(zone.origin.labels)
            if domain is not None and domain.fault in ("lame", "ns_timeout"):
                total.rcode = dns.rcode.SERVFAIL
                why = "lame delegation" if domain.fault == "lame" else "all nameservers timed out"
                if response.edns >= 0:
                    response.use_edns(
                        0,
                        response.ednsflags,
                        1232,
                        options=[dns.edns.EDEOption(EDE_NO_REACHABLE_AUTHORITY, why)],
                    )
                return total
            step = answer(self.data, zone, qname, qtype, dnssec)
            total.answer += step.answer
            total.rcode = step.rcode
            total.authority, total.additional = step.authority, step.additional
            cnames = {r.name: r[0].target for r in step.answer if r.rdtype == T.CNAME}
            name = qname
            while name in cnames and cnames[name] != qname:
                name = cnames[name]
            done = any(r.name == name and r.rdtype == qtype for r in step.answer)
            if (
                name == qname
                or done
                or qtype in (T.CNAME, T.ANY)
                or step.rcode != dns.rcode.NOERROR
            ):
                return total
            qname = name
        total.rcode = dns.rcode.SERVFAIL
        return total

    def _resolver_zone(self, qname: dns.name.Name, qtype: int) -> Zone | None:
        zone = self.data.zone_for(qname)
        if zone is not None and qtype == T.DS and zone.origin == qname.canonicalize():
            if zone.origin == ROOT:
                return zone
            return self.data.zone(zone.origin.parent() if len(zone.origin) > 2 else ROOT)
        return zone

    # --- zone transfer ---------------------------------------------------------------------------
    def axfr(self, wire: bytes) -> list[bytes]:
        """The messages of a full zone transfer, or one REFUSED message."""
        query = dns.message.from_wire(wire)
        qname = query.question[0].name.canonicalize()
        allowed = self.spec.role == "tld" and len(qname) == 2 and qname.labels[0] in AXFR_TLDS
        if not allowed:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.REFUSED)
            return [response.to_wire()]
        zone = self.data.zone(qname)
        assert zone is not None
        messages, batch = [], []
        rrsets = list(zone_rrsets(self.data, zone))
        soa = rrsets[0]
        for rrset in [*rrsets, soa]:
            batch.append(rrset)
            if len(batch) >= 200:
                messages.append(_axfr_message(query, batch))
                batch = []
        if batch:
            messages.append(_axfr_message(query, batch))
        return messages


def zone_rrsets(data: LabData, zone: Zone):
    """Every RRset of a signed zone, SOA first: the content of a zone transfer or zone file."""
    signer = data.signer(zone)

    def with_sig(name, rds):
        rrset = dns.rrset.RRset(name, rds.rdclass, rds.rdtype)
        rrset.update(rds)
        yield rrset
        sig = signer.rrsig(name, rds)
        if sig is not None:
            s = dns.rrset.RRset(name, sig.rdclass, T.RRSIG, rds.rdtype)
            s.update(sig)
            yield s

    apex = zone.node(zone.origin)
    yield from with_sig(zone.origin, apex[T.SOA])
    for rdtype, rds in apex.items():
        if rdtype != T.SOA:
            yield from with_sig(zone.origin, rds)
    for name in zone.names():
        if name == zone.origin:
            continue
        node = zone.node(name)
        if not node:
            continue
        for rds in node.values():
            yield from with_sig(name, rds)
        if T.NS in node:
            for ns in node[T.NS]:
                glue = zone.node(ns.target) if ns.target.is_subdomain(name) else None
                for rds in (glue or {}).values():
                    rrset = dns.rrset.RRset(ns.target, rds.rdclass, rds.rdtype)
                    rrset.update(rds)
                    yield rrset
    if zone.signed:
        if zone.denial == "nsec":
            denials = [signer.nsec_rrset(n) for n in signer.nsec_names]
        else:
            denials = [signer.nsec3_rrset(h) for h in signer.nsec3_chain[0]]
        for rrset, sig in denials:
            yield rrset
            s = dns.rrset.RRset(rrset.name, rrset.rdclass, T.RRSIG, rrset.rdtype)
            s.update(sig)
            yield s


def _axfr_message(query, rrsets) -> bytes:
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    response.answer = list(rrsets)
    return response.to_wire(max_size=65535)


def _is_empty_nonterminal(zone: Zone, qname: dns.name.Name, result: Answer) -> bool:
    return (
        result.rcode == dns.rcode.NOERROR
        and not result.answer
        and zone.node(qname) is None
        and zone.below(qname)
    )


def _fill(response: dns.message.Message, result: Answer) -> None:
    if result.rcode != dns.rcode.NOERROR:
        response.set_rcode(result.rcode)
    response.answer = result.answer
    response.authority = result.authority
    response.additional = result.additional


def _to_wire(response: dns.message.Message, query: dns.message.Message, tcp: bool) -> bytes:
    limit = 65535 if tcp else (max(512, min(query.payload, 4096)) if query.edns >= 0 else 512)
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer, response.authority, response.additional = [], [], []
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit)


# --- sockets -------------------------------------------------------------------------------------
class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsLab, spec: ServerSpec) -> None:
        self.server, self.spec = server, spec
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            response = self.server.responders[self.spec.address].respond(data, False)
        except Exception as exc:  # a lab bug must not kill the server; say it and go on
            self.server.errors.append(f"{self.spec.name}: {exc!r}")
            return
        if response is not None and self.transport is not None:
            self.transport.sendto(response, addr)


class DnsLab:
    """Every DNS server of the lab, for one date at a time."""

    def __init__(self, world: W.World, port: int) -> None:
        self.port = port
        self.specs = server_specs(world)
        self.responders: dict[str, Responder] = {}
        self.errors: list[str] = []
        self._transports: list = []
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task] = set()
        self.set_world(world)

    @property
    def addresses(self) -> list[str]:
        return [s.address for s in self.specs]

    def set_world(self, world: W.World) -> None:
        data = LabData(world)
        previous = W.world(world.seed, world.scale, world.date - dt.timedelta(days=1))
        stale = LabData(previous)
        self.world = world
        self.responders = {s.address: Responder(s, data, stale) for s in self.specs}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for spec in self.specs:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda spec=spec: _Udp(self, spec), local_addr=(spec.address, self.port)
                )
                self._transports.append(transport)
                with contextlib.suppress(OSError):  # room for a scanner's bursts of queries
                    transport.get_extra_info("socket").setsockopt(
                        socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22
                    )
                if spec.fault == "tc_no_tcp":
                    continue  # nothing listens on TCP: connection refused
                server = await asyncio.start_server(
                    lambda r, w, spec=spec: self._tcp(spec, r, w),
                    spec.address,
                    self.port,
                    reuse_address=True,
                )
                self._servers.append(server)
        except OSError as exc:
            await self.close()
            raise OSError(
                f"cannot bind DNS server {spec.name} at {spec.address}:{self.port}: {exc.strerror}"
            ) from None

    async def close(self) -> None:
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._transports, self._servers = [], []

    async def _tcp(self, spec: ServerSpec, reader: asyncio.StreamReader, writer) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(2), 30)
                wire = await asyncio.wait_for(
                    reader.readexactly(struct.unpack("!H", header)[0]), 30
                )
                responder = self.responders[spec.address]
                if spec.fault == "timeout":
                    await asyncio.sleep(30)
                    return
                if len(wire) > 12 and _qtype(wire) == T.AXFR:
                    messages = responder.axfr(wire)
                else:
                    response = responder.respond(wire, True)
                    messages = [response] if response is not None else []
                for message in messages:
                    writer.write(struct.pack("!H", len(message)) + message)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, asyncio.CancelledError):
            pass
        except Exception as exc:
            self.errors.append(f"{spec.name} tcp: {exc!r}")
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)


def _qtype(wire: bytes) -> int | None:
    try:
        return dns.message.from_wire(wire).question[0].rdtype
    except Exception:
        return None
