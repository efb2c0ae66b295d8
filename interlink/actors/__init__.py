"""The actor tree of a shard: Supervisor → TenantActor → Conversation*.

The tenant's Genesys token and its sends to WhatsApp are no actors: a conversation calls its
tenant's :class:`interlink.actors.token_manager.TokenManager` and
:class:`interlink.actors.whatsapp_sender.WhatsAppSender` in its own greenlet."""

from interlink.actors.messages import (
    Control,
    GetTenant,
    Snapshot,
    TenantChanged,
    TenantControl,
)
from interlink.actors.supervision import RestartPolicy
from interlink.actors.supervisor import Supervisor
from interlink.actors.tenant import TenantActor
from interlink.actors.tree import TreeSpec

__all__ = [
    "Control",
    "GetTenant",
    "RestartPolicy",
    "Snapshot",
    "Supervisor",
    "TenantActor",
    "TenantChanged",
    "TenantControl",
    "TreeSpec",
]
