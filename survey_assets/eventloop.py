"""The event loop the survey's asyncio code runs on: uvloop (libuv underneath, several times
less overhead per I/O event than the standard loop) where it is installed, the standard loop
otherwise. Scanner, capture client and lab servers are plain asyncio and work on either."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # a speed-up, not a requirement
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(work: Coroutine[Any, Any, _T]) -> _T:
    """`asyncio.run` on the survey's loop."""
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(work)
