"""The messages actors exchange. Immutable: pykka does not copy messages between actors.

The work itself arrives as :class:`interlink.inbox.Entry`, the durable inbox's own type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pykka

# The operator's commands (``POST /control/...``, ``interlink ctl``): the message types a tenant
# actor answers, and those the supervisor answers for the whole shard. Anything else is refused
# at the door.
TENANT_MESSAGES = (
    "ping",
    "stats",
    "reload",
    "stop",
    "start",
    "invalidate-token",
    "replay-dead-letters",
    "dead-letters",
    "drop-dead-letters",
)
SHARD_MESSAGES = ("ping", "stats", "reload-all", "drain")


@dataclass(frozen=True, slots=True)
class Control:
    """An operator's admin message (``POST /control/...``); the reply is a JSON-able dict."""

    type: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TenantChanged:
    """The tenant's stored configuration changed (hot reload) or was deleted."""

    tenant_id: str
    version: int | None
    kind: str = "updated"


@dataclass(frozen=True, slots=True)
class GetTenant:
    """Ask the supervisor for a tenant's actor ref (activating it when ``activate``)."""

    tenant_id: str
    activate: bool = True


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Ask for the tree as ``/control/actors`` shows it."""


@dataclass(frozen=True, slots=True)
class ChildStopped:
    """Sent by the watcher when a child actor stopped, however it stopped."""

    key: str
    ref: pykka.ActorRef[Any]


@dataclass(frozen=True, slots=True)
class RestartChild:
    key: str


@dataclass(frozen=True, slots=True)
class Sweep:
    """Time to retire idle conversation actors."""


@dataclass(frozen=True, slots=True)
class ConfigChanged:
    """Sent by a tenant actor to its children: use this configuration from now on."""

    config: Any  # interlink.tenancy.config.TenantConfig
    credentials_changed: bool = False  # either side's
    genesys_login_changed: bool = False  # the Genesys client: the cached token must go


@dataclass(frozen=True, slots=True)
class TenantControl:
    """An operator message for one tenant, first seen by the supervisor (``stop``/``start`` are
    its to do; for the others it answers None and the caller asks the tenant actor)."""

    tenant_id: str
    control: Control


@dataclass(frozen=True, slots=True)
class Salvaged:
    """The messages a crashed child had not started yet, handed back to its parent in order,
    so that a crash costs at most the message being handled when it happened."""

    key: str
    messages: tuple[Any, ...]
