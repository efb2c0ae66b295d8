"""What a tenant tree is made of, in one value the supervisor hands to every tenant actor.

Tests swap a class (say, a conversation that crashes on a given message) without touching the
runtime; production uses the defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import requests

from interlink.actors.supervision import RestartPolicy
from interlink.tenancy.config import TenantConfig

DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_STOP_TIMEOUT = 5.0


def _no_ack(work: Any) -> None:
    """Without a durable inbox (unit tests of the tree) there is nothing to acknowledge."""


def _no_holds() -> Collection[str]:
    return ()


def _no_rescan() -> None:
    """Without a durable inbox there is nothing to offer again."""


@dataclass(frozen=True)
class TreeSpec:
    load_config: Callable[[str], TenantConfig | None]
    tenant: type[Any] | None = None  # default: TenantActor
    conversation: type[Any] | None = None  # default: Conversation
    policy: RestartPolicy = RestartPolicy()  # noqa: RUF009 - frozen, shared safely
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    # The rest of the shard (settings, Redis, inbox ...), for actors that do real work.
    services: Any = None
    # Called once an inbox entry's effect is done, so the durable inbox forgets it.
    ack: Callable[[Any], None] = _no_ack
    # ``commit(entry, write)``: store the writes ``write`` adds to a pipeline (None: none), then
    # acknowledge the entry, in a round trip shared with other entries'; returns once stored.
    # None (no durable inbox): the conversation stores its writes itself, then calls ``ack``.
    commit: Callable[[Any, Callable[[Any], None] | None], None] | None = None
    # The tenants an operator stopped (interlink.store.holds), read when the supervisor starts.
    held: Callable[[], Collection[str]] = _no_holds
    # An inbox entry refused for now (a held tenant): the inbox offers it again at its next
    # rescan, instead of waiting for it as for work handed over.
    release: Callable[[Any], None] = _no_ack
    # Ask the durable inbox to offer its pending entries again soon (a held tenant was started).
    rescan: Callable[[], None] = _no_rescan


def http_session(spec: TreeSpec) -> requests.Session:
    """The shard's shared provider session (``Services.http``); without services (unit tests of
    the tree) the process's shared one."""
    if spec.services is not None:
        return spec.services.http
    from interlink.providers.session import shared_session

    return shared_session()


def first_config(spec: TreeSpec) -> Callable[[str], TenantConfig | None]:
    """How a tenant actor reads its configuration when it starts: through the shard's tenant
    directory (``Services.directory``) when ``load_config`` is the shard's own store, else
    ``load_config`` (tests that hand a tree their own configuration).

    The webhook that accepted a tenant's first message has just loaded and decrypted the same
    configuration into the directory; reading Redis again would cost that tenant a round trip
    and five AES-GCM decryptions more. Hot reload is unchanged: a change event drops the
    directory's entry before it reaches the supervisor (``Shard._tenant_changed``), so a tree
    that starts after it reads the new version, and one started before it gets the change
    through its mailbox, which reloads from Redis itself (``load_config``), never from here."""
    services = spec.services
    if services is not None and spec.load_config == services.tenants.load_config:
        directory_config: Callable[[str], TenantConfig | None] = services.directory.config
        return directory_config
    return spec.load_config
