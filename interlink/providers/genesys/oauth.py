"""The client-credentials token: ``POST https://login.{region}/oauth/token`` with HTTP Basic
``client_id:client_secret`` and ``grant_type=client_credentials``; Genesys answers
``access_token`` and ``expires_in`` and issues no refresh token, so a new one is requested before
expiry or after a 401."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from interlink.providers.errors import AuthError, PermanentError, TransientError, scrub
from interlink.providers.genesys.wire import (
    DEFAULT_TIMEOUT,
    RETRY_STATUSES,
    Timeout,
    correlation_id,
    json_body,
    retry_later,
)
from interlink.tenancy.config import GenesysCredentials, mask

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Token:
    """A Genesys access token: ``access_token`` (secret), ``expires_in`` seconds as granted,
    ``obtained_at`` (``time.time()`` when the request was sent, so expiry errs early)."""

    access_token: str
    expires_in: int
    obtained_at: float

    @property
    def expires_at(self) -> float:
        return self.obtained_at + self.expires_in

    def __repr__(self) -> str:
        return (
            f"Token(access_token={mask(self.access_token)!r}, expires_in={self.expires_in!r}, "
            f"obtained_at={self.obtained_at!r})"
        )

    __str__ = __repr__


def token_url(login_base: str) -> str:
    return login_base.rstrip("/") + "/oauth/token"


def fetch_token(
    session: requests.Session,
    login_base: str,
    creds: GenesysCredentials,
    *,
    timeout: Timeout = DEFAULT_TIMEOUT,
    clock: Callable[[], float] = time.time,
) -> Token:
    """Request a client-credentials token: ``POST {login_base}/oauth/token``.

    - ``session``: the caller's ``requests.Session`` (one per client object).
    - ``login_base``: e.g. ``Settings.genesys_login_base(region)``, ``https://login.mypurecloud.ie``.
    - ``creds``: the tenant's client id and secret (HTTP Basic, as every Genesys SDK does).
    - ``timeout``: (connect, read) seconds (``DEFAULT_TIMEOUT``).
    - ``clock``: wall-clock seconds for ``Token.obtained_at`` (default ``time.time``).

    One attempt, no retry (the token manager owns that). Raises :class:`AuthError` when Genesys
    refuses the credentials (400/401/403: wrong id or secret, deleted client, wrong region), with
    Genesys's ``error``/``description`` but never the secret; :class:`TransientError` for 408, 429,
    5xx, timeouts and connection failures (``retry_after`` from ``Retry-After``);
    :class:`PermanentError` for anything else (e.g. a 404 from a wrong login URL, a 200 without a
    token).
    """
    url = token_url(login_base)
    started = clock()
    try:
        response = session.post(
            url,
            auth=(creds.client_id, creds.client_secret),
            data={"grant_type": "client_credentials"},
            headers={"Accept": "application/json"},
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise TransientError(f"token request to {url} failed: {type(exc).__name__}") from exc
    cid = correlation_id(response)
    body = json_body(response)
    status = response.status_code
    if status == 200:
        token = body.get("access_token") if isinstance(body, dict) else None
        try:
            expires_in = int(body["expires_in"]) if isinstance(body, dict) else 0
        except (KeyError, TypeError, ValueError):
            expires_in = 0
        if not isinstance(token, str) or not token or expires_in <= 0:
            raise PermanentError(
                status,
                "malformed.token.response",
                f"{url} answered 200 without a usable token",
                correlation_id=cid,
            )
        log.info(
            "genesys token obtained",
            extra={"client_id": creds.client_id, "expires_in": expires_in, "correlation_id": cid},
        )
        return Token(token, expires_in, started)
    error, description = _oauth_error(body, response.text)
    text = scrub(description, creds.client_secret)
    if status in (400, 401, 403):
        raise AuthError(
            status,
            error or "bad.credentials",
            f"Genesys refused the credentials of client {creds.client_id}: {text}",
            correlation_id=cid,
        )
    if status in RETRY_STATUSES:
        raise retry_later(response, f"token request answered {status}: {text}")
    raise PermanentError(status, error, f"token request to {url}: {text}", correlation_id=cid)


def _oauth_error(body: Any, raw: str) -> tuple[str | None, str]:
    """OAuth errors are ``{"error", "description"}`` (or ``error_description``); API errors are
    ``{"code", "message"}``; proxies answer HTML. Return (code, human text)."""
    if isinstance(body, dict):
        code = body.get("error") or body.get("code")
        text = body.get("description") or body.get("error_description") or body.get("message")
        return (str(code) if code else None), str(text or code or "no description")
    return None, (raw or "empty body").strip()
