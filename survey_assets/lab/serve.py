"""Serving the lab: every DNS and SMTP server on loopback, in a background thread.

`Lab` is a context manager for tests and Dagster resources; `survey lab serve` wraps it for a
shell. It writes what a client needs beside the servers (the trust anchor, the date's ground
truth, the date's zone files) and can move to another date without rebinding.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import socket
import tempfile
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.dnssec
import dns.name

from survey_assets import eventloop
from survey_assets.lab import world as W
from survey_assets.lab.authority import LabData
from survey_assets.lab.dnsserver import DnsLab
from survey_assets.lab.smtpserver import SmtpLab
from survey_assets.lab.truth import write_truth
from survey_assets.lab.zonefiles import write_zonefiles

DEFAULT_DNS_PORT = 10053
DEFAULT_SMTP_PORT = 10025


class LabError(RuntimeError):
    """The lab cannot start: the message names the problem in one line."""


@dataclass(frozen=True)
class LabInfo:
    resolver: str
    dns_port: int
    smtp_port: int
    trust_anchor: Path
    truth: Path
    zones_dir: Path
    date: dt.date
    seed: int
    scale: str

    def as_json(self) -> dict[str, Any]:
        return {
            "resolver": f"{self.resolver}@{self.dns_port}",
            "resolver_address": self.resolver,
            "dns_port": self.dns_port,
            "smtp_port": self.smtp_port,
            "trust_anchor": str(self.trust_anchor),
            "truth": str(self.truth),
            "zones_dir": str(self.zones_dir),
            "date": self.date.isoformat(),
            "seed": self.seed,
            "scale": self.scale,
        }


def trust_anchor_text(world: W.World) -> str:
    """The lab root's DS records, in the format of IANA's root anchors as Unbound reads them."""
    zone = LabData(world).zone(dns.name.root)
    assert zone is not None
    lines = [
        f". 3600 IN DS {dns.dnssec.make_ds(dns.name.root, k.dnskey, 'SHA256').to_text()}"
        for k in zone.keys
        if k.ksk
    ]
    return "\n".join(lines) + "\n"


class Lab:
    """The lab on loopback for one date at a time.

    with Lab(seed=1, scale="tiny", date=date(2026, 11, 1), workdir=path) as lab:
        lab.info.resolver, lab.info.dns_port, ...
    """

    def __init__(
        self,
        *,
        seed: int = W.DEFAULT_SEED,
        scale: str = "tiny",
        date: dt.date = W.LAB_EPOCH,
        workdir: Path,
        dns_port: int = DEFAULT_DNS_PORT,
        smtp_port: int = DEFAULT_SMTP_PORT,
        write_zones: bool = True,
        tarpit_seconds: float = 30.0,
    ) -> None:
        for port in (dns_port, smtp_port):
            if not 1024 <= port <= 65535:
                raise LabError(f"port {port} is not an unprivileged port (1024-65535)")
        try:
            self.world = W.World(seed, scale, date)
        except ValueError as exc:
            raise LabError(str(exc)) from None
        self.workdir = Path(workdir)
        self.dns_port, self.smtp_port = dns_port, smtp_port
        self.write_zones = write_zones
        self.tarpit_seconds = tarpit_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.dns: DnsLab | None = None
        self.smtp: SmtpLab | None = None

    # --- files -----------------------------------------------------------------------------------
    @property
    def info(self) -> LabInfo:
        day = self.world.date.isoformat()
        return LabInfo(
            resolver=W.RESOLVER_ADDRESS,
            dns_port=self.dns_port,
            smtp_port=self.smtp_port,
            trust_anchor=self.workdir / "trust-anchor.ds",
            truth=self.workdir / "truth" / f"{day}.jsonl",
            zones_dir=self.workdir / "zones" / day,
            date=self.world.date,
            seed=self.world.seed,
            scale=self.world.scale,
        )

    def _write_files(self) -> None:
        info = self.info
        self.workdir.mkdir(parents=True, exist_ok=True)
        tmp = info.trust_anchor.with_name(info.trust_anchor.name + ".tmp")
        tmp.write_text(trust_anchor_text(self.world))
        tmp.replace(info.trust_anchor)
        if not info.truth.exists():
            write_truth(self.world, info.truth)
        if self.write_zones and not info.zones_dir.exists():
            staging = info.zones_dir.with_name(info.zones_dir.name + ".tmp")
            write_zonefiles(self.world, staging)
            staging.replace(info.zones_dir)

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Lab:
        self._write_files()
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = eventloop.new_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._start_servers())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="survey-lab", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join(timeout=5)
            self._loop.close()
            self._loop = None
            exc = failure[0]
            raise LabError(str(exc)) from None
        return self

    async def _start_servers(self) -> None:
        self.dns = DnsLab(self.world, self.dns_port)
        self.smtp = SmtpLab(self.world, self.smtp_port, tarpit_seconds=self.tarpit_seconds)
        await self.dns.start()
        try:
            await self.smtp.start()
        except BaseException:
            await self.dns.close()
            raise

    def _call(self, factory: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        assert self._loop is not None, "the lab is not running"
        return asyncio.run_coroutine_threadsafe(factory(), self._loop).result()

    def set_date(self, date: dt.date) -> None:
        """Serve another date's world on the same addresses."""
        self.world = W.World(self.world.seed, self.world.scale, date)
        self._write_files()

        async def switch() -> None:
            assert self.dns and self.smtp
            self.dns.set_world(self.world)
            self.smtp.set_world(self.world)

        self._call(switch)

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            if self.smtp:
                await self.smtp.close()
            if self.dns:
                await self.dns.close()

        with contextlib.suppress(Exception):
            self._call(shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    @property
    def errors(self) -> list[str]:
        return list(self.dns.errors) if self.dns else []

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def info_line(lab: Lab) -> str:
    return json.dumps(lab.info.as_json(), sort_keys=True)


@contextlib.contextmanager
def serving(
    *,
    seed: int,
    scale: str,
    date: dt.date,
    workdir: Path,
    dns_port: int,
    smtp_port: int,
    private: bool = False,
):
    """Make sure the lab serves `date` on these ports for the duration of the block.

    A lab already listening (the demo's, or `survey lab serve`) is used when it serves the same
    date; when nothing listens, one is started here and stopped afterwards. A `private` one
    (for steps that run side by side, such as scan shards) takes free ports and its own
    temporary workdir, so parallel steps never contend for addresses or files: use the
    yielded lab's `info` for its resolver and trust anchor.
    """
    served = served_date(dns_port)
    if served == date:
        yield None
        return
    if served is not None:
        raise LabError(
            f"the lab at {W.RESOLVER_ADDRESS}@{dns_port} serves {served}, not {date}: "
            f"restart it with `survey lab serve --date {date}`"
        )
    with contextlib.ExitStack() as stack:
        if private:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="survey-lab-")))
            # SMTP binds one port on every MX address: probe one of them.
            dns_port, smtp_port = free_port(W.RESOLVER_ADDRESS), free_port("127.25.1.1")
        lab = stack.enter_context(Lab(seed=seed, scale=scale, date=date, workdir=workdir,
                                      dns_port=dns_port, smtp_port=smtp_port, write_zones=False))  # fmt: skip
        yield lab


def free_port(address: str) -> int:
    """A port free for both UDP and TCP on `address` (the lab binds the same port everywhere)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((address, 0))
            port = tcp.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((address, port))
        except OSError:
            continue
        return port
    raise LabError(f"no free port on {address}")


def served_date(dns_port: int, timeout: float = 1.0) -> dt.date | None:
    """The date the lab on this port serves (from the root's SOA serial), or None if none does."""
    import dns.exception
    import dns.message
    import dns.query

    query = dns.message.make_query(".", "SOA")
    try:
        response = dns.query.udp(query, W.RESOLVER_ADDRESS, port=dns_port, timeout=timeout)
    except (dns.exception.Timeout, OSError):
        return None
    for rrset in response.answer:
        serial = str(rrset[0].serial)
        return dt.date(int(serial[:4]), int(serial[4:6]), int(serial[6:8]))
    return None
