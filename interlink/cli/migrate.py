"""``interlink migrate-single-tenant``: a single-tenant installation's settings become a tenant.

The old ``GENESYS_*``, ``META_*`` and ``WHATSAPP_*`` variables are read from the environment (and
``--env-file``; the environment wins), never prompted for, so it runs unattended; the tenant is
created or completed through the admin API, and a second run changes nothing.

Exit codes: 0 fully configured, 1 refused by the API or unreachable, 2 usage, 3 some settings are
still missing (what is missing is printed; run again once set).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

from interlink.cli import api_client
from interlink.cli.api_client import CliError
from interlink.cli.tenants import GENESYS, WHATSAPP, Field, Values
from interlink.settings import SettingsError, read_env_file
from interlink.tenancy.regions import UnknownRegion, region_from_legacy_setting

EXIT_INCOMPLETE = 3  # some settings are still missing


def _same(
    current: Mapping[str, Any] | None, wanted: Mapping[str, str], fields: tuple[Field, ...]
) -> bool:
    """Whether the stored section already holds ``wanted`` (secrets compared by their masks)."""
    if not current:
        return False
    for field in fields:
        value = wanted.get(field.api)
        expected = ("****" + value[-4:]) if field.secret and value is not None else value
        if current.get(field.api) != expected:
            return False
    return True


def cmd_migrate(args: argparse.Namespace) -> int:
    """Create or complete a tenant from a single-tenant installation's settings, idempotently."""
    env: dict[str, str] = {}
    if args.env_file:
        try:
            env.update(read_env_file(args.env_file))
        except SettingsError as exc:
            raise CliError(str(exc), api_client.EXIT_USAGE) from None
    env.update(os.environ)  # as for `serve`: the environment wins over the file
    # Migration reads the old settings only: no prompt, so it can run unattended.
    values = Values(args, env, sys.stdin, prompt=None)
    api = api_client.api_from_args(args)
    tenant_id = args.tenant_id
    done: list[str] = []
    kept: list[str] = []
    missing: list[str] = []
    problems: list[str] = []

    region: str | None = None
    raw_region = env.get("GENESYS_REGION")
    if raw_region:
        try:
            region = region_from_legacy_setting(raw_region)
        except UnknownRegion as exc:
            problems.append(f"GENESYS_REGION: {exc}")

    tenant = api.call("GET", f"/api/tenants/{tenant_id}", ok_404=True)
    if tenant is None:
        body = {"tenantId": tenant_id, "name": args.name or tenant_id}
        if region:
            body["genesysRegion"] = region
        tenant = api.call("POST", "/api/tenants", body)
        done.append(f"created tenant {tenant_id}")
    else:
        kept.append(f"tenant {tenant_id} exists (version {tenant['version']})")
        if region and tenant.get("genesysRegion") != region:
            tenant = api.call("PATCH", f"/api/tenants/{tenant_id}", {"genesysRegion": region})
            done.append(f"genesysRegion = {region}")

    genesys, genesys_missing = values.section(GENESYS)
    if region:
        genesys["region"] = region
    genesys_missing = [m for m in genesys_missing if m != "GENESYS_REGION"]
    if not region and tenant.get("genesysRegion"):
        genesys["region"] = tenant["genesysRegion"]
    if "region" not in genesys:
        genesys_missing.append("GENESYS_REGION")
    if genesys_missing:
        missing += genesys_missing
        problems.append("Genesys credentials not set (missing " + ", ".join(genesys_missing) + ")")
    elif _same(tenant.get("genesys"), genesys, GENESYS) and not args.force:
        kept.append("Genesys credentials already set")
    else:
        api.call("PUT", f"/api/tenants/{tenant_id}/genesys/credentials", genesys)
        done.append("Genesys credentials (" + ", ".join(f.env[0] for f in GENESYS) + ")")

    whatsapp, whatsapp_missing = values.section(WHATSAPP)
    if whatsapp_missing:
        missing += whatsapp_missing
        problems.append(
            "WhatsApp configuration not set (missing " + ", ".join(whatsapp_missing) + ")"
        )
    elif _same(tenant.get("whatsapp"), whatsapp, WHATSAPP) and not args.force:
        kept.append("WhatsApp configuration already set")
    else:
        api.call("PUT", f"/api/tenants/{tenant_id}/whatsapp/config", whatsapp)
        done.append("WhatsApp configuration (" + ", ".join(f.env[0] for f in WHATSAPP) + ")")

    for line in done:
        print(f"set:       {line}")
    for line in kept:
        print(f"unchanged: {line}")
    for line in problems:
        print(f"missing:   {line}")
    if missing or problems:
        print(
            f"Still to provide: {', '.join(dict.fromkeys(missing)) or 'see above'}; run again once set."
        )
        return EXIT_INCOMPLETE
    print(f"Tenant {tenant_id} is fully configured.")
    return api_client.EXIT_OK


def register(subparsers: Any) -> None:
    migrate = subparsers.add_parser(
        "migrate-single-tenant",
        parents=[api_client.connection_options()],
        help="turn a single-tenant installation's settings into a tenant",
        description="Reads GENESYS_*, META_* and WHATSAPP_* from the environment (and --env-file) "
        "and creates or completes the tenant through the API. Safe to run again.",
    )
    migrate.add_argument("tenant_id", metavar="TENANT_ID")
    migrate.add_argument("--name", help="display name when the tenant is created")
    migrate.add_argument("--env-file", help="the old installation's .env file")
    migrate.add_argument(
        "--force", action="store_true", help="rewrite sections that look unchanged"
    )
    migrate.set_defaults(func=api_client.guard(cmd_migrate))
