"""Thin HTTP clients for Genesys Cloud and Meta's Graph API, with retry and pacing parts.

The public surface is re-exported here; the modules hold the defaults as named constants.
"""

from interlink.providers.errors import (
    AuthError,
    ForbiddenFetch,
    MetaError,
    PermanentError,
    ProviderError,
    SendUncertain,
    TooLarge,
    TransientError,
)
from interlink.providers.genesys import (
    OpenMessagingClient,
    Token,
    download_attachment,
    fetch_token,
    genesys_download_hosts,
)
from interlink.providers.meta import GraphClient, MediaInfo, send_with_retry
from interlink.providers.pacing import (
    KeyedPacer,
    Pacer,
    genesys_pacer,
    meta_number_pacer,
    pair_pacer,
)
from interlink.providers.retry import RetryPolicy, backoff, parse_retry_after

__all__ = [
    "AuthError",
    "ForbiddenFetch",
    "GraphClient",
    "KeyedPacer",
    "MediaInfo",
    "MetaError",
    "OpenMessagingClient",
    "Pacer",
    "PermanentError",
    "ProviderError",
    "RetryPolicy",
    "SendUncertain",
    "Token",
    "TooLarge",
    "TransientError",
    "backoff",
    "download_attachment",
    "fetch_token",
    "genesys_download_hosts",
    "genesys_pacer",
    "meta_number_pacer",
    "pair_pacer",
    "parse_retry_after",
    "send_with_retry",
]
