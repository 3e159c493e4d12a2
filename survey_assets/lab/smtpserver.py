"""The lab's SMTP servers: STARTTLS on loopback, one listener per MX address.

Every address of a provider's MX host gets a listener that behaves as the world says
(`MxHost.behaviour`). The shared addresses (`::1` and `SELF_MX_POOL`) serve several hosts and
pick the certificate by the TLS SNI name. Certificates come from `pki`, so every run presents
byte-identical chains. Works on any asyncio event loop (the default one or uvloop).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import errno
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from survey_assets.lab import pki
from survey_assets.lab.world import ISSUER_A, SELF_MX_POOL, MxHost, World

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024  # the StreamReader limit: a longer line ends the session
MAX_COMMANDS = 100
MAX_INPUT = 1024 * 1024  # bytes per connection, message data included
IDLE_SECONDS = 60.0
HANDSHAKE_SECONDS = 20.0
CONTEXT_CACHE = 1024  # SSL contexts kept; self-hosted names are many at the bench scale
GENERIC_NAME = "mail.lab-net"  # the pool's certificate for a client that names no known host
GENERIC_KEY = "smtp-lab-generic"
# A TLS 1.2 alert record: level fatal (2), description handshake_failure (40).
HANDSHAKE_FAILURE_ALERT = bytes.fromhex("15030300020228")


@dataclass(frozen=True)
class _Listener:
    """What one address serves on one date."""

    address: str
    hosts: tuple[MxHost, ...]  # its owners in world order; none for the self-hosted pool
    behaviour: str

    @property
    def shared(self) -> bool:
        return len(self.hosts) != 1

    @property
    def greeting_name(self) -> str:
        return self.hosts[0].name.rstrip(".") if self.hosts else GENERIC_NAME


def _listeners(world: World) -> dict[str, _Listener]:
    owners: dict[str, list[MxHost]] = {}
    for host in world.mx_hosts():
        for address in host.addresses:
            owners.setdefault(address, []).append(host)
    for address in SELF_MX_POOL:
        owners.setdefault(address, [])
    table = {}
    for address, hosts in owners.items():
        # A shared address is one machine for many names: it has no per-host fault.
        behaviour = hosts[0].behaviour.get(address, "ok") if len(hosts) == 1 else "ok"
        if behaviour != "refused":  # no listener: the kernel refuses the connection
            table[address] = _Listener(address, tuple(hosts), behaviour)
    return table


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _names(host: MxHost) -> tuple[str, ...]:
    return tuple(n.rstrip(".") for n in host.cert_names)


class SmtpLab:
    """The SMTP servers of every MX host of a world, all on one port."""

    def __init__(self, world: World, port: int, *, tarpit_seconds: float = 30.0) -> None:
        self.port = port
        self.tarpit_seconds = tarpit_seconds
        self._world = world
        self._table = _listeners(world)
        self.addresses: list[str] = list(self._table)
        self._servers: dict[str, asyncio.AbstractServer] = {}
        self._pending: dict[str, asyncio.Task] = {}  # listeners being started after a rebind
        self._sessions: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._contexts: collections.OrderedDict[tuple, ssl.SSLContext] = collections.OrderedDict()
        self._dispatchers: dict[str, ssl.SSLContext] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def world(self) -> World:
        return self._world

    # --- listeners -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        socks = self._bind(self.addresses)
        self.addresses = [a for a in self.addresses if a in socks]
        try:
            while socks:
                address, sock = next(iter(socks.items()))
                self._servers[address] = await self._serve(address, sock)
                del socks[address]
        except BaseException:
            self._close_all(socks)  # those not yet handed to a server
            await self.close()
            raise

    async def close(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending.values(), return_exceptions=True)
        servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()
        sessions = list(self._sessions)
        for task in sessions:
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)
        for server in servers:
            await server.wait_closed()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def set_world(self, world: World) -> None:
        """Serve another date's world; listeners are rebound only where the addresses differ."""
        loop = self._loop
        if loop is None or loop.is_closed() or _running_loop() is loop or not loop.is_running():
            self._apply_world(world)
            return
        # Called from another thread: the loop's state may only change on the loop's thread.
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def apply() -> None:
            try:
                self._apply_world(world)
                done.set_result(None)
            except BaseException as exc:
                done.set_exception(exc)

        loop.call_soon_threadsafe(apply)
        done.result()

    def _apply_world(self, world: World) -> None:
        table = _listeners(world)
        if not self._servers and not self._pending:  # not started: nothing to rebind
            self._world, self._table, self.addresses = world, table, list(table)
            return
        listening = {*self._servers, *self._pending}
        added = [a for a in table if a not in listening]
        socks = self._bind(added)  # first, so a failed bind leaves the old world in place
        self._world, self._table = world, table
        for address in listening - set(table):
            if address in self._servers:  # a pending one checks the table when it is up
                self._servers.pop(address).close()
        for address, sock in socks.items():
            self._pending[address] = asyncio.ensure_future(self._serve_later(address, sock))
        self.addresses = [a for a in table if a in self._servers or a in self._pending]

    def _bind(self, addresses: list[str]) -> dict[str, socket.socket]:
        """Listening sockets, bound here so that a clash is reported at once and by address."""
        socks: dict[str, socket.socket] = {}
        for address in addresses:
            v6 = ipaddress.ip_address(address).version == 6
            try:
                sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
            except OSError as exc:
                if v6 and exc.errno == errno.EAFNOSUPPORT:
                    log.warning("no IPv6 here: the SMTP lab does not listen on %s", address)
                    continue
                self._close_all(socks)
                raise
            try:
                # SO_REUSEADDR only: a restarted lab binds despite TIME_WAIT, but a second lab
                # on the same address fails (SO_REUSEPORT would let both listen).
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if v6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((address, self.port))
                sock.listen(128)
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                if v6 and exc.errno == errno.EADDRNOTAVAIL:
                    log.warning("no IPv6 loopback: the SMTP lab does not listen on %s", address)
                    continue
                self._close_all(socks)
                where = _endpoint(address, self.port)
                raise OSError(
                    exc.errno, f"SMTP lab cannot listen on {where}: {exc.strerror or exc}"
                ) from None
            socks[address] = sock
        return socks

    @staticmethod
    def _close_all(socks: dict[str, socket.socket]) -> None:
        for sock in socks.values():
            sock.close()

    async def _serve(self, address: str, sock: socket.socket) -> asyncio.AbstractServer:
        async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._session(address, reader, writer)

        return await asyncio.start_server(session, sock=sock, limit=MAX_LINE)

    async def _serve_later(self, address: str, sock: socket.socket) -> None:
        try:
            server = await self._serve(address, sock)
        except BaseException:
            sock.close()
            raise
        finally:
            del self._pending[address]
        if address in self._table:
            self._servers[address] = server
        else:  # the world changed again meanwhile
            server.close()

    # --- certificates ----------------------------------------------------------------------------
    def _tmpdir(self) -> str:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="smtplab-")
        return self._tmp.name

    def _context(self, key: str, names: tuple[str, ...], issuer: str) -> ssl.SSLContext:
        """The context presenting [leaf, issuing CA] for a key and names (not the root: a
        server sends what the client cannot have, and DANE-TA 2 x x must find the CA in it)."""
        cache_key = (self._world.seed, key, names, issuer)
        ctx = self._contexts.get(cache_key)
        if ctx is not None:
            self._contexts.move_to_end(cache_key)
            return ctx
        seed = self._world.seed
        cert, ca = pki.leaf(seed, key, names, issuer), pki.issuing_ca(seed, issuer)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        # load_cert_chain reads files only: write them to the private directory, load, delete.
        directory = self._tmpdir()
        chain_path = os.path.join(directory, "chain.pem")
        key_path = os.path.join(directory, "key.pem")
        try:
            for path, data in ((chain_path, cert.pem() + ca.pem()), (key_path, cert.key_pem())):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            ctx.load_cert_chain(chain_path, key_path)
        finally:
            for path in (chain_path, key_path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        self._contexts[cache_key] = ctx
        if len(self._contexts) > CONTEXT_CACHE:
            self._contexts.popitem(last=False)
        return ctx

    def _host_context(self, host: MxHost | None) -> ssl.SSLContext:
        if host is None:
            return self._context(GENERIC_KEY, (GENERIC_NAME,), ISSUER_A)
        return self._context(host.key, _names(host), host.issuer)

    def _listener_context(self, listener: _Listener) -> ssl.SSLContext:
        if not listener.shared:
            return self._host_context(listener.hosts[0])
        ctx = self._dispatchers.get(listener.address)
        if ctx is None:
            # A context of its own for the address: its SNI callback must know the address.
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.sni_callback = self._sni_callback(listener.address)
            self._dispatchers[listener.address] = ctx
        return ctx

    def _sni_callback(
        self, address: str
    ) -> Callable[[ssl.SSLObject, str | None, ssl.SSLContext], None]:
        def callback(ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
            # Called with server_name None when the client sends no SNI: switch in every case.
            try:
                ssl_object.context = self._host_context(self._sni_host(address, server_name))
            except Exception:  # an exception here would only end the handshake obscurely
                log.exception("SMTP lab: no certificate for %r on %s", server_name, address)
                ssl_object.context = self._host_context(None)

        return callback

    def _sni_host(self, address: str, server_name: str | None) -> MxHost | None:
        listener = self._table.get(address)
        fallback = listener.hosts[0] if listener and listener.hosts else None
        if not server_name:
            return fallback
        host = self._world.host(server_name.lower().rstrip(".") + ".")
        # Only the hosts that live on this address have their certificate here.
        return host if host is not None and address in host.addresses else fallback

    # --- sessions --------------------------------------------------------------------------------
    async def _session(
        self, address: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        try:
            listener = self._table.get(address)
            if listener is not None:
                await self._converse(listener, reader, writer)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            pass  # the client left or stalled: just hang up
        except asyncio.CancelledError:
            pass  # close(): Python 3.11's start_server logs a cancelled handler as an error
        finally:
            if task is not None:
                self._sessions.discard(task)
            writer.close()

    async def _converse(
        self, listener: _Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if listener.behaviour == "tarpit":
            await asyncio.sleep(self.tarpit_seconds)  # accept, never greet
            return
        name = listener.greeting_name
        received = 0

        async def reply(*lines: str) -> None:
            writer.write("".join(f"{line}\r\n" for line in lines).encode())
            await writer.drain()

        async def readline() -> bytes:
            nonlocal received
            try:
                line = await asyncio.wait_for(reader.readline(), IDLE_SECONDS)
            except ValueError:  # over MAX_LINE
                await reply("500 5.5.2 line too long, closing")
                return b""
            received += len(line)
            if received > MAX_INPUT:
                await reply("421 4.7.0 too much input, closing")
                return b""
            return line

        await reply(f"220 {name} ESMTP lab")
        tls = mail = rcpt = False
        for _ in range(MAX_COMMANDS):
            line = await readline()
            if not line:
                return
            verb, _sp, arg = line.decode("ascii", "replace").strip().partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                if not arg.strip():
                    await reply("501 5.5.4 EHLO needs a domain")
                    continue
                offer_tls = not tls and listener.behaviour != "no_starttls"
                extensions = ["PIPELINING", "SIZE 10240000", "8BITMIME"]
                extensions += ["STARTTLS"] if offer_tls else []
                extensions.append("ENHANCEDSTATUSCODES")
                lines = [f"{name} greets {arg.strip()}", *extensions]
                await reply(*(f"250-{x}" for x in lines[:-1]), f"250 {lines[-1]}")
                mail = rcpt = False
            elif verb == "HELO":
                await reply(f"250 {name}")
                mail = rcpt = False
            elif verb == "STARTTLS":
                if tls:
                    await reply("503 5.5.1 TLS already active")
                elif listener.behaviour == "no_starttls":
                    await reply("502 5.5.1 command not implemented")
                elif listener.behaviour == "starttls_454":
                    await reply("454 4.7.0 TLS not available due to temporary reason")
                elif listener.behaviour == "handshake_fail":
                    await reply("220 2.0.0 Ready to start TLS")
                    await self._fail_handshake(reader, writer)
                    return
                else:
                    ctx = self._listener_context(listener)
                    # No await between the 220 and start_tls (whose drain does not block on an
                    # empty buffer), so the ClientHello cannot land in the plaintext reader.
                    writer.write(b"220 2.0.0 Ready to start TLS\r\n")
                    try:
                        await writer.start_tls(ctx, ssl_handshake_timeout=HANDSHAKE_SECONDS)
                    except (ssl.SSLError, ConnectionError, TimeoutError):
                        return
                    tls, mail, rcpt = True, False, False
            elif verb == "MAIL":
                mail, rcpt = True, False
                await reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                if not mail:
                    await reply("503 5.5.1 need MAIL first")
                    continue
                rcpt = True
                await reply("250 2.1.5 Ok")
            elif verb == "DATA":
                if not rcpt:
                    await reply("503 5.5.1 need RCPT first")
                    continue
                await reply("354 End data with <CR><LF>.<CR><LF>")
                while (data := await readline()) not in (b".\r\n", b".\n"):
                    if not data:
                        return
                mail = rcpt = False
                await reply("250 2.0.0 Ok: discarded")
            elif verb in ("RSET", "NOOP"):
                if verb == "RSET":
                    mail = rcpt = False
                await reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                await reply("221 2.0.0 Bye")
                return
            else:
                await reply("502 5.5.2 Error: command not recognized")
        await reply("421 4.7.0 too many commands, closing")

    @staticmethod
    async def _fail_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Take the ClientHello first: closing with it unread would reset the connection, and
        # the client might then see a reset rather than the alert.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader.read(MAX_LINE), 5.0)
        writer.write(HANDSHAKE_FAILURE_ALERT)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        with contextlib.suppress(TimeoutError):  # until the client hangs up, briefly
            async with asyncio.timeout(5.0):
                while await reader.read(MAX_LINE):
                    pass


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
