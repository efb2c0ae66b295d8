"""Genesys Cloud: the client-credentials token (:mod:`.oauth`), Open Messaging inbound calls
(:mod:`.open_messaging`), agent attachments (:mod:`.downloads`).

Thin on purpose: these functions speak HTTP and classify failures; caching the token, deciding
what a failure means for a message and pacing across a tenant belong to the actors.

Failures (``interlink.providers.errors``): :class:`AuthError` credentials refused,
:class:`PermanentError` request refused (carries Genesys's ``code``), :class:`TransientError`
try again later (carries ``retry_after``), :class:`SendUncertain` may have been applied,
:class:`ForbiddenFetch` / :class:`TooLarge` for downloads.
"""

from interlink.providers.genesys.downloads import (
    DownloadHosts,
    download_attachment,
    genesys_download_hosts,
)
from interlink.providers.genesys.oauth import Token, fetch_token
from interlink.providers.genesys.open_messaging import OpenMessagingClient

__all__ = [
    "DownloadHosts",
    "OpenMessagingClient",
    "Token",
    "download_attachment",
    "fetch_token",
    "genesys_download_hosts",
]
