"""An asynchronous SMTP STARTTLS client that captures the certificate chain an MX host presents.

One capture is one SMTP session, as a DANE-enforcing sender would open it: greeting, EHLO with
the survey's identifying name, STARTTLS, a TLS handshake with SNI = the MX host name and no
certificate verification (the survey verifies through DANE itself, `survey_assets.dane`), the
whole presented chain as DER in the order the server sent it, then QUIT. Every call returns one
`Capture`; failures are classified into reason codes of `survey_assets.reasons`, never raised.

The chain: Python 3.11's public `ssl` API gives only the leaf (`getpeercert`). OpenSSL's
`SSL_get_peer_cert_chain` (the chain as received, unverified, leaf first) is exposed by CPython
since 3.10 as the private `_ssl._SSLSocket.get_unverified_chain()` behind every `SSLObject`, and
publicly as `SSLObject.get_unverified_chain()` from 3.13. We use the public method when it
exists and the private one otherwise: no second TLS stack (pyOpenSSL) to keep in step with the
ssl module, and it works with asyncio and uvloop alike, both of which drive an `SSLObject`.
"""

from __future__ import annotations

import _ssl
import asyncio
import contextlib
import datetime as dt
import ipaddress
import re
import ssl
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Capture", "CaptureSettings", "Target", "capture", "capture_all"]

# Reason codes (survey_assets.reasons) a capture may carry.
CONNECT_FAILED = "connect_failed"
TIMEOUT = "timeout"
SMTP_REJECTED = "smtp_rejected"
SMTP_BAD_REPLY = "smtp_bad_reply"
STARTTLS_NOT_OFFERED = "starttls_not_offered"
STARTTLS_REFUSED = "starttls_refused"
TLS_HANDSHAKE_FAILED = "tls_handshake_failed"
REFUSED_BY_POLICY = "refused_by_policy"
ADDRESS_NOT_ALLOWED = "address_not_allowed"
BAD_HOST_NAME = "bad_host_name"
CAPTURE_ERROR = "capture_error"

# Stages of a session, in order: where a failure happened (a timeout at "banner" is a tarpit).
STAGES = ("policy", "connect", "banner", "ehlo", "starttls", "tls", "quit")

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")  # "_": real MX names carry it sometimes
_REPLY_LINE = re.compile(r"[2-5][0-9]{2}([ -].*)?")  # RFC 5321 §4.2: code, then " " or "-"
_READ_CHUNK = 4096


@dataclass(frozen=True)
class CaptureSettings:
    ehlo_name: str = "dane-survey.lab-net"  # names the scanner; production sets its own domain
    port: int = 25
    deadline: float = 30.0  # seconds for a whole session, connect to QUIT
    max_bytes: int = 64 * 1024  # plaintext bytes read from a server before we give up on it
    max_line: int = 4096  # one reply line (RFC 5321 allows 512; some servers exceed it)
    max_reply_lines: int = 200  # lines of one multi-line reply
    max_in_flight: int = 256  # sessions at once, all targets
    per_address: int = 1  # sessions at once to one address
    per_provider: int = 8  # sessions at once to one provider (the MX host's zone by default)
    retries_4xx: int = 1  # another session after a 4xx reply (greylisting, "try later") ...
    retry_delay: float = 60.0  # ... this many seconds later
    opt_out_names: frozenset[str] = frozenset()  # MX host names (and below) never contacted
    opt_out_addresses: frozenset[str] = frozenset()  # addresses or networks never contacted
    # Which addresses may be contacted: "loopback" (the lab: 127.0.0.0/8 and ::1) or "global"
    # (the Internet: globally routable unicast only, never private or special-purpose space).
    networks: str = "loopback"
    quit_timeout: float = 2.0  # QUIT is politeness: its reply is waited for this long at most


@dataclass(frozen=True)
class Target:
    host: str  # the MX host name: SNI, and the reference identifier DANE-TA checks
    address: str
    provider: str | None = None  # concurrency group; the host's parent domain when None

    @property
    def key(self) -> tuple[str, str]:
        return _norm_host(self.host), self.address


@dataclass
class Capture:
    """One SMTP STARTTLS session to one address of one MX host."""

    host: str
    address: str
    port: int
    reason: str | None = None  # None: the chain was captured
    stage: str = "policy"  # the last stage reached (where the failure happened)
    detail: str = ""  # the error as the network or TLS library said it
    chain: list[bytes] = field(default_factory=list)  # DER, in the order the server sent them
    tls_version: str | None = None
    cipher: str | None = None
    transcript: list[tuple[str, int]] = field(default_factory=list)  # (command, reply code)
    starttls_offered: bool | None = None
    attempts: int = 0  # sessions opened (a 4xx reply may bring a later one)
    bytes_read: int = 0  # plaintext SMTP bytes, last attempt
    started: str = ""  # UTC ISO time of the first attempt
    connect_seconds: float | None = None
    tls_seconds: float | None = None
    total_seconds: float = 0.0  # all attempts, retry waits included
    temporary: bool = False  # the failure was a 4xx: worth trying again later

    @property
    def ok(self) -> bool:
        return self.reason is None

    def as_row(self) -> dict:
        row = {k: getattr(self, k) for k in self.__dataclass_fields__}
        row["transcript"] = [{"command": c, "code": n} for c, n in self.transcript]
        return row


class _Failed(Exception):
    def __init__(self, reason: str, detail: str = "", temporary: bool = False) -> None:
        super().__init__(reason, detail)
        self.reason, self.detail, self.temporary = reason, detail, temporary


# --- policy --------------------------------------------------------------------------------------
def _norm_host(host: str) -> str:
    return host.strip().rstrip(".").lower()


def valid_host_name(host: str) -> bool:
    """A name we may put in SNI and EHLO dialogues: LDH labels (plus "_"), 253 octets at most."""
    name = _norm_host(host)
    if not name or len(name) > 253 or not name.isascii():
        return False
    labels = name.split(".")
    return len(labels) >= 2 and all(_LABEL.match(label) for label in labels)


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1 for every policy decision
    return ip


def address_allowed(address: str, networks: str) -> bool:
    """May this address be contacted under the `networks` policy?"""
    try:
        ip = _ip(address)
    except ValueError:
        return False
    if networks == "loopback":
        return ip.is_loopback
    if networks == "global":
        return ip.is_global and not ip.is_multicast
    raise ValueError(f"networks={networks!r}: expected 'loopback' or 'global'")


class _Policy:
    def __init__(self, settings: CaptureSettings) -> None:
        self.settings = settings
        self.names = {_norm_host(n) for n in settings.opt_out_names}
        nets = []
        for text in settings.opt_out_addresses:
            try:
                nets.append(ipaddress.ip_network(text.split("%", 1)[0], strict=False))
            except ValueError:
                raise ValueError(f"opt-out address {text!r} is not an address or network") from None
        self.networks = nets
        address_allowed("127.0.0.1", settings.networks)  # a bad setting fails here, at once

    def refusal(self, target: Target) -> tuple[str, str] | None:
        if not valid_host_name(target.host):
            return BAD_HOST_NAME, f"{target.host!r} is not a valid host name"
        try:
            ip = _ip(target.address)
        except ValueError:
            return ADDRESS_NOT_ALLOWED, f"{target.address!r} is not an IP address"
        if not address_allowed(target.address, self.settings.networks):
            return ADDRESS_NOT_ALLOWED, f"{ip} is outside the {self.settings.networks} policy"
        name = _norm_host(target.host)
        labels = name.split(".")
        if any(".".join(labels[i:]) in self.names for i in range(len(labels))):
            return REFUSED_BY_POLICY, f"{name} is on the opt-out list"
        if any(ip.version == net.version and ip in net for net in self.networks):
            return REFUSED_BY_POLICY, f"{ip} is on the opt-out list"
        return None


# --- one session ---------------------------------------------------------------------------------
class _Session:
    """The plaintext SMTP dialogue with a byte cap; replies parsed strictly."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cap: Capture,
        settings: CaptureSettings,
    ) -> None:  # fmt: skip
        self.reader, self.writer, self.cap, self.settings = reader, writer, cap, settings
        self.buffer = b""

    async def _line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line, self.buffer = self.buffer[: end + 1], self.buffer[end + 1 :]
                return line
            if len(self.buffer) > self.settings.max_line:
                raise _Failed(
                    SMTP_BAD_REPLY, f"a reply line longer than {self.settings.max_line} bytes"
                )
            chunk = await self.reader.read(_READ_CHUNK)
            if not chunk:
                raise _Failed(SMTP_BAD_REPLY, "the server closed the connection")
            self.cap.bytes_read += len(chunk)
            if self.cap.bytes_read > self.settings.max_bytes:
                raise _Failed(
                    SMTP_BAD_REPLY, f"more than {self.settings.max_bytes} bytes of SMTP replies"
                )
            self.buffer += chunk

    async def reply(self, command: str) -> tuple[int, list[str]]:
        """One whole reply (all its lines): the code and the text of each line."""
        code, texts = None, []
        for _ in range(self.settings.max_reply_lines):
            raw = await self._line()
            try:
                line = raw.rstrip(b"\r\n").decode("utf-8")  # SMTPUTF8 replies may carry UTF-8
            except UnicodeDecodeError:
                raise _Failed(SMTP_BAD_REPLY, f"a reply to {command} that is not UTF-8") from None
            if not _REPLY_LINE.fullmatch(line):
                raise _Failed(SMTP_BAD_REPLY, f"not an SMTP reply to {command}: {line[:80]!r}")
            this = int(line[:3])
            if code is not None and this != code:
                raise _Failed(SMTP_BAD_REPLY, f"reply codes {code} and {this} in one reply")
            code = this
            texts.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                self.cap.transcript.append((command, code))
                return code, texts
        raise _Failed(
            SMTP_BAD_REPLY, f"more than {self.settings.max_reply_lines} lines in one reply"
        )

    async def command(self, text: str) -> tuple[int, list[str]]:
        self.writer.write(text.encode("ascii") + b"\r\n")
        await self.writer.drain()
        return await self.reply(text.split(" ", 1)[0])


def _refused(code: int, texts: list[str], reason: str, what: str) -> _Failed:
    detail = f"{code} {texts[-1] if texts else ''}".strip()
    return _Failed(reason, f"{what}: {detail}"[:300], temporary=400 <= code < 500)


def presented_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The peer's chain as sent (leaf first), unverified: see the module docstring for why so."""
    public = getattr(ssl_object, "get_unverified_chain", None)  # Python 3.13+
    if public is not None:
        return [bytes(c) for c in public() or []]
    certs = ssl_object._sslobj.get_unverified_chain() or []  # type: ignore[attr-defined]
    return [c.public_bytes(_ssl.ENCODING_DER) for c in certs]


def client_context() -> ssl.SSLContext:
    """No verification (DANE decides), and every protocol a mail server may still speak: the
    point is to see the chain, and opportunistic TLS (RFC 7435) takes what the server has."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):  # a build without SECLEVEL keeps its default
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def _tls_detail(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc.strerror or exc}"[:300]
    if isinstance(exc, ConnectionResetError):
        return "connection reset during the TLS handshake"
    if isinstance(exc, ConnectionError | asyncio.IncompleteReadError | EOFError):
        return "connection closed during the TLS handshake"
    return f"{type(exc).__name__}: {exc}"[:300]


async def _session(
    target: Target, settings: CaptureSettings, ctx: ssl.SSLContext, cap: Capture
) -> None:
    """One session; fills `cap` and raises _Failed (or TimeoutError) on failure."""
    loop_start = time.monotonic()
    cap.stage = "connect"
    try:
        reader, writer = await asyncio.open_connection(
            target.address, settings.port, limit=settings.max_line
        )
    except OSError as exc:
        raise _Failed(CONNECT_FAILED, exc.strerror or str(exc) or type(exc).__name__) from None
    cap.connect_seconds = time.monotonic() - loop_start
    session = _Session(reader, writer, cap, settings)
    clean = False
    try:
        cap.stage = "banner"
        code, texts = await session.reply("banner")
        if code != 220:
            raise _refused(code, texts, SMTP_REJECTED, "greeting")
        cap.stage = "ehlo"
        code, texts = await session.command(f"EHLO {settings.ehlo_name}")
        if code != 250:
            raise _refused(code, texts, SMTP_REJECTED, "EHLO")
        keywords = {t.split(" ", 1)[0].upper() for t in texts[1:]}
        cap.starttls_offered = "STARTTLS" in keywords
        if not cap.starttls_offered:
            with contextlib.suppress(_Failed, OSError):
                await session.command("QUIT")
            raise _Failed(STARTTLS_NOT_OFFERED, "STARTTLS is not among the EHLO keywords")
        cap.stage = "starttls"
        code, texts = await session.command("STARTTLS")
        if code != 220:
            raise _refused(code, texts, STARTTLS_REFUSED, "STARTTLS")
        if session.buffer:  # bytes after the 220 would be read as if they came over TLS
            raise _Failed(SMTP_BAD_REPLY, "data after the STARTTLS reply, before TLS")
        cap.stage = "tls"
        tls_start = time.monotonic()
        try:
            await writer.start_tls(ctx, server_hostname=_norm_host(target.host))
        except (ssl.SSLError, OSError, EOFError, asyncio.IncompleteReadError) as exc:
            raise _Failed(TLS_HANDSHAKE_FAILED, _tls_detail(exc)) from None
        cap.tls_seconds = time.monotonic() - tls_start
        ssl_object = writer.get_extra_info("ssl_object")
        cap.chain = presented_chain(ssl_object)
        cap.tls_version = ssl_object.version()
        cipher = ssl_object.cipher()
        cap.cipher = cipher[0] if cipher else None
        if not cap.chain:
            raise _Failed(TLS_HANDSHAKE_FAILED, "the server presented no certificate")
        cap.stage = "quit"
        with contextlib.suppress(_Failed, OSError, TimeoutError, ssl.SSLError):
            async with asyncio.timeout(settings.quit_timeout):
                session.buffer = b""
                await session.command("QUIT")
                writer.close()
                await writer.wait_closed()
                clean = True
    finally:
        if not clean:  # a hostile or half-dead peer gets no graceful close to stall on
            writer.transport.abort()


async def _attempt(
    target: Target, settings: CaptureSettings, ctx: ssl.SSLContext, cap: Capture
) -> None:
    cap.attempts += 1
    cap.bytes_read = 0
    cap.reason, cap.detail, cap.temporary = None, "", False
    try:
        async with asyncio.timeout(settings.deadline):
            await _session(target, settings, ctx, cap)
    except _Failed as failure:
        cap.reason, cap.detail, cap.temporary = failure.reason, failure.detail, failure.temporary
    except TimeoutError:
        cap.reason = TIMEOUT
        cap.detail = f"no end to the {cap.stage} stage within the {settings.deadline:g} s deadline"
    except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
        cap.reason = TLS_HANDSHAKE_FAILED if cap.stage == "tls" else SMTP_BAD_REPLY
        cap.detail = f"{cap.stage}: {type(exc).__name__}: {exc}"[:300]


# --- many sessions -------------------------------------------------------------------------------
class _Limits:
    def __init__(self, settings: CaptureSettings) -> None:
        self.total = asyncio.Semaphore(settings.max_in_flight)
        self.address: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(settings.per_address)
        )
        self.provider: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(settings.per_provider)
        )

    @contextlib.asynccontextmanager
    async def slot(self, target: Target):
        provider = target.provider or _norm_host(target.host).partition(".")[2]
        # Always taken in this order, so no two sessions can wait on each other.
        async with (
            self.provider[provider],
            self.address[_ip(target.address).compressed],
            self.total,
        ):
            yield


async def capture(
    target: Target, settings: CaptureSettings, *, context: ssl.SSLContext | None = None,
    limits: _Limits | None = None, policy: _Policy | None = None,
) -> Capture:  # fmt: skip
    """One capture of one (host, address): the chain, or the reason it could not be had."""
    cap = Capture(host=_norm_host(target.host) + ".", address=target.address, port=settings.port)
    cap.started = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    begin = time.monotonic()
    try:
        refusal = (policy or _Policy(settings)).refusal(target)
        if refusal is not None:
            cap.reason, cap.detail = refusal
            return cap
        ctx = context or client_context()
        limits = limits or _Limits(settings)
        for attempt in range(settings.retries_4xx + 1):
            if attempt:
                await asyncio.sleep(settings.retry_delay)
            async with limits.slot(target):
                await _attempt(target, settings, ctx, cap)
            if not cap.temporary:
                break
    except Exception as exc:  # a bug must cost one row, not the day's captures
        cap.reason, cap.detail = CAPTURE_ERROR, f"{type(exc).__name__}: {exc}"[:300]
    finally:
        cap.total_seconds = time.monotonic() - begin
    return cap


async def capture_all(targets: Iterable[Target], settings: CaptureSettings) -> list[Capture]:
    """One capture per distinct (host, address), in the order first given; never raises."""
    unique: dict[tuple[str, str], Target] = {}
    for target in targets:
        unique.setdefault(target.key, target)
    policy, limits, ctx = _Policy(settings), _Limits(settings), client_context()
    return list(
        await asyncio.gather(
            *(
                capture(t, settings, context=ctx, limits=limits, policy=policy)
                for t in unique.values()
            )
        )
    )
