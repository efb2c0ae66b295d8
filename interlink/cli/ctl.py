"""``interlink ctl ...``: the control endpoint from a terminal.

``interlink ctl actors`` prints ``GET /control/actors`` (``--all``: every live shard's view);
``interlink ctl TYPE TENANT_ID`` sends one admin message to a tenant (``ping``, ``stats``,
``reload``, ``stop``, ``start``, ``invalidate-token``, ``replay-dead-letters``, ``dead-letters``,
``drop-dead-letters``); ``interlink ctl shard TYPE`` sends one to the shard (``ping``, ``stats``,
``reload-all``, ``drain``). Each prints the JSON reply on stdout.

The shard is found and authenticated as by ``interlink tenants``: ``--url`` / ``INTERLINK_URL``,
``--token`` / ``INTERLINK_ADMIN_TOKEN``, else the shard's generated ``$INTERLINK_DATA_DIR/admin-token``.
The control endpoint takes the operator token only. In a fleet ``--url`` may name any shard (a
Service address that lands on a random pod): a tenant message is relayed to the tenant's owner,
whose id is the reply's ``"shard"``. ``actors`` without ``--all`` and ``shard ...`` are about the
shard that answers.

Exit codes: 0 answered, 1 refused by the shard (its title and description on stderr) or
unreachable, 2 usage (no token).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from interlink.actors.messages import SHARD_MESSAGES, TENANT_MESSAGES
from interlink.cli.api_client import (
    EXIT_OK,
    EXIT_USAGE,
    Api,
    CliError,
    api_from_args,
    connection_options,
    guard,
    print_json,
)
from interlink.tenancy.validation import is_tenant_id

DEAD_LETTER_TYPES = ("dead-letters", "replay-dead-letters", "drop-dead-letters")
# One entry per type in TENANT_MESSAGES (the shard refuses others: 400).
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


def _api(args: argparse.Namespace) -> Api:
    # The control endpoint takes the operator token only; the usage error says so.
    return api_from_args(args, role="operator")


def cmd_actors(args: argparse.Namespace) -> int:
    path = "/control/actors?all=1" if args.all else "/control/actors"
    print_json(_api(args).call("GET", path))
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
    print_json(_api(args).call("POST", path, body))
    return EXIT_OK


def cmd_shard(args: argparse.Namespace) -> int:
    print_json(_api(args).call("POST", "/control/shard/messages", {"type": args.type}))
    return EXIT_OK


def register(subparsers: Any) -> None:
    common = connection_options()
    ctl = subparsers.add_parser(
        "ctl",
        help="look into the shards' actors and send them admin messages",
        description="Look into the actor trees and send admin messages to them. Each command "
        "prints the JSON reply. --url may name any shard of a fleet: a tenant message goes to "
        'the shard that owns the tenant (its id is the reply\'s "shard").',
    )
    ctl.set_defaults(func=lambda args: (ctl.print_help(sys.stderr), EXIT_USAGE)[1])
    actions = ctl.add_subparsers(dest="action", metavar="ACTION")

    p = actions.add_parser(
        "actors", parents=[common], help="the shard's actor tree (GET /control/actors)"
    )
    p.add_argument(
        "--all", action="store_true", help="every live shard's tree, not only the one answering"
    )
    p.set_defaults(func=guard(cmd_actors))

    for kind in TENANT_MESSAGES:
        p = actions.add_parser(kind, parents=[common], help=HELP[kind], description=HELP[kind])
        p.add_argument("tenant_id", metavar="TENANT_ID")
        p.set_defaults(func=guard(cmd_tenant), type=kind)
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

    p = actions.add_parser(
        "shard", parents=[common], help="a message to the supervisor of the shard that answers"
    )
    p.add_argument("type", choices=SHARD_MESSAGES, metavar="{" + ",".join(SHARD_MESSAGES) + "}")
    p.set_defaults(func=guard(cmd_shard))
