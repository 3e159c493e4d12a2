"""The scanner's fast path: a day's MX and DS questions sent in bulk, the answers judged by the
compiled reader (`rust/dns_fastpath`, built by `make native`), the signatures checked here.

The Python scanner (`chain.py`) spends most of its time on the Python objects a coroutine, a
future and a parsed message per query make. Most domains take one of two shapes: a signed zone
whose DS, DNSKEY and MX signatures hold, or an unsigned delegation whose parent proves it has
no DS. For those, this module:

1. sends every name's MX and DS questions from one socket, as many at once as the client's
   settings allow (`exchange`: no coroutine, future or timer per query);
2. lets the compiled reader say which parent zone judges each DS answer, and asks the
   validator for those zones' keys (a few zones, fetched and cached as the scanner does);
3. asks the signed zones for their DNSKEY RRsets, in bulk too;
4. lets the compiled reader judge each domain as `chain.validate` would, by `wire.py`'s rules,
   and list the signatures and DS digests its verdict rests on;
5. checks those with `cryptography` and `hashlib` (`validation.verify_signature`).

A domain whose answers take any other shape (a failure, a fault, a reason code, a CNAME, a
lost datagram, a signature that does not verify) gets no row here: the Python scanner judges
it from scratch, with its retries, TCP, reasons and evidence. So the fast path may decide
fewer domains, never differently: `test_dns_fastpath.py` holds its rows to the scanner's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import logging
import secrets
import select
import socket
import struct
import time
from pathlib import Path

import dns.flags

from survey_assets import reasons as R
from survey_assets.dns import wire as W
from survey_assets.dns.client import RECV_BUFFER, ClientSettings, DnsClient
from survey_assets.dns.validation import Policy, verify_signature

LIBRARY = Path(__file__).with_name("libdns_fastpath.so")
MX, DS, DNSKEY = 15, 43, 48
_FLAGS = int(dns.flags.RD | dns.flags.CD)  # as the scanner asks
_U32 = struct.Struct("<I")
_SEP = "\x1f"
_DIGESTS = {1: hashlib.sha1, 2: hashlib.sha256, 4: hashlib.sha384}


def _load() -> ctypes.CDLL | None:
    if not LIBRARY.exists():
        logging.getLogger(__name__).warning(
            "%s is not built (make native): every domain is judged by the Python scanner", LIBRARY
        )
        return None
    lib = ctypes.CDLL(str(LIBRARY))
    for function in (lib.dnsfp_plan, lib.dnsfp_judge, lib.dnsfp_read):
        function.restype = ctypes.c_int32
        function.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                             ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]  # fmt: skip
    lib.dnsfp_free.restype = None
    lib.dnsfp_free.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return lib


_LIB = _load()


def available() -> bool:
    return _LIB is not None


class NativeError(RuntimeError):
    """The compiled reader refused a request (malformed) or faulted inside it."""


def _call(function, request: bytes) -> bytes:
    out, length = ctypes.c_void_p(), ctypes.c_size_t()
    status = function(request, len(request), ctypes.byref(out), ctypes.byref(length))
    if status != 0:
        raise NativeError(f"the compiled reader failed ({status})")
    try:
        return ctypes.string_at(out, length.value)
    finally:
        _LIB.dnsfp_free(out, length)


def _blob(*parts: bytes) -> list[bytes]:
    return [piece for part in parts for piece in (_U32.pack(len(part)), part)]


# --- the exchange ----------------------------------------------------------------------------
def exchange(
    server: tuple[str, int], questions: list[tuple[tuple, int]], settings: ClientSettings
) -> list[bytes | None]:
    """Each (name's labels, type) asked once of `server` with DO and CD set, at most
    `max_in_flight` at a time and `per_server_qps` a second; the answer datagrams, in order
    (None: no answer within `timeout`). Blocking: run it in a thread."""
    host, port = server
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    answers: list[bytes | None] = [None] * len(questions)
    if not questions:
        return answers
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        sock.setblocking(False)
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        pending: dict[int, int] = {}  # message ID → question index
        expiry: list[tuple[float, int, int]] = []  # (deadline, ID, index), in sending order
        window = max(1, settings.max_in_flight)
        interval = 1.0 / settings.per_server_qps if settings.per_server_qps > 0 else 0.0
        next_send, sent, first, total = 0.0, 0, 0, len(questions)
        clock = time.monotonic
        while sent < total or pending:
            now = clock()
            while sent < total and len(pending) < window and now >= next_send:
                id_ = secrets.randbits(16)  # random IDs (RFC 5452), none outstanding twice
                while id_ in pending:
                    id_ = secrets.randbits(16)
                name, rdtype = questions[sent]
                query = W.query_wire(id_, name, rdtype, _FLAGS, True, True, settings.payload)
                with contextlib.suppress(OSError):  # no route, a full buffer: it times out
                    sock.sendto(query, (host, port))
                pending[id_] = sent
                expiry.append((now + settings.timeout, id_, sent))
                sent += 1
                if interval:
                    next_send = now + interval
            received = False
            while True:
                try:
                    data, address = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                except OSError:  # an ICMP error on the socket: that question times out
                    continue
                if len(data) < 12 or address[1] != port or address[0].split("%")[0] != host:
                    continue  # not from the server: never taken for an answer
                index = pending.pop((data[0] << 8) | data[1], None)
                if index is not None:
                    answers[index] = data
                    received = True
            now = clock()
            # Expired questions leave the window; answered ones leave the expiry queue.
            while first < len(expiry):
                deadline, id_, index = expiry[first]
                if pending.get(id_) == index:
                    if deadline > now:
                        break
                    del pending[id_]
                first += 1
            if received:
                continue
            if sent < total and len(pending) < window:
                wait = next_send - now
                if wait <= 0:
                    continue
            else:
                wait = expiry[first][0] - now if first < len(expiry) else 0.001
            poller.poll(max(1, int(wait * 1000) + 1))
    return answers


# --- the scan --------------------------------------------------------------------------------
def _labels(wire: bytes) -> tuple:
    labels, pos = [], 0
    while wire[pos]:
        labels.append(wire[pos + 1 : pos + 1 + wire[pos]])
        pos += 1 + wire[pos]
    return tuple(labels)


class _Checks:
    """The jobs a batch's verdicts rest on, each checked once, on first need."""

    def __init__(self, jobs: list[tuple[int, int, bytes, bytes, bytes]], cache: dict) -> None:
        self.jobs, self.cache, self.done = jobs, cache, {}

    def holds(self, index: int) -> bool:
        known = self.done.get(index)
        if known is None:
            kind, code, a, b, c = self.jobs[index]
            if kind == 1:  # a signature: key material, signed data, signature
                known = verify_signature(code, a, c, b, self.cache)
            else:  # a DS digest: owner and key, the digest
                known = _DIGESTS[code](a).digest() == b
            self.done[index] = known
        return known

    def groups_hold(self, groups: str) -> bool:
        """Every group holds: any of its conjunctions ("|") has all its jobs ("+")."""
        return all(
            any(all(self.holds(int(j)) for j in conjunction.split("+"))
                for conjunction in group.split("|"))
            for group in groups.split(";")
        )  # fmt: skip


def _jobs(data: bytes) -> tuple[list[tuple[int, int, bytes, bytes, bytes]], int]:
    (count,) = _U32.unpack_from(data, 0)
    pos, jobs = 4, []
    for _ in range(count):
        kind, code = data[pos], data[pos + 1]
        pos += 2
        parts = []
        for _ in range(3):
            (length,) = _U32.unpack_from(data, pos)
            parts.append(data[pos + 4 : pos + 4 + length])
            pos += 4 + length
        jobs.append((kind, code, *parts))
    return jobs, pos


def _entries(data: bytes, pos: int, count: int) -> list[tuple[int, bytes]]:
    """`count` (code, bytes) entries from `pos`."""
    out = []
    for _ in range(count):
        (length,) = _U32.unpack_from(data, pos + 1)
        out.append((data[pos], data[pos + 5 : pos + 5 + length]))
        pos += 5 + length
    return out


def plan(names: list[bytes], ds: list[bytes | None]) -> list[tuple[int, bytes]]:
    """For each name (wire form) and its DS answer: 0 when the answer is not for the fast
    path, 1 when it holds no DS, 2 when it does; and the parent zone (wire form, lower case)
    whose keys judge it."""
    request = [_U32.pack(len(names))]
    for name, answer in zip(names, ds, strict=True):
        request += _blob(name, answer or b"")
    return _entries(_call(_LIB.dnsfp_plan, b"".join(request)), 0, len(names))


Decision = tuple[str, list[str], str, str, str]  # status, reasons, zone, records, signatures


def decide(
    answers: list[tuple[bytes, bytes, bytes, bytes | None]],
    zones: dict[bytes, list],
    now: int,
    policy: Policy,
    cache: dict,
) -> list[Decision | None]:
    """For each (name, MX answer, DS answer, DNSKEY answer or None), judged with the trusted
    keys of the parent `zones` (wire form → `wire.Dnskey`s) at `now` (POSIX seconds): the
    decision, or None for the Python scanner. `cache`: public keys built, as the validator's."""
    request = [struct.pack("<qI", now, policy.nsec3_max_iterations), _U32.pack(len(zones))]
    for zone, zone_keys in zones.items():
        request += [*_blob(zone), _U32.pack(len(zone_keys))]
        for key in zone_keys:
            request += _blob(key.wire)
    request.append(_U32.pack(len(answers)))
    for name, mx, ds, dnskey in answers:
        request += _blob(name, mx, ds, dnskey or b"")
    out = _call(_LIB.dnsfp_judge, b"".join(request))
    jobs, pos = _jobs(out)
    checks = _Checks(jobs, cache)
    decisions: list[Decision | None] = []
    for status, text in _entries(out, pos, len(answers)):
        decision = None
        if status:
            zone, records, signatures, groups = text.decode().split(_SEP)
            if checks.groups_hold(groups):
                verdict = (R.SECURE, []) if status == 1 else (R.INSECURE, ["no_ds"])
                decision = (*verdict, zone, records, signatures)
        decisions.append(decision)
    return decisions


def read(message: bytes) -> bytes:
    """The compiled reader's account of a message (see `dnsfp_read`), for tests."""
    return _call(_LIB.dnsfp_read, message)


async def scan_domains(
    validator, client: DnsClient, names: list[str], settings: ClientSettings, policy: Policy
) -> dict[int, Decision]:
    """The domains the fast path decides, by index. The others are left to the Python scanner,
    all of them if the fast path fails (a socket refused, a fault in the compiled reader)."""
    try:
        return await _scan_domains(validator, client, names, settings, policy)
    except (NativeError, OSError) as exc:
        logging.getLogger(__name__).warning("the fast path failed (%s): the Python scanner "
                                            "judges every domain", exc)  # fmt: skip
        return {}


async def _scan_domains(
    validator, client: DnsClient, names: list[str], settings: ClientSettings, policy: Policy
) -> dict[int, Decision]:
    if _LIB is None or len(client.servers) != 1 or not names:
        return {}
    if settings.deadline and settings.deadline < 3 * settings.timeout:
        return {}  # three rounds of questions must fit in a target's deadline
    server = client.servers[0]
    chosen: list[tuple[int, tuple]] = []  # (index, labels as given)
    for index, text in enumerate(names):
        if W.is_plain(text):
            labels = tuple(text.encode().split(b".")[:-1])
            if not client.opted_out(tuple(label.lower() for label in labels)):
                chosen.append((index, labels))
    if not chosen:
        return {}
    loop = asyncio.get_running_loop()
    questions = [(labels, rdtype) for _, labels in chosen for rdtype in (MX, DS)]
    answers = await loop.run_in_executor(None, exchange, server, questions, settings)
    mx, ds = answers[0::2], answers[1::2]
    wires = [W.wire_of(labels) for _, labels in chosen]
    planned = plan(wires, ds)

    zones: dict[bytes, tuple[list, int]] = {}  # secure parents: their keys, what they cost
    for parent in {parent for kind, parent in planned if kind}:
        verdict, cost = await validator.zone_keys(_labels(parent))
        if verdict.secure:
            zones[parent] = (verdict.keys, cost)
    budget, judged = settings.query_budget, []
    for i, (kind, parent) in enumerate(planned):
        # The queries the scanner would charge: MX, DS, DNSKEY when signed, the parent's keys.
        if (
            kind
            and parent in zones
            and mx[i] is not None
            and ds[i] is not None
            and (not budget or zones[parent][1] + 2 + (kind == 2) <= budget)
        ):
            judged.append(i)
    signed = [i for i in judged if planned[i][0] == 2]
    keys = await loop.run_in_executor(
        None, exchange, server, [(chosen[i][1], DNSKEY) for i in signed], settings
    )
    dnskey = dict(zip(signed, keys, strict=True))
    decisions = decide(
        [(wires[i], mx[i], ds[i], dnskey.get(i)) for i in judged],
        {zone: keys for zone, (keys, _) in zones.items()},
        int(validator.now.timestamp()),
        policy,
        validator._verified,
    )
    return {
        chosen[i][0]: decision
        for i, decision in zip(judged, decisions, strict=True)
        if decision is not None
    }
