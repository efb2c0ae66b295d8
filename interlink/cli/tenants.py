"""``interlink tenants ...``: the admin API from a terminal.

Everything goes through the HTTP API (``--url`` / ``INTERLINK_URL``, ``--token`` /
``INTERLINK_ADMIN_TOKEN``, else the shard's generated ``$INTERLINK_DATA_DIR/admin-token``), so the
CLI has exactly the rights of its token and the shard stays the only writer.

Secrets never come from argv (``ps`` shows it to every user of the machine). Each secret is taken,
in order, from ``--secrets-stdin`` (``NAME=value`` lines on stdin), from its environment variable,
or from a hidden prompt when stdin is a terminal. The variable names are those of the old
single-tenant installation (``GENESYS_CLIENT_SECRET``, ``META_ACCESS_TOKEN`` ...).

Exit codes: 0 done, 1 refused by the API or unreachable (``check``: or a check failed), 2 usage.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from interlink.cli.api_client import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    api_from_args,
    connection_options,
    guard,
    print_json,
)


@dataclass(frozen=True)
class Field:
    """One API field and the legacy environment variable(s) it may come from."""

    api: str
    env: tuple[str, ...]
    secret: bool = False
    flag: str | None = None  # argparse dest of the flag that sets it (plain fields only)


GENESYS = (
    Field("clientId", ("GENESYS_CLIENT_ID",), flag="client_id"),
    Field("clientSecret", ("GENESYS_CLIENT_SECRET",), secret=True),
    Field("region", ("GENESYS_REGION",), flag="region"),
    Field("integrationId", ("GENESYS_INTEGRATION_ID",), flag="integration_id"),
    Field("webhookSecret", ("GENESYS_WEBHOOK_SECRET",), secret=True),
)
WHATSAPP = (
    Field("meta_access_token", ("META_ACCESS_TOKEN",), secret=True),
    Field("whatsapp_phone_number_id", ("WHATSAPP_PHONE_NUMBER_ID",), flag="phone_number_id"),
    Field(
        "whatsapp_business_account_id",
        ("WHATSAPP_BUSINESS_ACCOUNT_ID",),
        flag="business_account_id",
    ),
    Field("meta_app_secret", ("META_APP_SECRET",), secret=True),
    Field("webhook_verify_token", ("META_VERIFY_TOKEN", "WEBHOOK_VERIFY_TOKEN"), secret=True),
)


# -- secrets -------------------------------------------------------------------------------------
def parse_env_lines(text: str) -> dict[str, str]:
    """``NAME=value`` lines (dotenv style: comments, ``export``, quotes) as read from stdin."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            raise CliError("--secrets-stdin expects NAME=value lines", EXIT_USAGE)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


class Values:
    """Where field values come from: flags, then stdin lines, then the environment, then a prompt."""

    def __init__(
        self,
        args: argparse.Namespace,
        env: Mapping[str, str],
        stdin: TextIO,
        prompt: Callable[[str], str] | None = getpass.getpass,
    ) -> None:
        self.args = args
        self.env = dict(env)
        if getattr(args, "secrets_stdin", False):
            self.env.update(parse_env_lines(stdin.read()))
        self.interactive = (
            prompt is not None and stdin.isatty() and not getattr(args, "secrets_stdin", False)
        )
        self.prompt = prompt

    def get(self, field: Field) -> str | None:
        if field.flag and getattr(self.args, field.flag, None):
            return str(getattr(self.args, field.flag))
        for name in field.env:
            if self.env.get(name):
                return self.env[name]
        if field.secret and self.interactive and self.prompt is not None:
            return self.prompt(f"{field.api} (input hidden): ") or None
        return None

    def section(self, fields: tuple[Field, ...]) -> tuple[dict[str, str], list[str]]:
        """The values found, and the variables of those that are missing."""
        found: dict[str, str] = {}
        missing: list[str] = []
        for field in fields:
            value = self.get(field)
            if value is None:
                missing.append(field.env[0])
            else:
                found[field.api] = value
        return found, missing


# -- commands ------------------------------------------------------------------------------------
def cmd_create(args: argparse.Namespace) -> int:
    body = {"tenantId": args.tenant_id, "name": args.name or args.tenant_id}
    for flag, api in (
        ("org_id", "genesysOrgId"),
        ("org_name", "genesysOrgName"),
        ("region", "genesysRegion"),
    ):
        if getattr(args, flag):
            body[api] = getattr(args, flag)
    print_json(api_from_args(args).call("POST", "/api/tenants", body))
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    api = api_from_args(args)
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = f"?limit={args.page_size}" + (f"&cursor={cursor}" if cursor else "")
        page = api.call("GET", "/api/tenants" + query)
        items += page["items"]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    if args.json:
        print_json(items)
        return EXIT_OK
    print(f"{'TENANT':<24} {'VERSION':>7}  {'REGION':<24} GENESYS  WHATSAPP  NAME")
    for t in items:
        print(
            f"{t['tenantId']:<24} {t['version']:>7}  {t['genesysRegion'] or '-':<24} "
            f"{'yes' if t['genesys'] else 'no':<8} {'yes' if t['whatsapp'] else 'no':<9} {t['name']}"
        )
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    print_json(api_from_args(args).call("GET", f"/api/tenants/{args.tenant_id}"))
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        raise CliError(
            f"deleting {args.tenant_id} stops its traffic; repeat with --yes", EXIT_USAGE
        )
    api_from_args(args).call("DELETE", f"/api/tenants/{args.tenant_id}")
    print(f"deleted {args.tenant_id}")
    return EXIT_OK


def _set_section(
    args: argparse.Namespace, fields: tuple[Field, ...], method: str, path: str
) -> int:
    values = Values(args, os.environ, sys.stdin)
    found, missing = values.section(fields)
    if fields is GENESYS and "GENESYS_REGION" in missing:
        missing.remove("GENESYS_REGION")  # the API falls back to the tenant's genesysRegion
    if missing:
        raise CliError(
            "missing: " + ", ".join(missing) + " (flags for plain values; secrets from "
            "--secrets-stdin, the environment or the prompt)",
            EXIT_USAGE,
        )
    print_json(api_from_args(args).call(method, path.format(tenant=args.tenant_id), found))
    return EXIT_OK


def cmd_set_genesys(args: argparse.Namespace) -> int:
    return _set_section(args, GENESYS, "PUT", "/api/tenants/{tenant}/genesys/credentials")


def cmd_set_whatsapp(args: argparse.Namespace) -> int:
    return _set_section(args, WHATSAPP, "PUT", "/api/tenants/{tenant}/whatsapp/config")


def cmd_issue_key(args: argparse.Namespace) -> int:
    issued = api_from_args(args).call("POST", f"/api/tenants/{args.tenant_id}/keys")
    print_json(issued)
    print("The key is shown this once; store it now.", file=sys.stderr)
    return EXIT_OK


def cmd_revoke_key(args: argparse.Namespace) -> int:
    api_from_args(args).call("DELETE", f"/api/tenants/{args.tenant_id}/keys/{args.key_id}")
    print(f"revoked {args.key_id}")
    return EXIT_OK


def check_lines(answer: dict[str, Any]) -> list[str]:
    """One line per check: ``ok``, ``FAIL`` or ``-`` (could not be checked), name, detail."""
    lines = []
    for check in answer.get("checks") or []:
        ok = check.get("ok")
        mark = "ok" if ok is True else "FAIL" if ok is False else "-"
        lines.append(f"{mark:<4} {check.get('name', '?'):<20} {check.get('detail', '')}")
    return lines


def cmd_check(args: argparse.Namespace) -> int:
    answer = api_from_args(args).call("POST", f"/api/tenants/{args.tenant_id}/check")
    for line in check_lines(answer):
        print(line)
    return EXIT_OK if answer.get("ok") is True else EXIT_FAILED


# -- wiring --------------------------------------------------------------------------------------
def register(subparsers: Any) -> None:
    common = connection_options()
    tenants = subparsers.add_parser(
        "tenants", help="manage tenants through the admin API", description=__doc__.split("\n\n")[0]
    )
    tenants.set_defaults(func=lambda args: (tenants.print_help(sys.stderr), EXIT_USAGE)[1])
    actions = tenants.add_subparsers(dest="action", metavar="ACTION")

    def action(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, parents=[common], help=help, description=help)
        parser.set_defaults(func=guard(func))
        return parser

    p = action("create", cmd_create, "create a tenant")
    p.add_argument("tenant_id", metavar="TENANT_ID")
    p.add_argument("--name", help="display name (default: the id)")
    p.add_argument("--org-id", help="Genesys organisation id")
    p.add_argument("--org-name", help="Genesys organisation name")
    p.add_argument("--region", help="Genesys region domain, e.g. mypurecloud.ie")

    p = action("list", cmd_list, "list every tenant")
    p.add_argument("--json", action="store_true", help="print the tenants as JSON")
    p.add_argument("--page-size", type=int, default=200, choices=range(1, 201), metavar="N")

    p = action("show", cmd_show, "show one tenant (secrets masked)")
    p.add_argument("tenant_id", metavar="TENANT_ID")

    p = action("delete", cmd_delete, "delete a tenant: its traffic stops")
    p.add_argument("tenant_id", metavar="TENANT_ID")
    p.add_argument("--yes", action="store_true", help="confirm")

    p = action("set-genesys", cmd_set_genesys, "set the Genesys credentials")
    p.add_argument("tenant_id", metavar="TENANT_ID")
    p.add_argument("--client-id", help="OAuth client id (or GENESYS_CLIENT_ID)")
    p.add_argument("--region", help="region domain (or GENESYS_REGION; default: the tenant's)")
    p.add_argument(
        "--integration-id", help="Open Messaging integration id (or GENESYS_INTEGRATION_ID)"
    )
    p.add_argument(
        "--secrets-stdin",
        action="store_true",
        help="read GENESYS_CLIENT_SECRET=... and GENESYS_WEBHOOK_SECRET=... lines from stdin",
    )

    p = action("set-whatsapp", cmd_set_whatsapp, "set the WhatsApp configuration")
    p.add_argument("tenant_id", metavar="TENANT_ID")
    p.add_argument("--phone-number-id", help="(or WHATSAPP_PHONE_NUMBER_ID)")
    p.add_argument("--business-account-id", help="(or WHATSAPP_BUSINESS_ACCOUNT_ID)")
    p.add_argument(
        "--secrets-stdin",
        action="store_true",
        help="read META_ACCESS_TOKEN=, META_APP_SECRET=, META_VERIFY_TOKEN= lines from stdin",
    )

    p = action("check", cmd_check, "prove the tenant's setup against Genesys and Meta")
    p.add_argument("tenant_id", metavar="TENANT_ID")

    p = action("issue-key", cmd_issue_key, "issue a tenant-scoped API key (shown once)")
    p.add_argument("tenant_id", metavar="TENANT_ID")

    p = action("revoke-key", cmd_revoke_key, "revoke a tenant-scoped API key")
    p.add_argument("tenant_id", metavar="TENANT_ID")
    p.add_argument("key_id", metavar="KEY_ID")
