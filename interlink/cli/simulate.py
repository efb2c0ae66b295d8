"""``interlink simulate``: the Meta Graph API and Genesys Cloud simulators as a server.

``--world FILE`` preloads orgs and numbers from JSON: ``{"genesys": [<body of POST
/_sim/genesys/orgs>...], "meta": [<body of POST /_sim/meta/numbers>...]}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from typing import Any

import gevent
import gevent.event

from interlink.sim.control import NUMBER_OPTIONS
from interlink.sim.server import SimServer
from interlink.sim.state import SimState

log = logging.getLogger("interlink.sim")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate", help="run the Meta Graph API + Genesys Cloud simulators"
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8090, help="listen port (default 8090; 0 = any free)"
    )
    parser.add_argument("--world", help="JSON file of Genesys orgs and Meta numbers to preload")
    parser.set_defaults(func=simulate_command)


def load_world(state: SimState, world: dict[str, Any]) -> None:
    """Register the orgs and numbers of a world file (same fields as the ``/_sim`` bodies)."""
    for org in world.get("genesys", []):
        state.genesys.add_org(
            org["orgId"],
            region=org["region"],
            client_id=org["clientId"],
            client_secret=org["clientSecret"],
            integration_ids=org.get("integrationIds", []),
            webhook_secret=org.get("webhookSecret", ""),
            token_lifetime=int(org.get("tokenLifetime", 86_400)),
            webhook_url=org.get("webhookUrl"),
        )
    for number in world.get("meta", []):
        state.meta.add_number(
            number["phoneNumberId"],
            access_token=number["accessToken"],
            app_secret=number["appSecret"],
            **{key: number[wire] for wire, key in NUMBER_OPTIONS if wire in number},
        )


def simulate_command(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    state = SimState()
    if args.world:
        try:
            with open(args.world, encoding="utf-8") as handle:
                load_world(state, json.load(handle))
        except (OSError, ValueError, KeyError) as exc:
            print(f"interlink: --world {args.world}: {exc}", file=sys.stderr)
            return 2
    server = SimServer(state, host=args.host, port=args.port)
    try:
        server.start()
    except OSError as exc:
        print(
            f"interlink: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr
        )
        return 1
    print(f"simulators listening on {server.url}", flush=True)
    for name, value in server.env().items():
        print(f"{name}={value}", flush=True)
    stopped = gevent.event.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stopped.set)
    stopped.wait()
    server.stop()
    return 0
