"""An asynchronous DNS client for the survey's scanner.

One unconnected UDP socket per address family serves every query of a client: responses are
matched to outstanding queries by (server address, port, message ID, question), and anything
that matches nothing is dropped, so a stray, late or spoofed datagram can never fail a query.
Truncated answers are retried over TCP, FORMERR to an EDNS query is retried once without EDNS,
and every call returns exactly one `Answer`: network trouble and hostile responses are reported
in `Answer.error`, never raised. Plain asyncio (runs under uvloop too).

Queries are written and answers read by `wire.py` (byte for byte what dnspython writes; read by
dnspython's rules, with dnspython itself reading what the lean reader leaves to it):
`Answer.view` is what the validator reads, `Answer.message` dnspython's parse, made on first use.

Per-target limits: `within_limits` runs one target's work (a domain, an MX host) with its own
query budget and total deadline. The budget lives in a context variable of the target's task,
so queries charge it wherever they are sent from; the one query that would overspend raises
`BudgetExceeded`, which `within_limits` turns into a reason code.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import secrets
import socket
import struct
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from survey_assets.dns import wire as W
from survey_assets.dns.rdata import install as _install_lenient_tlsa

_install_lenient_tlsa()  # malformed TLSA records are data for the survey, not parse errors

__all__ = ["Answer", "BudgetExceeded", "ClientSettings", "DnsClient", "charge", "counted", "spent"]

# Reason codes of `Answer.error` (a subset shares its meaning with survey_assets.reasons).
TIMEOUT = "timeout"
REFUSED_BY_POLICY = "refused_by_policy"
FORMERR = "formerr"
MALFORMED = "malformed"
TCP_FAILED = "tcp_failed"
NETWORK_ERROR = "network_error"
QUERY_BUDGET_EXCEEDED = "query_budget_exceeded"
DEADLINE_EXCEEDED = "deadline_exceeded"

# Transfers stream many messages over TCP: not what a one-answer client can do.
_UNSUPPORTED_TYPES = {dns.rdatatype.AXFR, dns.rdatatype.IXFR, dns.rdatatype.OPT}
RECV_BUFFER = (
    4 << 20
)  # bursts of thousands of answers must not overflow the socket (capped by rmem_max)


@dataclass(frozen=True)
class ClientSettings:
    timeout: float = 2.0  # per attempt
    retries: int = 2  # extra attempts after the first, with exponential back-off
    backoff: float = 0.2  # seconds before the first retry, doubling
    tcp_timeout: float = 5.0  # total deadline of one TCP exchange (connect, send, receive)
    max_in_flight: int = 2000  # queries outstanding at once for the whole client
    per_server_qps: float = 0.0  # 0 = unlimited; otherwise a token bucket per server address
    opt_out_names: frozenset[str] = frozenset()  # names (and everything below them) never queried
    opt_out_addresses: frozenset[str] = frozenset()  # server addresses never contacted
    payload: int = 1232  # EDNS UDP payload size (the DNS flag day 2020 value)
    # Per target (see `within_limits`); 0 = unlimited. A validated domain needs about six
    # queries (MX, and DS + DNSKEY per zone from the root down); the defaults only stop the
    # pathological: a long chain of zone cuts, a server that answers every query slowly.
    query_budget: int = 40
    deadline: float = 30.0  # seconds from a target's start to its answer, queries and waits


class Answer:
    """One query's outcome. `view` is the response as the validator reads it (`wire.py`);
    `message` the same response parsed by dnspython, built on first use; both None when
    nothing usable came back."""

    __slots__ = ("_qname", "qtype", "server", "view", "wire", "transport", "error", "elapsed",
                 "attempts", "_sent", "edns_fallback", "_message")  # fmt: skip

    def __init__(
        self,
        qname: dns.name.Name | tuple,
        qtype: int,
        server: str,  # "address@port" of the server that gave (or failed to give) this answer
        view: W.View | None,  # None when nothing usable came back
        wire: bytes | None,  # the raw response, kept as evidence (also when it does not parse)
        transport: str,  # "udp" | "tcp" | "none" (nothing was sent)
        error: str | None,  # None or a reason code: see the module constants
        elapsed: float,  # seconds from taking an in-flight slot to the answer (waits count)
        attempts: int,  # messages sent, UDP and TCP
        sent: bytes | None = None,  # the last query sent (wire), as evidence of its flags
        edns_fallback: bool = False,  # FORMERR to EDNS made us ask again without EDNS
        message: dns.message.Message | None = None,  # dnspython's parse, when already made
    ) -> None:
        self._qname, self.qtype, self.server, self.view, self.wire = (
            qname,
            qtype,
            server,
            view,
            wire,
        )
        self.transport, self.error, self.elapsed, self.attempts = (
            transport,
            error,
            elapsed,
            attempts,
        )
        self._sent, self.edns_fallback, self._message = sent, edns_fallback, message

    @property
    def qname(self) -> dns.name.Name:
        if isinstance(self._qname, tuple):
            self._qname = dns.name.Name((*self._qname, b""))
        return self._qname

    @property
    def message(self) -> dns.message.Message | None:
        if self._message is None and self.view is not None and self.wire is not None:
            try:
                self._message = dns.message.from_wire(self.wire)
            except Exception:  # cannot happen: the view was read by dnspython's rules
                self.view = None
        return self._message if self.view is not None else None

    @property
    def sent(self) -> dns.message.Message | None:
        if isinstance(self._sent, bytes):
            self._sent = dns.message.from_wire(self._sent)
        return self._sent

    @property
    def rcode(self) -> int | None:
        return self.view.rcode if self.view is not None else None

    @property
    def ok(self) -> bool:
        return self.error is None and self.view is not None

    def __repr__(self) -> str:
        return (f"Answer(qname={self.qname}, qtype={self.qtype}, server={self.server!r}, "
                f"rcode={self.rcode}, transport={self.transport!r}, error={self.error!r}, "
                f"attempts={self.attempts}, elapsed={self.elapsed:.3f})")  # fmt: skip


class BudgetExceeded(Exception):
    """The current target would spend more than its query budget."""


class _Budget:
    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("budget", default=None)


def charge(queries: int = 1) -> None:
    """Spend `queries` of the current target's budget, or raise `BudgetExceeded` (a no-op
    outside `within_limits`). The validator also charges for zone keys it takes from its
    cache, so a target's verdict never depends on which target happened to fetch them."""
    budget = _BUDGET.get()
    if budget is None:
        return
    if budget.limit and budget.used + queries > budget.limit:
        raise BudgetExceeded(f"{budget.used} + {queries} queries > a budget of {budget.limit}")
    budget.used += queries


@contextlib.contextmanager
def counted() -> Iterator[_Budget]:
    """An unlimited budget for the work inside: `.used` says how many queries it charged."""
    budget = _Budget(0)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def spent() -> int:
    """Queries the current target has spent so far (0 outside `within_limits`)."""
    budget = _BUDGET.get()
    return budget.used if budget is not None else 0


_T = TypeVar("_T")
# Header flags as plain ints: dnspython's Flag enums cost a call per operation on the hot path.
_TC, _RD, _CD = int(dns.flags.TC), int(dns.flags.RD), int(dns.flags.CD)


class _Reply:
    __slots__ = ("wire", "view", "message", "truncated")

    def __init__(self, wire: bytes, view: W.View | None, message=None, truncated=False) -> None:
        self.wire, self.view, self.message, self.truncated = wire, view, message, truncated


class _Pending:
    __slots__ = ("id", "question", "future")

    def __init__(self, id_: int, question: tuple, future: asyncio.Future[_Reply]) -> None:
        self.id, self.question, self.future = id_, question, future


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, pending: dict[tuple[str, int, int], _Pending]) -> None:
        self.pending = pending

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) < 12:  # not even a header: cannot belong to anyone
            return
        host = addr[0].split("%", 1)[0]  # IPv6 link-local scope is not part of our key
        entry = self.pending.get((host, addr[1], (data[0] << 8) | data[1]))
        if entry is None or entry.future.done():
            return
        reply = _classify(entry, data)
        if reply is not None:  # decided here: a loop may deliver several datagrams in one go
            entry.future.set_result(reply)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors on an unconnected socket name no query: the attempt simply times out.
        pass


def _read(data: bytes) -> tuple[W.View | None, dns.message.Message | None]:
    """The lean reader's view; what it leaves to dnspython, dnspython's (None: malformed)."""
    view = W.parse(data)
    if view is not None:
        return view, None
    try:
        message = dns.message.from_wire(data)
    except Exception:  # hostile input reaches every corner of the parser
        return None, None
    return W.from_message(message), message


def _classify(entry: _Pending, data: bytes) -> _Reply | None:
    """What a datagram carrying our ID and address means: None when it answers another question."""
    view, message = _read(data)
    if view is None:
        # A server may cut a truncated answer mid-record: QR and TC still say "ask over TCP".
        truncated = bool(data[2] & 0x80) and bool(data[2] & 0x02)
        return _Reply(data, None, truncated=truncated)
    if not W.is_response(view, entry.id, entry.question):
        return None
    return _Reply(data, view, message, truncated=bool(view.flags & _TC))


class _Bucket:
    """A token bucket of capacity one: sends to one server spaced at least 1/qps apart."""

    def __init__(self, qps: float) -> None:
        self.interval = 1.0 / qps
        self.next_free = 0.0

    async def take(self) -> None:
        now = asyncio.get_running_loop().time()
        at = max(now, self.next_free)
        self.next_free = at + self.interval  # reserve before sleeping: waiters queue in order
        if at > now:
            await asyncio.sleep(at - now)


def _address(host: str) -> str:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).compressed
    except ValueError:
        raise ValueError(f"not an IP address: {host!r}") from None


def _to_name(qname: str | dns.name.Name) -> dns.name.Name:
    if isinstance(qname, dns.name.Name):
        name = qname
    elif isinstance(qname, str):
        try:
            name = dns.name.from_text(qname)
        except dns.exception.DNSException as exc:
            raise ValueError(f"not a valid DNS name: {qname!r} ({exc})") from None
    else:
        raise ValueError(f"not a valid DNS name: {qname!r}")
    if not name.is_absolute():
        try:
            name = name.concatenate(dns.name.root)
        except dns.exception.DNSException as exc:
            raise ValueError(f"not a valid DNS name: {qname!r} ({exc})") from None
    return name


def _to_rdtype(qtype: int | str) -> int:
    try:
        rdtype = dns.rdatatype.RdataType.make(qtype)
    except (dns.exception.DNSException, ValueError, TypeError):
        raise ValueError(f"not a valid query type: {qtype!r}") from None
    if rdtype in _UNSUPPORTED_TYPES:
        raise ValueError(f"query type {dns.rdatatype.to_text(rdtype)} is not supported")
    return int(rdtype)


_RDTYPES = {t: t for t in range(1, 256) if t not in _UNSUPPORTED_TYPES and t not in (0,)}


class DnsClient:
    """Queries to a fixed set of servers (or one chosen per query), many at once.

    async with DnsClient([("127.53.0.53", 10053)]) as client:
        answer = await client.query("example.lab-com.", "MX")
    """

    def __init__(
        self, servers: list[tuple[str, int]], settings: ClientSettings = ClientSettings()
    ) -> None:
        self.settings = settings
        self._opt_out_addresses = {_address(a) for a in settings.opt_out_addresses}
        self._opt_out_names = {
            tuple(label.lower() for label in _to_name(n).labels[:-1])
            for n in settings.opt_out_names
        }
        normalized = [(_address(h), int(p)) for h, p in servers]
        # Opted-out servers drop out of the rotation; a query naming one is refused instead.
        self._servers = [s for s in normalized if s[0] not in self._opt_out_addresses]
        self._all_opted_out = bool(normalized) and not self._servers
        self._next_server = 0
        self._pending: dict[tuple[str, int, int], _Pending] = {}
        self._transports: dict[int, asyncio.DatagramTransport | None] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._slots: asyncio.Semaphore | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    async def __aenter__(self) -> DnsClient:
        self._slots = asyncio.Semaphore(max(1, self.settings.max_in_flight))
        for family, anywhere in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            self._transports[family] = await self._open_udp(family, anywhere)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for transport in self._transports.values():
            if transport is not None:
                transport.close()
        self._transports.clear()

    async def _open_udp(self, family: int, anywhere: str) -> asyncio.DatagramTransport | None:
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError:  # no IPv6 on this host: queries to IPv6 servers report network_error
            return None
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
            sock.setblocking(False)
            sock.bind((anywhere, 0))  # an ephemeral port chosen by the kernel (randomised)
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: _UdpProtocol(self._pending), sock=sock
            )
        except OSError:
            sock.close()
            return None
        return transport

    # --- per-target limits ------------------------------------------------------------------------
    async def within_limits(self, work: Coroutine[Any, Any, _T]) -> tuple[_T | None, str | None]:
        """Run one target's `work` under the settings' query budget and total deadline:
        (its result, None), or (None, the reason code it was stopped with)."""
        token = _BUDGET.set(_Budget(max(0, self.settings.query_budget)))
        scope = asyncio.timeout(self.settings.deadline if self.settings.deadline > 0 else None)
        try:
            async with scope:
                return await work, None
        except BudgetExceeded:
            return None, QUERY_BUDGET_EXCEEDED
        except TimeoutError:
            if not scope.expired():
                raise
            return None, DEADLINE_EXCEEDED
        finally:
            _BUDGET.reset(token)

    # --- the query -------------------------------------------------------------------------------
    async def query(
        self,
        qname: str | dns.name.Name | tuple,
        qtype: int | str,
        *,
        server: tuple[str, int] | None = None,
        dnssec: bool = True,
        cd: bool = True,
        rd: bool = True,
        edns: bool = True,
    ) -> Answer:
        """Ask one question. `qname` is text, a dnspython name, or (the validator's own form)
        a tuple of lower-case labels without the root label."""
        if isinstance(qname, tuple):
            name, labels = qname, qname
            lower = qname
        else:
            name = _to_name(qname)
            labels = name.labels[:-1]
            lower = tuple(label.lower() for label in labels)
        rdtype = _RDTYPES.get(qtype) if isinstance(qtype, int) else None
        if rdtype is None:
            rdtype = _to_rdtype(qtype)
        if self._slots is None:
            raise RuntimeError("use the client inside `async with DnsClient(...)`")
        if server is not None:
            targets = [(_address(server[0]), int(server[1]))]
        elif self._servers:
            # Round-robin: each query starts one server further, each retry moves on by one.
            start = self._next_server
            self._next_server = (start + 1) % len(self._servers)
            targets = self._servers[start:] + self._servers[:start] if start else self._servers
        elif self._all_opted_out:
            targets = []
        else:
            raise ValueError("no server: give `server=` or servers to the client")

        if not targets or targets[0][0] in self._opt_out_addresses or self.opted_out(lower):
            where = f"{targets[0][0]}@{targets[0][1]}" if targets else ""
            return Answer(name, rdtype, where, None, None, "none", REFUSED_BY_POLICY, 0.0, 0)
        charge(1)  # a query (with its retries) counts once: the budget bounds the questions
        async with self._slots:
            return await self._query(name, labels, (lower, rdtype, 1), targets, dnssec, cd, rd,
                                     edns)  # fmt: skip

    @property
    def servers(self) -> list[tuple[str, int]]:
        """The servers questions go to, in rotation (opted-out addresses left out)."""
        return list(self._servers)

    def opted_out(self, lower: tuple) -> bool:
        """Is the name (lower-case labels) or one of its ancestors never to be queried?"""
        if not self._opt_out_names:
            return False
        # Walking up the name is cheaper than comparing with every opted-out name.
        return any(lower[i:] in self._opt_out_names for i in range(len(lower) + 1))

    async def _query(
        self,
        name: dns.name.Name | tuple,
        labels: tuple,
        question: tuple,
        targets: list[tuple[str, int]],
        dnssec: bool,
        cd: bool,
        rd: bool,
        edns: bool,
    ) -> Answer:
        s = self.settings
        rdtype = question[1]
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempts, fallback, use_edns = 0, False, edns
        error, wire, sent = TIMEOUT, None, None
        host, port = targets[0]
        flags = (_RD if rd else 0) | (_CD if cd else 0)

        def done(view=None, wire=None, transport="udp", error=None, message=None) -> Answer:
            return Answer(name, rdtype, f"{host}@{port}", view, wire, transport, error,
                          loop.time() - started, attempts, sent, fallback, message)  # fmt: skip

        tries = 0
        while tries <= max(0, s.retries):
            host, port = targets[tries % len(targets)]
            if s.per_server_qps > 0:
                await self._throttle(host)
            attempts += 1
            query = (labels, rdtype, flags, use_edns, dnssec and use_edns)  # DO lives in OPT
            reply, error, sent = await self._udp(host, port, query, question)
            if reply is None or (reply.view is None and not reply.truncated):
                wire = reply.wire if reply is not None else wire  # keep the evidence
                tries += 1
                if tries <= s.retries:
                    await asyncio.sleep(s.backoff * 2 ** (tries - 1))
                continue
            if reply.truncated:
                if s.per_server_qps > 0:
                    await self._throttle(host)
                attempts += 1
                tcp, tcp_wire, tcp_error = await self._tcp(host, port, sent, question)
                return done(tcp.view if tcp else None, tcp_wire or reply.wire, "tcp", tcp_error,
                            tcp.message if tcp else None)  # fmt: skip
            assert reply.view is not None
            if reply.view.rcode == dns.rcode.FORMERR:
                if use_edns and not fallback:
                    # An old server rejecting EDNS: ask again plainly, at once and for free.
                    use_edns, fallback = False, True
                    continue
                return done(reply.view, reply.wire, error=FORMERR, message=reply.message)
            return done(reply.view, reply.wire, message=reply.message)
        # Garbage from the server is better evidence than a later silence: report it.
        return done(wire=wire, error=MALFORMED if wire is not None else error)

    async def _throttle(self, host: str) -> None:
        if self.settings.per_server_qps <= 0:
            return
        bucket = self._buckets.get(host)
        if bucket is None:
            bucket = self._buckets[host] = _Bucket(self.settings.per_server_qps)
        await bucket.take()

    # --- UDP -------------------------------------------------------------------------------------
    async def _udp(
        self, host: str, port: int, query: tuple, question: tuple
    ) -> tuple[_Reply | None, str, bytes | None]:
        """One attempt: a matching reply (parsed or not), or None and why nothing came; and
        the query as sent."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        transport = self._transports.get(family)
        if transport is None or transport.is_closing():
            return None, NETWORK_ERROR, None
        loop = asyncio.get_running_loop()
        key = self._new_key(host, port)
        labels, rdtype, flags, edns, dnssec = query
        wire = W.query_wire(key[2], labels, rdtype, flags, edns, dnssec, self.settings.payload)
        future: asyncio.Future[_Reply | None] = loop.create_future()
        self._pending[key] = _Pending(key[2], question, future)
        timer = loop.call_later(self.settings.timeout, _expire, future)
        try:
            transport.sendto(wire, (host, port))
            reply = await future
            if reply is None:
                return None, TIMEOUT, wire
            return reply, (MALFORMED if reply.view is None else ""), wire
        except (OSError, ValueError):  # sendto refused the address outright
            return None, NETWORK_ERROR, wire
        finally:
            timer.cancel()
            self._pending.pop(key, None)

    def _new_key(self, host: str, port: int) -> tuple[str, int, int]:
        # Random IDs (RFC 5452) that no outstanding query to this server already uses.
        while True:
            key = (host, port, secrets.randbits(16))
            if key not in self._pending:
                return key

    # --- TCP -------------------------------------------------------------------------------------
    async def _tcp(
        self, host: str, port: int, sent: bytes, question: tuple
    ) -> tuple[_Reply | None, bytes | None, str | None]:
        """The same query over TCP, with `tcp_timeout` as the deadline for the whole exchange."""
        last: list[bytes] = []
        try:
            async with asyncio.timeout(self.settings.tcp_timeout):
                return await self._tcp_exchange(host, port, sent, question, last)
        except TimeoutError:
            pass
        except (OSError, asyncio.IncompleteReadError, EOFError):
            pass
        return None, (last[-1] if last else None), TCP_FAILED

    async def _tcp_exchange(
        self, host: str, port: int, sent: bytes, question: tuple, last: list[bytes]
    ) -> tuple[_Reply | None, bytes | None, str | None]:
        reader, writer = await asyncio.open_connection(host, port)
        id_ = (sent[0] << 8) | sent[1]
        try:
            writer.write(struct.pack("!H", len(sent)) + sent)
            await writer.drain()
            while True:  # skip what is not ours; the deadline bounds the loop
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                data = await reader.readexactly(length)
                last.append(data)
                view, message = _read(data)
                if view is None:
                    if len(data) >= 2 and int.from_bytes(data[:2], "big") == id_:
                        return None, data, MALFORMED
                    continue
                if W.is_response(view, id_, question):
                    return _Reply(data, view, message), data, None
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 0.5)


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)  # no answer in time
