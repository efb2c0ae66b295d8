"""The durable inbox: webhooks append entries (:class:`Inbox`), the owner shard reads them and
acknowledges each once its effect is done (:class:`InboxReader`); one :class:`Entry` type from
the webhook to the actor."""

from interlink.inbox.accept import BACKLOGGED, DUPLICATE, NEW, Inbox, InboxUnavailable
from interlink.inbox.entry import Entry, Kind
from interlink.inbox.reader import InboxReader

__all__ = [
    "BACKLOGGED",
    "DUPLICATE",
    "NEW",
    "Entry",
    "Inbox",
    "InboxReader",
    "InboxUnavailable",
    "Kind",
]
