"""``interlink`` command line: one sub-command per job, each in its own module of this package.

Each module exposes ``register(subparsers)``; its sub-commands set ``func(args) -> int``, the exit
code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from interlink import __version__

COMMAND_MODULES = [
    "interlink.cli.serve",  # serve
    "interlink.cli.simulate",  # simulate
    "interlink.cli.tenants",  # tenants ...
    "interlink.cli.migrate",  # migrate-single-tenant
    "interlink.cli.demo",  # demo
    "interlink.cli.ctl",  # ctl ...
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interlink", description="Multi-tenant WhatsApp ⇄ Genesys Cloud bridge."
    )
    parser.add_argument("--version", action="version", version=f"interlink {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    return func(args)
