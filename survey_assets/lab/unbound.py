"""Debian's Unbound, pointed at the lab: the independent validator tests and benchmarks use.

Unbound forwards everything to the lab's resolver address, trusts the lab's root anchor, and
validates as of the lab's date (`val-override-date`), so its AD bit and SERVFAILs can be held
against the lab's ground truth and the survey's own validator.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode

from survey_assets import reasons as R
from survey_assets.lab.serve import LabInfo

UNBOUND_ADDRESS = "127.0.0.1"


def available() -> bool:
    return shutil.which("unbound") is not None


class Unbound:
    """An Unbound process on loopback for one lab date."""

    def __init__(
        self, info: LabInfo, workdir: Path, port: int, *, cache: bool = True,
        address: str = UNBOUND_ADDRESS,
    ) -> None:  # fmt: skip
        self.info, self.workdir, self.port, self.cache = info, Path(workdir), port, cache
        self.address = address  # another loopback address lets a second one listen on port 53
        self.process: subprocess.Popen | None = None

    def config(self) -> str:
        stamp = self.info.date.strftime("%Y%m%d") + "120000"
        cache = "" if self.cache else "    msg-cache-size: 0\n    rrset-cache-size: 0\n"
        return f"""server:
    interface: {self.address}@{self.port}
    port: {self.port}
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{self.workdir}"
    pidfile: ""
    use-syslog: no
    logfile: "{self.workdir}/unbound.log"
    verbosity: 0
    val-log-level: 2
    do-not-query-localhost: no
    trust-anchor-file: "{self.info.trust_anchor}"
    val-override-date: "{stamp}"
    module-config: "validator iterator"
    qname-minimisation: no
    access-control: 127.0.0.0/8 allow
    do-ip6: no
    num-threads: 1
    outgoing-range: 1024
    num-queries-per-thread: 1024
    harden-dnssec-stripped: yes
{cache}forward-zone:
    name: "."
    forward-addr: {self.info.resolver}@{self.info.dns_port}
remote-control:
    control-enable: no
"""

    def start(self) -> Unbound:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "unbound.conf"
        conf.write_text(self.config())
        check = subprocess.run(["unbound-checkconf", str(conf)], capture_output=True, text=True)
        if check.returncode != 0 and shutil.which("unbound-checkconf"):
            raise RuntimeError(f"unbound config {conf}: {check.stdout}{check.stderr}".strip())
        self.process = subprocess.Popen(
            ["unbound", "-d", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"unbound exited: {err.strip()}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                if s.connect_ex((self.address, self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"unbound did not start on {self.address}@{self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Unbound:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def exchange(self, name: str, rdtype: str, timeout: float = 10.0) -> bytes:
        """One query over TCP with DO set; the raw response, which dnspython may not parse."""
        wire = dns.message.make_query(name, rdtype, want_dnssec=True).to_wire()
        with socket.create_connection((self.address, self.port), timeout=timeout) as s:
            s.sendall(struct.pack("!H", len(wire)) + wire)
            size = struct.unpack("!H", _read(s, 2))[0]
            return _read(s, size)

    def status(self, name: str, rdtype: str) -> str:
        """Unbound's verdict in the survey's terms: secure (AD), insecure, or failed (SERVFAIL).

        A validator cannot tell bogus from indeterminate through its answer alone: both are
        SERVFAIL, reported here as "servfail". Only the header is read, so a record that
        dnspython refuses (a TLSA digest of the wrong length) does not hide the verdict.
        """
        flags = struct.unpack("!H", self.exchange(name, rdtype)[2:4])[0]
        if flags & 0x000F == dns.rcode.SERVFAIL:
            return "servfail"
        return R.SECURE if flags & dns.flags.AD else R.INSECURE


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("unbound closed the connection")
        data += chunk
    return data
