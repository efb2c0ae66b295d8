"""The thin HTTP client the command-line tools (``interlink tenants``, ``interlink ctl``) use to talk
to a shard.

A shard is found by ``--url``, else ``INTERLINK_URL``, else :data:`DEFAULT_URL`; the bearer token is
``--token``, else ``INTERLINK_ADMIN_TOKEN``, else the ``admin-token`` file a shard generates in
``$INTERLINK_DATA_DIR`` (``./var`` by default). Every failure becomes a :class:`CliError`: one line
for stderr (never the token) and the exit status to return.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT = 15.0
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A failure to report on one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class Api:
    """A thin client of the admin API; every error becomes a CliError naming status and reason."""

    def __init__(self, url: str, token: str, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.session = session or requests.Session()

    def __repr__(self) -> str:
        return f"Api(url={self.url!r})"

    def call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, ok_404: bool = False
    ) -> Any:
        try:
            response = self.session.request(
                method,
                self.url + path,
                json=body,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=TIMEOUT,
            )
        except requests.RequestException as exc:
            raise CliError(f"cannot reach {self.url}: {type(exc).__name__}") from None
        if ok_404 and response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise CliError(f"{method} {path}: {response.status_code} {_reason(response)}")
        if response.status_code == 204 or not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise CliError(f"{method} {path}: the answer is not JSON") from None


def _reason(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or ""
    if isinstance(body, dict):
        return " - ".join(str(body[k]) for k in ("title", "description") if body.get(k))
    return response.reason or ""


def resolve_token(flag: str | None, *, role: str = "admin") -> str:
    """``--token``, then ``INTERLINK_ADMIN_TOKEN``, then the file a shard generates.

    ``role`` names the token in the usage error: "no admin token", "no operator token".
    """
    if flag:
        return str(flag)
    env = os.environ.get("INTERLINK_ADMIN_TOKEN")
    if env:
        return env
    # The shard generates one on its first start when none is configured.
    path = Path(os.environ.get("INTERLINK_DATA_DIR") or "./var") / "admin-token"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        raise CliError(
            f"no {role} token: pass --token, set INTERLINK_ADMIN_TOKEN, or run next to the shard's "
            f"{path}",
            EXIT_USAGE,
        ) from None


def api_from_args(args: argparse.Namespace, *, role: str = "admin") -> Api:
    """The client for the ``--url`` and ``--token`` of :func:`connection_options`."""
    url = args.url or os.environ.get("INTERLINK_URL") or DEFAULT_URL
    return Api(url, resolve_token(args.token, role=role))


def connection_options() -> argparse.ArgumentParser:
    """A parent parser with ``--url`` and ``--token``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", help=f"the shard's base URL (INTERLINK_URL, default {DEFAULT_URL})"
    )
    common.add_argument(
        "--token", help="operator token (prefer INTERLINK_ADMIN_TOKEN: argv is visible to others)"
    )
    return common


def guard(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
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


def print_json(data: Any) -> None:
    """A reply on stdout, indented, keys in the order the shard sent them."""
    print(json.dumps(data, indent=2))
