"""``interlink serve``: one shard in the foreground, its HTTP server around the ``Shard`` runtime.

Exit codes: 0 stopped by SIGTERM or SIGINT, 1 the shard could not start, 2 invalid settings.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from interlink import settings as settings_module
from interlink.http.app import create_app
from interlink.http.server import Limits, ShardServer, make_server
from interlink.runtime import Shard, StartupError
from interlink.services import Services
from interlink.settings import Settings, SettingsError
from interlink.telemetry import logs

log = logging.getLogger(__name__)


def http_server(services: Services) -> ShardServer:
    """The shard's HTTP server (not started yet) on ``settings.host:settings.port``."""
    settings = services.settings
    return make_server(
        (settings.host, settings.port),
        create_app(services),
        Limits(
            max_connections=settings.http_max_connections,
            header_timeout=settings.http_header_timeout,
            body_timeout=settings.http_body_timeout,
            idle_timeout=settings.http_idle_timeout,
        ),
    )


def http_shard(settings: Settings) -> Shard:
    """A shard that serves HTTP: what ``interlink serve`` runs."""
    return Shard(settings, http_server)


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="run one shard in the foreground")
    serve.add_argument("--host", help="listen address (INTERLINK_HOST)")
    serve.add_argument("--port", help="listen port (INTERLINK_PORT)")
    serve.add_argument("--env-file", help="a dotenv file of INTERLINK_* settings")
    serve.set_defaults(func=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    try:
        settings = settings_module.load(
            env_file=args.env_file, overrides={"host": args.host, "port": args.port}
        )
    except SettingsError as exc:
        print(f"interlink: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    for name in settings.unknown:
        log.warning("unknown setting %s is ignored (a typo?)", name)
    shard = http_shard(settings)
    try:
        shard.start()
    except StartupError as exc:
        shard.stop()
        print(f"interlink: {exc}", file=sys.stderr)
        return 1
    shard.run()
    return shard.exit_code
