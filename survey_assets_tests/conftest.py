"""Shared test helpers: free loopback ports and a running lab."""

from __future__ import annotations

import socket

from survey_assets.lab import world as W


def free_port(address: str = W.RESOLVER_ADDRESS) -> int:
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
    raise RuntimeError(f"no free port on {address}")
