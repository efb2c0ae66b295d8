"""``interlink ctl ...``: the control endpoint from a terminal.

``interlink ctl actors`` prints ``GET /control/actors``; ``interlink ctl TYPE TENANT_ID`` sends one
admin message to a tenant (``ping``, ``stats``, ``reload``, ``stop``, ``start``,
``invalidate-token``, ``replay-dead-letters``); ``interlink ctl shard TYPE`` sends one to the shard
(``ping``, ``stats``, ``reload-all``, ``drain``). Each prints the JSON reply on stdout.

The shard is found and authenticated as by ``interlink tenants``: ``--url`` / ``INTERLINK_URL``,
``--token`` / ``INTERLINK_ADMIN_TOKEN``, else the shard's generated ``$INTERLINK_DATA_DIR/admin-token``.
The control endpoint takes the operator token only.

Exit codes: 0 answered, 1 refused by the shard (its title and description on stderr) or
unreachable, 2 usage (no token).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interlink.store.tenants import is_tenant_id
from interlink.tenants_cli import DEFAULT_URL, EXIT_OK, EXIT_USAGE, Api, CliError

# The message types a tenant answers, INTERFACE.md's first (the shard refuses others: 400).
TENANT_TYPES = (
    "ping",
    "stats",
    "reload",
    "stop",
    "start",
    "invalidate-token",
    "replay-dead-letters",
    "dead-letters",
    "drop-dead-letters",
)
DEAD_LETTER_TYPES = ("dead-letters", "replay-dead-letters", "drop-dead-letters")
SHARD_TYPES = ("ping", "stats", "reload-all", "drain")
HELP = {
    "ping": "check that the tenant's tree answers (activates an idle tenant)",
    "stats": "the tenant's version, conversations and actors",
    "reload": "load the tenant's stored configuration now",
    "stop": "stop the tenant's tree; its work waits until start",
    "start": "start a stopped or failed tenant again",
    "invalidate-token": "drop the tenant's cached Genesys token (every shard fetches a new one)",
    "replay-dead-letters": "move the tenant's dead letters back into the inbox (oldest first)",
    "dead-letters": "list the tenant's dead letters (oldest first, without their payloads)",
    "drop-dead-letters": "delete the tenant's dead letters for good (needs --yes)",
}


def _token(args: argparse.Namespace) -> str:
    """``--token``, then ``INTERLINK_ADMIN_TOKEN``, then the file a shard generates."""
    if args.token:
        return str(args.token)
    env = os.environ.get("INTERLINK_ADMIN_TOKEN")
    if env:
        return env
    path = Path(os.environ.get("INTERLINK_DATA_DIR") or "./var") / "admin-token"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        raise CliError(
            "no operator token: pass --token, set INTERLINK_ADMIN_TOKEN, or run next to the "
            f"shard's {path}",
            EXIT_USAGE,
        ) from None


def _api(args: argparse.Namespace) -> Api:
    return Api(args.url or os.environ.get("INTERLINK_URL") or DEFAULT_URL, _token(args))


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2))


def cmd_actors(args: argparse.Namespace) -> int:
    _print(_api(args).call("GET", "/control/actors"))
    return EXIT_OK


def cmd_tenant(args: argparse.Namespace) -> int:
    # Checked here so that no argument can turn the path into another route (``..``, ``/``).
    if not is_tenant_id(args.tenant_id):
        raise CliError(
            f"{args.tenant_id[:70]!r} is not a tenant id (^[a-z0-9][a-z0-9_-]{{0,63}}$)", EXIT_USAGE
        )
    if args.type == "drop-dead-letters" and not args.yes:
        raise CliError("dropped dead letters are gone for good; repeat with --yes", EXIT_USAGE)
    body: dict[str, Any] = {"type": args.type}
    if getattr(args, "limit", None) is not None:
        body["limit"] = args.limit
    if getattr(args, "ids", None):
        body["ids"] = args.ids
    path = f"/control/tenants/{args.tenant_id}/messages"
    _print(_api(args).call("POST", path, body))
    return EXIT_OK


def cmd_shard(args: argparse.Namespace) -> int:
    _print(_api(args).call("POST", "/control/shard/messages", {"type": args.type}))
    return EXIT_OK


def _guard(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """One line on stderr and an exit code for every failure we expect; the token never shows."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except CliError as exc:
            print(f"interlink: {exc}", file=sys.stderr)
            return exc.code
        except KeyboardInterrupt:
            return 130

    return run


def register(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", help=f"the shard's base URL (INTERLINK_URL, default {DEFAULT_URL})"
    )
    common.add_argument(
        "--token", help="operator token (prefer INTERLINK_ADMIN_TOKEN: argv is visible to others)"
    )
    ctl = subparsers.add_parser(
        "ctl",
        help="look into a shard's actors and send them admin messages",
        description="Look into a shard's actor tree and send admin messages to it. Each "
        "command prints the shard's JSON reply.",
    )
    ctl.set_defaults(func=lambda args: (ctl.print_help(sys.stderr), EXIT_USAGE)[1])
    actions = ctl.add_subparsers(dest="action", metavar="ACTION")

    p = actions.add_parser(
        "actors", parents=[common], help="the shard's actor tree (GET /control/actors)"
    )
    p.set_defaults(func=_guard(cmd_actors))

    for kind in TENANT_TYPES:
        p = actions.add_parser(kind, parents=[common], help=HELP[kind], description=HELP[kind])
        p.add_argument("tenant_id", metavar="TENANT_ID")
        p.set_defaults(func=_guard(cmd_tenant), type=kind)
        if kind in DEAD_LETTER_TYPES:
            p.add_argument(
                "--limit", type=int, metavar="N", help="at most N entries (shard default: 100)"
            )
        if kind in DEAD_LETTER_TYPES[1:]:
            p.add_argument(
                "--id", dest="ids", action="append", metavar="ID", help="this entry (repeatable)"
            )
        if kind == "drop-dead-letters":
            p.add_argument("--yes", action="store_true", help="confirm")

    p = actions.add_parser("shard", parents=[common], help="a message to the shard's supervisor")
    p.add_argument("type", choices=SHARD_TYPES, metavar="{" + ",".join(SHARD_TYPES) + "}")
    p.set_defaults(func=_guard(cmd_shard))
