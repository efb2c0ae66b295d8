"""What can go wrong when talking to Genesys or Meta, sorted by what the caller should do next.

Every exception here is an ordinary ``Exception`` (never a ``BaseException``) and its ``str()`` and
``repr()`` never carry a secret: messages are built from status codes, provider error codes and
the providers' own error text, scrubbed of the credentials the request used. Correlation ids
(Genesys ``ININ-Correlation-Id``, Meta ``fbtrace_id``) are kept so that a log line can be matched
with the provider's support.

- :class:`TransientError` — may succeed later; ``retry_after`` (seconds) when the provider said so.
- :class:`PermanentError` — the provider refused this request; retrying the same request fails the
  same way. :class:`AuthError`, :class:`ForbiddenFetch` and :class:`TooLarge` are special cases.
- :class:`SendUncertain` — the request may or may not have been applied (a timeout after it was
  sent); retrying may duplicate it. The caller decides.
- :class:`MetaError` — a Graph API error response, classified by :attr:`MetaError.kind`.
"""

from __future__ import annotations

from typing import Literal

import requests
import urllib3.exceptions

MAX_TEXT = 300
"""Provider error text is cut to this many characters: it ends up in log lines."""


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` with every occurrence of each secret replaced by ``****``, cut to ``MAX_TEXT``.

    Providers do not echo credentials in error text as far as we know; this makes sure of it.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "****")
    return text[:MAX_TEXT]


def request_not_sent(exc: BaseException) -> bool:
    """True only when a ``requests`` failure certainly happened before the request left us.

    That is a connection that could not be made (DNS failure, refused, connect timeout): urllib3
    reports it as ``MaxRetryError`` whose reason is a ``NewConnectionError`` or
    ``ConnectTimeoutError``. Everything else, including ``requests.ConnectionError`` from a
    connection dropped mid-exchange ("Connection aborted", a stale keep-alive socket) and every
    read timeout, may come after the server got the request: ``False``.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError) or not exc.args:
        return False
    reason = getattr(exc.args[0], "reason", None)
    return isinstance(
        reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
    )


class ProviderError(Exception):
    """Base of every error raised by ``interlink.providers``.

    ``correlation_id`` is the provider's request id when the response carried one.
    """

    def __init__(self, message: str, *, correlation_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.correlation_id = correlation_id

    def __str__(self) -> str:
        if self.correlation_id:
            return f"{self.message} (correlation id {self.correlation_id})"
        return self.message


class TransientError(ProviderError):
    """The call failed in a way that may succeed later: 408/429/5xx, a timeout, a refused connection.

    ``retry_after`` is the delay the provider asked for (``Retry-After``), in seconds, or ``None``.
    ``status`` is the HTTP status, ``None`` when no response came back. Raised by the clients once
    their own retries are exhausted (or immediately, for calls that do not retry): the caller keeps
    the work (durable inbox) and tries again later.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(message, correlation_id=correlation_id)
        self.retry_after = retry_after
        self.status = status

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, "
            f"retry_after={self.retry_after!r})"
        )


class PermanentError(ProviderError):
    """The provider refused the request itself: sending it again fails again.

    ``status`` is the HTTP status (``None`` when the refusal is ours, e.g. :class:`ForbiddenFetch`),
    ``code`` the provider's machine-readable code (Genesys ``code`` such as
    ``missing.open.channel.date``), ``message`` its human text. The caller dead-letters the work
    or reports it as failed (a Genesys ``Failed`` receipt); it does not retry.
    """

    def __init__(
        self,
        status: int | None,
        code: str | None,
        message: str,
        *,
        correlation_id: str | None = None,
    ) -> None:
        text = f"{status or '-'} {code or 'error'}: {message}"
        super().__init__(text, correlation_id=correlation_id)
        self.status = status
        self.code = code
        self.message = message

    def __str__(self) -> str:
        text = f"{self.status or '-'} {self.code or 'error'}: {self.message}"
        if self.correlation_id:
            return f"{text} (correlation id {self.correlation_id})"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status!r}, {self.code!r}, {self.message!r})"


class AuthError(PermanentError):
    """The credentials were rejected (bad client id/secret, revoked client, missing role).

    Nothing sent with these credentials will work until the tenant's configuration changes:
    callers keep the work and mark the tenant degraded rather than dead-lettering each message.
    Catch it before :class:`PermanentError`.
    """


class ForbiddenFetch(PermanentError):
    """A URL named by a payload points outside the hosts interlink may fetch from (the rules of
    :mod:`interlink.providers.fetch_policy`). Nothing was requested."""

    def __init__(self, message: str) -> None:
        super().__init__(None, "forbidden.fetch", message)


class TooLarge(PermanentError):
    """A download exceeded its ``max_bytes``; it was abandoned (nothing partial is returned)."""

    def __init__(self, limit: int, status: int | None = None) -> None:
        super().__init__(status, "too.large", f"body larger than {limit} bytes")
        self.limit = limit


class SendUncertain(ProviderError):
    """The request went out but no answer came back (read timeout, connection dropped mid-way).

    The provider may have applied it. Neither API offers an idempotency key, so a blind retry can
    duplicate a message: the caller decides (e.g. retry an inbound Genesys message, whose
    duplicate an agent can ignore, but report an outbound WhatsApp message as uncertain).
    """


MetaErrorKind = Literal["retry", "pair_rate", "fatal"]

META_RETRY_CODES = frozenset({2, 4, 80007, 130429, 131000, 131016, 131057, 133004})
"""Graph error codes Meta says can succeed later
(https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes): service down (2,
131016, 133004), call-rate limits (4, 80007), throughput (130429), unknown (131000, retried a few
times only), number in throughput upgrade (131057, about a minute)."""

META_PAIR_RATE_CODE = 131056
"""Too many messages to one recipient: retry *that recipient* after 4^X seconds."""

META_AUTH_CODES = frozenset({0, 190})
"""The access token is invalid or expired: an operator must give the tenant a new one."""


def meta_error_kind(code: int | None, http_status: int | None) -> MetaErrorKind:
    """``retry`` for codes in ``META_RETRY_CODES`` and for 5xx (or a 429 without a code);
    ``pair_rate`` for 131056; ``fatal`` for the rest (131047 outside the 24 h window, 131026
    undeliverable, 190 token, 100 invalid parameter, ...)."""
    if code == META_PAIR_RATE_CODE:
        return "pair_rate"
    if code in META_RETRY_CODES:
        return "retry"
    if code is None and http_status is not None and (http_status >= 500 or http_status == 429):
        return "retry"
    if http_status is not None and http_status >= 500 and not _is_config_error(code):
        # Meta marks real outages with a 5xx even when the code is unfamiliar.
        return "retry"
    return "fatal"


def _is_config_error(code: int | None) -> bool:
    # Code 3 (capability) arrives with HTTP 500 but no retry will grant the capability.
    return code in META_AUTH_CODES or code == 3 or (code is not None and 200 <= code <= 299)


class MetaError(ProviderError):
    """An error answer from the Graph API (``{"error": {...}}``), or a non-JSON error status.

    ``code``/``subcode`` are Meta's numeric codes (``None`` when the body was not Graph's JSON),
    ``title`` Meta's ``message``, ``details`` its ``error_data.details``, ``http_status`` the
    status, ``fbtrace_id`` Meta's trace id (also ``correlation_id``), ``retry_after`` a
    ``Retry-After`` if one came. :attr:`kind` says what to do: ``retry`` (back off and try again),
    ``pair_rate`` (slow down for this recipient only: ``KeyedPacer.penalize``), ``fatal``
    (report the failure; :attr:`is_auth_error` when the token itself was refused).
    """

    def __init__(
        self,
        code: int | None,
        subcode: int | None,
        title: str,
        details: str | None,
        http_status: int | None,
        *,
        fbtrace_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        text = f"Graph error {code if code is not None else '-'} (HTTP {http_status}): {title}"
        if details:
            text += f" - {details}"
        super().__init__(text, correlation_id=fbtrace_id)
        self.code = code
        self.subcode = subcode
        self.title = title
        self.details = details
        self.http_status = http_status
        self.fbtrace_id = fbtrace_id
        self.retry_after = retry_after
        self.kind: MetaErrorKind = meta_error_kind(code, http_status)

    @property
    def is_auth_error(self) -> bool:
        return self.code in META_AUTH_CODES or (self.code is None and self.http_status == 401)

    def __repr__(self) -> str:
        return (
            f"MetaError(code={self.code!r}, subcode={self.subcode!r}, title={self.title!r}, "
            f"http_status={self.http_status!r}, kind={self.kind!r})"
        )
