"""`survey site serve`: the site's folder over HTTP on the loopback address, for a quick look.

Only 127.0.0.1: the site is static and any web server can publish it; this one is for the
person who built it, so it never listens on a public address.
"""

from __future__ import annotations

import functools
import http.server
from pathlib import Path

HOST = "127.0.0.1"


class SiteError(Exception):
    """The folder cannot be served: names it and why."""


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(
        self, format: str, *args: object
    ) -> None:  # quiet: one line per request is noise
        pass


def make_server(folder: Path, port: int = 8000) -> http.server.ThreadingHTTPServer:
    """A server for `folder` on 127.0.0.1:`port` (0: any free port), not yet serving."""
    if not (folder / "index.html").is_file():
        raise SiteError(
            f"{folder}: no site here (no index.html): run `make demo` or materialize the site asset"
        )
    handler = functools.partial(_Handler, directory=str(folder))
    try:
        return http.server.ThreadingHTTPServer((HOST, port), handler)
    except OSError as exc:
        raise SiteError(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}") from None
