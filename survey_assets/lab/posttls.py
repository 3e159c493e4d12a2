"""Postfix's `posttls-finger`, pointed at the lab: the independent DANE implementation tests use.

`posttls-finger -l dane` (Debian package `postfix`) decides as Postfix's SMTP client does: TLSA
records from the system resolver, trusted only with the AD bit, then OpenSSL's DANE matching and
chain checks. Its verdict per (MX host, address) can so be held against the survey's own
(`survey_assets.dane`). What it takes to point it at the lab:

- **DNS.** It reads `/etc/resolv.conf`, which names no port: each run is in its own mount
  namespace (`unshare -m`, root) with a resolv.conf bind-mounted over `/etc/resolv.conf` naming
  a validating Unbound on a loopback address of its own, port 53, that trusts the lab's anchor
  and validates as of the lab's date (`survey_assets.lab.unbound`); `trust-ad`, or glibc drops
  the AD bit. The host's /etc is never touched.
- **Port 25.** Postfix looks TLSA up at `_<port>._tcp.<host>` for the port it connects to, and
  the lab publishes `_25._tcp` while its servers listen on an unprivileged port: during a run a
  relay listens on port 25 of the address under test and passes bytes to the lab's port. It
  speaks no TLS itself, so the chain, SNI and every byte are the lab server's.
- **One address a run.** Postfix tries a host's addresses in random order and reports the first
  that accepts; only the address under test listens on port 25, so the others refuse and each
  run judges the address asked for (and says which it reached: checked).
- **Unpacked, not installed.** Installing `postfix` replaces the machine's MTA and starts a
  daemon, so `.ci/run` unpacks the package (`apt-get download`, `dpkg-deb -x`) into
  `~/.cache/survey-lab/postfix`; its libraries come by `LD_LIBRARY_PATH`, its configuration is a
  private `main.cf` (`MAIL_CONFIG`). A `posttls-finger` on the PATH is used when there is one.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import re
import shutil
import socket
import struct
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from survey_assets.lab.keys import CACHE_DIR
from survey_assets.lab.serve import LabInfo
from survey_assets.lab.unbound import Unbound

UNPACKED = CACHE_DIR / "postfix"  # where .ci/run unpacks the Debian package
RESOLVER_ADDRESS = "127.0.25.53"  # its Unbound: a loopback address no lab server uses
SMTP_PORT = 25  # the port whose TLSA records (_25._tcp) the lab publishes

_VERIFIED = re.compile(r"Verified TLS connection established to (\S+)\[([^\]]+)\]:(\d+)")
_MATCHED = re.compile(r"Matched DANE (.+?) at depth (\d+): (\d+ \d+ \d+ [0-9A-Fa-f]+)")
_PEER = re.compile(r"\[([^\]]+)\]:\d+: subject_CN=.*?fingerprint=([0-9A-F:]+), pkey_fingerprint=([0-9A-F:]+)")  # fmt: skip


def binary() -> Path | None:
    """posttls-finger on the PATH, else the unpacked one, else None."""
    found = shutil.which("posttls-finger")
    if found:
        return Path(found)
    unpacked = UNPACKED / "usr" / "sbin" / "posttls-finger"
    return unpacked if os.access(unpacked, os.X_OK) else None


def unavailable() -> str | None:
    """Why posttls-finger cannot run here (for a skip), or None."""
    if binary() is None:
        return f"posttls-finger is neither on the PATH nor unpacked in {UNPACKED} (.ci/run does it)"
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return "a private /etc/resolv.conf needs root and unshare (util-linux)"
    if shutil.which("unbound") is None:
        return "Debian's unbound is not installed"
    return None


@dataclass
class Outcome:
    """What posttls-finger said about one (MX host, address)."""

    host: str
    address: str
    verified: bool  # "Verified TLS connection established": DANE authenticated the server
    reached: str | None  # the address it connected to, when it connected
    matched: list[tuple[int, str]] = field(default_factory=list)  # (depth, TLSA record) it logged
    leaf_sha256: str | None = None  # of the leaf as Postfix printed it (hex, lower case)
    leaf_spki_sha256: str | None = None
    output: str = ""


def _owners() -> tuple[str, str]:
    """A mail_owner and setgid_group that Postfix's sanity checks accept: distinct from
    default_privs (nobody) and from each other's group id; no `postfix` user is needed."""
    nobody = pwd.getpwnam("nobody")
    users = [u for n in ("postfix", "mail", "daemon") if (u := _user(n)) and u.pw_uid != 0]
    owner = next(u for u in users if u.pw_uid != nobody.pw_uid)
    taken = {owner.pw_gid, nobody.pw_gid}
    groups = [g for n in ("postdrop", "adm", "staff", "users", "daemon") if (g := _group(n))]
    group = next(g for g in groups if g.gr_gid not in taken and g.gr_gid != 0)
    return owner.pw_name, group.gr_name


def _user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _group(name: str) -> grp.struct_group | None:
    try:
        return grp.getgrnam(name)
    except KeyError:
        return None


class _Relay:
    """Port 25 of one address, relayed to the lab's port on the same address, while open."""

    def __init__(self, address: str, port: int, target_port: int) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((address, port))
            self.sock.listen(8)
        except OSError:
            self.sock.close()
            raise
        self.address, self.target_port = address, target_port
        self.open: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.open.append(client)
            try:
                upstream = socket.create_connection((self.address, self.target_port), timeout=5)
            except OSError:  # the lab refuses here: reset, as a refused connection would end
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            upstream.settimeout(None)
            self.open.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for s in self.open:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self.thread.join(timeout=5)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class PostTlsFinger:
    """posttls-finger against one lab date: `with PostTlsFinger(lab.info, dir) as pf:`."""

    def __init__(self, info: LabInfo, workdir: Path, *, timeout: int = 3) -> None:
        found = binary()
        if found is None:
            raise RuntimeError(unavailable() or "posttls-finger not found")
        self.info, self.workdir, self.binary, self.timeout = info, Path(workdir), found, timeout
        self.unbound = Unbound(info, self.workdir / "unbound", 53, address=RESOLVER_ADDRESS)

    def __enter__(self) -> PostTlsFinger:
        config = self.workdir / "postfix"
        config.mkdir(parents=True, exist_ok=True)
        owner, group = _owners()
        (config / "main.cf").write_text(
            "compatibility_level = 3.6\n"
            "myhostname = dane-survey.lab-net\n"  # the EHLO name, as the survey's
            f"mail_owner = {owner}\nsetgid_group = {group}\n"
            "smtp_dns_support_level = dnssec\n"
            "smtp_tls_fingerprint_digest = sha256\n"
        )
        (self.workdir / "resolv.conf").write_text(
            f"nameserver {RESOLVER_ADDRESS}\noptions trust-ad edns0 attempts:2 timeout:2\n"
        )
        self.unbound.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unbound.stop()

    def command(self, host: str) -> list[str]:
        # -c: no SMTP chat; -l dane: Postfix's DANE level; [host]: no MX lookup, the host's own
        # A/AAAA and TLSA (the TLSA base domain is the host); no -F/-P: no public CA to fall
        # back on, and -C's chain is the one the server sent, not one OpenSSL completed.
        return [
            "unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
            str(self.workdir / "resolv.conf"), str(self.binary), "-c", "-l", "dane",
            "-t", str(self.timeout), "-T", str(self.timeout), "-L", "routine,certmatch,peercert",
            f"[{host.rstrip('.')}]:{SMTP_PORT}",
        ]  # fmt: skip

    def check(self, host: str, address: str) -> Outcome:
        """posttls-finger's verdict on one address of one MX host."""
        env = {**os.environ, "MAIL_CONFIG": str(self.workdir / "postfix")}
        libs = self.binary.parent.parent / "lib" / "postfix"
        if libs.is_dir():  # the unpacked package: its own shared libraries
            env["LD_LIBRARY_PATH"] = str(libs)
        try:
            relay: _Relay | None = _Relay(address, SMTP_PORT, self.info.smtp_port)
        except OSError as exc:
            if exc.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                raise RuntimeError(
                    f"cannot listen on port {SMTP_PORT} of {address}: {exc}"
                ) from None
            relay = None  # no IPv6 here: the lab does not listen there either, both see refusal
        try:
            done = subprocess.run(self.command(host), capture_output=True, text=True, env=env,
                                  timeout=4 * self.timeout + 30)  # fmt: skip
        finally:
            if relay is not None:
                relay.close()
        return parse(host, address, done.stdout + done.stderr)


def _hex(fingerprint: str) -> str:
    return fingerprint.replace(":", "").lower()


def parse(host: str, address: str, output: str) -> Outcome:
    """An Outcome from posttls-finger's log lines."""
    outcome = Outcome(host, address, verified=False, reached=None, output=output)
    if m := _VERIFIED.search(output):
        outcome.verified, outcome.reached = True, m.group(2)
    outcome.matched = [(int(d), text.lower()) for _, d, text in _MATCHED.findall(output)]
    if m := _PEER.search(output):
        outcome.reached = outcome.reached or m.group(1)
        outcome.leaf_sha256, outcome.leaf_spki_sha256 = _hex(m.group(2)), _hex(m.group(3))
    return outcome
