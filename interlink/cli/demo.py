"""``interlink demo``: the command line around :func:`interlink.demo.run_demo`.

Exit codes: 0 the round trip passed every check, 1 a step failed, 130 interrupted (Ctrl-C or
SIGTERM; everything started is stopped first).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
from typing import Any

import gevent
import greenlet

from interlink.demo import run_demo


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="a complete local round trip for two tenants, against the simulators"
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the shard and the simulators up after the round trip, until Ctrl-C",
    )
    parser.set_defaults(func=demo_command)


def _interrupt(main: greenlet.greenlet) -> None:
    """Ctrl-C or SIGTERM: ``KeyboardInterrupt`` in the main greenlet, wherever it waits. Thrown
    from a hub callback (as gevent itself does), not raised here: a handler that raises gets
    its traceback printed by the hub."""
    gevent.get_hub().loop.run_callback(main.throw, KeyboardInterrupt)


def demo_command(args: argparse.Namespace) -> int:
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")  # a C-locale terminal still gets every line
    # SIGTERM ends the demo as Ctrl-C does: the stack is stopped, nothing is left behind.
    main = greenlet.getcurrent()
    handlers = [
        gevent.signal_handler(sig, _interrupt, main) for sig in (signal.SIGTERM, signal.SIGINT)
    ]
    try:
        result = run_demo(sys.stdout, keep_running=args.keep_running)
    except KeyboardInterrupt:
        print("interlink demo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): everything is stopped already; keep Python's exit
        # flush from failing on the same pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        for handler in handlers:
            handler.cancel()
    return 0 if result.ok else 1
