"""Accept before delivery: the reader's hand-over waits while the hub is queued with work."""

from __future__ import annotations

import time

import gevent

from interlink.inbox.pressure import HubPressure
from tests.support.hub import busy


def test_an_idle_hub_hands_over_at_once() -> None:
    # A limit far above what a loaded test machine's scheduling adds to the hub's wakes (the
    # default 2 ms is not, and made this fail under load): "idle" is what this test sets up.
    pressure = HubPressure(limit=0.5)
    pressure.start()
    try:
        gevent.sleep(0.05)
        began = time.perf_counter()
        for _ in range(pressure.burst):
            pressure.wait()
        assert time.perf_counter() - began < 0.05
        assert pressure.waited == 0.0
    finally:
        pressure.stop()


def handed_in(pressure: HubPressure, seconds: float) -> int:
    handed, until = 0, time.perf_counter() + seconds
    while time.perf_counter() < until:
        pressure.wait()
        handed += 1
        gevent.sleep(0)  # as the reader yields between entries (a tell can switch)
    return handed


def test_a_queued_hub_holds_the_hand_over_back() -> None:
    pressure = HubPressure(limit=0.002, interval=0.005)
    pressure.start()
    try:
        gevent.sleep(0.05)
        idle = handed_in(pressure, 0.2)
        until = time.perf_counter() + 0.4
        workers = [gevent.spawn(busy, until) for _ in range(4)]
        gevent.sleep(0.05)
        queued = handed_in(pressure, 0.2)  # held back until the work is done
        gevent.joinall(workers)
        assert queued * 10 < idle, (queued, idle)
        assert pressure.waited > 0.1
    finally:
        pressure.stop()


def test_a_stopped_pressure_never_blocks() -> None:
    pressure = HubPressure()
    for _ in range(1000):
        pressure.wait()


def test_a_hub_that_is_always_late_still_hands_over() -> None:
    # A lag limit no measurement can meet: a throttled container, a noisy host.
    pressure = HubPressure(limit=-1.0, interval=0.005)
    pressure.start()
    try:
        with gevent.Timeout(3):  # one per measurement: slowed, not stopped
            for _ in range(pressure.burst + 20):  # past the first burst
                pressure.wait()
    finally:
        pressure.stop()


def test_a_trickle_is_not_measured_and_a_flow_is_until_it_calms_down() -> None:
    pressure = HubPressure(limit=0.5, interval=0.005, window=0.05)
    pressure.start()
    try:
        for _ in range(pressure.burst):  # within one window: still a trickle
            pressure.wait()
        assert not pressure.measuring
        pressure.wait()  # one more: a flow, measured from now on
        assert pressure.measuring
        gevent.sleep(0.2)  # nothing more handed over: no timer wakes the hub any more
        assert not pressure.measuring
        began = time.perf_counter()
        pressure.wait()
        assert time.perf_counter() - began < 0.05
        assert not pressure.measuring
    finally:
        pressure.stop()
    assert not pressure.measuring
