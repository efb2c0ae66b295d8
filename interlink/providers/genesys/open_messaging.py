"""Open Messaging inbound calls of one integration: customer messages, receipts, typing events,
with the 401 re-authentication, retries and pacing every call shares."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from interlink.providers.errors import (
    AuthError,
    PermanentError,
    SendUncertain,
    TransientError,
    request_not_sent,
    scrub,
)
from interlink.providers.genesys.wire import (
    DEFAULT_TIMEOUT,
    RETRY_STATUSES,
    Timeout,
    correlation_id,
    json_body,
)
from interlink.providers.pacing import Pacer
from interlink.providers.retry import RetryPolicy, parse_retry_after
from interlink.telemetry import metrics

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 4
"""Open Messaging calls in total per send, the first included (429, 408, 5xx, timeouts)."""
DEFAULT_POLICY = RetryPolicy(max_attempts=DEFAULT_MAX_ATTEMPTS, base=0.5, cap=10.0)
"""Backoff for Open Messaging calls: full jitter from 0.5 s, capped at 10 s; a ``Retry-After`` up
to 120 s is honoured exactly."""
DEFAULT_RETRY_UNCERTAIN = True
"""Whether a POST that timed out after being sent is retried (see :class:`OpenMessagingClient`)."""


class _Unauthorized(Exception):
    """A 401 inside one attempt: re-authenticate once."""

    def __init__(self, error: PermanentError) -> None:
        super().__init__(str(error))
        self.error = error


class OpenMessagingClient:
    """Open Messaging inbound calls for one integration: messages, receipts, typing events.

    - ``session``: a ``requests.Session`` owned by this client.
    - ``api_base``: ``Settings.genesys_api_base(region)``, e.g. ``https://api.mypurecloud.ie``.
    - ``integration_id``: the tenant's Open Messaging integration.
    - ``token_provider``: returns the current access token (the token manager's cache).
    - ``on_unauthorized``: called with a token Genesys answered 401 to, so the token manager
      drops it; the next ``token_provider()`` must then give a fresh one.
    - ``timeout``: (connect, read) seconds per request (``DEFAULT_TIMEOUT``).
    - ``sleep``: waits between retries (``time.sleep``, which yields under gevent).
    - ``policy``: retry schedule (``DEFAULT_POLICY``: ``DEFAULT_MAX_ATTEMPTS`` calls).
    - ``pacer``: if given, every HTTP request first takes a slot (``genesys_pacer()`` per token).
    - ``retry_uncertain``: whether to retry a POST that timed out after it was sent
      (``DEFAULT_RETRY_UNCERTAIN``).

    What each call does on failure:
    - 401: ``on_unauthorized(token)``, then one more try with ``token_provider()``; a second 401
      raises :class:`AuthError`. Errors of ``token_provider`` itself propagate unchanged.
    - 429: waits ``Retry-After`` (or the backoff) and retries; 408, 5xx, connection failures and
      timeouts: backoff with full jitter and retry. Out of attempts → :class:`TransientError`.
    - other 4xx → :class:`PermanentError` with Genesys's ``code`` (``missing.open.channel.date``,
      ``invalid.value``, ``request.entity.too.large``, ...), no retry.

    The duplicate risk, and the choice made: a read timeout means Genesys may have accepted the
    POST. Genesys offers no idempotency key and does not document deduplicating
    ``channel.messageId`` (we send the wamid there, so it could). Retrying (the default) gives
    at-least-once: at worst the agent sees a customer message twice. Not retrying could lose the
    message, which "nothing lost" forbids. Receipts and typing events are harmless to repeat.
    With ``retry_uncertain=False`` such a timeout on :meth:`send_inbound` raises
    :class:`SendUncertain` instead (receipts and events are always retried).
    """

    def __init__(
        self,
        session: requests.Session,
        api_base: str,
        integration_id: str,
        token_provider: Callable[[], str],
        on_unauthorized: Callable[[str], None],
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        policy: RetryPolicy = DEFAULT_POLICY,
        pacer: Pacer | None = None,
        retry_uncertain: bool = DEFAULT_RETRY_UNCERTAIN,
    ) -> None:
        self.session = session
        self.api_base = api_base.rstrip("/")
        self.integration_id = integration_id
        self._token_provider = token_provider
        self._on_unauthorized = on_unauthorized
        self.timeout = timeout
        self._sleep = sleep
        self.policy = policy
        self.pacer = pacer
        self.retry_uncertain = retry_uncertain

    def __repr__(self) -> str:
        return f"OpenMessagingClient({self.api_base!r}, integration_id={self.integration_id!r})"

    def url(self, kind: str) -> str:
        """``{api_base}/api/v2/conversations/messages/{integrationId}/inbound/open/{kind}``."""
        return (
            f"{self.api_base}/api/v2/conversations/messages/{self.integration_id}"
            f"/inbound/open/{kind}"
        )

    def send_inbound(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Post a customer message (``OpenInboundNormalizedMessage``); returns Genesys's
        normalized message (``id``, ``conversationId`` when prefetched, ...)."""
        return self._post("message", body)

    def send_structured_response(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Post the user's answer to a quick reply (``OpenInboundStructuredResponseMessage``:
        ``channel``, ``buttonResponse {type, text, payload}``) to ``structured/response``.
        No ``prefetchConversationId``: it is documented for the message call only, and the
        conversation is already known from the message that opened it."""
        return self._post("structured/response", body)

    def send_receipt(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Post a ``Delivered``/``Failed`` receipt for an agent message. The returned receipt
        can itself say ``Failed`` (with reasons) on HTTP success: callers check it."""
        return self._post("receipt", body)

    def send_event(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Post a typing event (``{"channel": {...}, "events": [{"eventType": "Typing"}]}``)."""
        return self._post("event", body)

    def get_integration(self) -> dict[str, Any]:
        """``GET {api_base}/api/v2/conversations/messaging/integrations/open/{integrationId}``,
        once, with the current token: the integration (``id``, ``name``, ``status``,
        ``createStatus``, ...). :class:`AuthError` for a 401, :class:`PermanentError` for other
        refusals (404 ``not.found``), :class:`TransientError` for network failures and 5xx."""
        url = (
            f"{self.api_base}/api/v2/conversations/messaging/integrations/open/"
            f"{self.integration_id}"
        )
        token = self._token_provider()
        try:
            response = self.session.get(
                url,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise TransientError(f"integration lookup failed: {type(exc).__name__}") from exc
        cid = correlation_id(response)
        status = response.status_code
        if status == 200:
            result = json_body(response)
            return result if isinstance(result, dict) else {}
        code, message = _api_error(json_body(response), response.text)
        message = scrub(message, token)
        if status == 401:
            raise AuthError(status, code, message, correlation_id=cid)
        if status in RETRY_STATUSES:
            raise TransientError(
                f"integration lookup answered {status}: {message}",
                status=status,
                correlation_id=cid,
            )
        raise PermanentError(status, code, message, correlation_id=cid)

    def _post(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        url = self.url(kind)
        if kind == "message":
            # Without it Genesys answers without ``conversationId`` and the conversation → tenant
            # map the Genesys webhook routes by stays empty.
            url += "?prefetchConversationId=true"
        reauthenticated = False

        def attempt() -> dict[str, Any]:
            nonlocal reauthenticated
            token = self._token_provider()
            try:
                return self._post_once(url, kind, body, token)
            except _Unauthorized as unauthorized:
                if reauthenticated:
                    raise AuthError(
                        401,
                        unauthorized.error.code,
                        unauthorized.error.message,
                        correlation_id=unauthorized.error.correlation_id,
                    ) from None
                reauthenticated = True
                log.info(
                    "genesys answered 401; refreshing the token once",
                    extra={"correlation_id": unauthorized.error.correlation_id},
                )
                self._on_unauthorized(token)
                token = self._token_provider()
                try:
                    return self._post_once(url, kind, body, token)
                except _Unauthorized as again:
                    raise AuthError(
                        401,
                        again.error.code,
                        f"a fresh token was refused too: {again.error.message}",
                        correlation_id=again.error.correlation_id,
                    ) from None

        return self.policy.run(attempt, sleep=self._sleep)

    def _post_once(
        self, url: str, kind: str, body: Mapping[str, Any], token: str
    ) -> dict[str, Any]:
        if self.pacer is not None:
            self.pacer.acquire()
        started = time.monotonic()
        try:
            response = self.session.post(
                url,
                json=body,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            metrics.provider_request("genesys", started, None)
            name = type(exc).__name__
            if not self.retry_uncertain and kind in _CUSTOMER_CONTENT and not request_not_sent(exc):
                raise SendUncertain(
                    f"inbound {kind} to Genesys: {name}, may have been applied"
                ) from exc
            raise TransientError(f"inbound {kind} to Genesys failed: {name}") from exc
        metrics.provider_request("genesys", started, response.status_code)
        cid = correlation_id(response)
        status = response.status_code
        if 200 <= status < 300:
            log.debug("genesys %s accepted", kind, extra={"status": status, "correlation_id": cid})
            result = json_body(response)
            return result if isinstance(result, dict) else {}
        code, message = _api_error(json_body(response), response.text)
        message = scrub(message, token)
        if status == 401:
            raise _Unauthorized(PermanentError(status, code, message, correlation_id=cid))
        if status in RETRY_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            log.warning(
                "genesys %s answered %s",
                kind,
                status,
                extra={"code": code, "retry_after": retry_after, "correlation_id": cid},
            )
            raise TransientError(
                f"inbound {kind} answered {status} {code or 'error'}: {message}",
                retry_after=retry_after,
                status=status,
                correlation_id=cid,
            )
        log.warning(
            "genesys refused %s",
            kind,
            extra={"status": status, "code": code, "correlation_id": cid},
        )
        raise PermanentError(status, code, message, correlation_id=cid)


_CUSTOMER_CONTENT = ("message", "structured/response")
"""Calls that put something in front of the agent: a repeat shows twice (see the class)."""


def _api_error(body: Any, raw: str) -> tuple[str | None, str]:
    """Genesys's ``ErrorBody``: ``{"message", "code", "status", "contextId", ...}``."""
    if isinstance(body, dict):
        code = body.get("code")
        message = body.get("message") or code or "no message"
        return (str(code) if code else None), str(message)
    return None, (raw or "empty body").strip()
