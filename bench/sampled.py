"""``python -m bench.sampled ARGS...``: ``interlink ARGS...`` under a stdlib sampling profiler.

A ``SIGPROF`` interval timer (process CPU time, ``BENCH_PROFILE_HZ``, default 250 Hz) interrupts
the process; the handler records the Python stack that was running (under gevent: the current
greenlet's). ``SIGUSR1`` forgets the stacks so far; ``SIGUSR2`` and the exit write the stacks are written, collapsed (``a;b;c count``, the input of
flamegraph.pl and speedscope), to ``BENCH_PROFILE_OUT``. No dependency, and no ptrace permission
needed (which py-spy needs and containers often deny).
"""

import atexit
import collections
import gc
import os
import runpy
import signal
import sys
import time
from types import FrameType

_stacks: collections.Counter[str] = collections.Counter()


def _where(frame: FrameType) -> str:
    code = frame.f_code
    parts = code.co_filename.replace("\\", "/").split("/")
    return f"{code.co_name} ({'/'.join(parts[-2:])}:{code.co_firstlineno})"


def _sample(_signum: int, frame: FrameType | None) -> None:
    names = []
    while frame is not None:
        names.append(_where(frame))
        frame = frame.f_back
    if names:
        _stacks[";".join(reversed(names))] += 1


_gc_started = [0.0]


def _gc(phase: str, info: dict[str, int]) -> None:
    """The cyclic collector's time, as a pseudo-stack ``[gc gen N]`` in samples of the timer's
    rate (a signal arriving during a collection is otherwise charged to whatever frame ran)."""
    if phase == "start":
        _gc_started[0] = time.process_time()
        return
    spent = time.process_time() - _gc_started[0]
    _gc_spent[info["generation"]] += spent


_gc_spent = [0.0, 0.0, 0.0]


def _write() -> None:
    signal.setitimer(signal.ITIMER_PROF, 0)
    _dump()


def _dump(*_: object) -> None:
    path = os.environ.get("BENCH_PROFILE_OUT", "shard.collapsed")
    hz = float(os.environ.get("BENCH_PROFILE_HZ", "250"))
    with open(path, "w", encoding="utf-8") as out:
        for stack, count in _stacks.most_common():
            out.write(f"{stack} {count}\n")
        for generation, spent in enumerate(_gc_spent):
            if round(spent * hz):
                out.write(f"[gc gen {generation}] {round(spent * hz)}\n")


def _reset(*_: object) -> None:
    _stacks.clear()
    _gc_spent[:] = [0.0, 0.0, 0.0]


if __name__ == "__main__":
    interval = 1.0 / float(os.environ.get("BENCH_PROFILE_HZ", "250"))
    signal.signal(signal.SIGPROF, _sample)
    # The bench profiles one phase at a time: SIGUSR1 forgets what was sampled, SIGUSR2 writes it.
    signal.signal(signal.SIGUSR1, _reset)
    signal.signal(signal.SIGUSR2, _dump)
    signal.setitimer(signal.ITIMER_PROF, interval, interval)
    gc.callbacks.append(_gc)
    atexit.register(_write)
    sys.argv = ["interlink", *sys.argv[1:]]
    runpy.run_module("interlink", run_name="__main__")
