"""Making the gevent hub late on purpose, for the tests of what measures its lag."""

from __future__ import annotations

import time

import gevent


def busy(until: float) -> None:
    """Runnable work of 10 ms a turn until ``until`` (``time.perf_counter()``): the hub runs late
    for every other greenlet. It yields through a timer, as delivery yields through I/O, so the
    hub goes round its loop."""
    while time.perf_counter() < until:
        deadline = time.perf_counter() + 0.01
        while time.perf_counter() < deadline:
            pass
        gevent.sleep(0.001)
