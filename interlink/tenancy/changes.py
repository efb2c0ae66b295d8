"""Hot reload: every shard hears of tenant changes on a Redis channel and applies them at once.

The admin API publishes ``{"tenantId", "version", "kind"}`` on ``keys.tenant_events()`` after each
committed change. Here each event drops the front end's cached view of that tenant and goes to the
supervisor, which passes it through the tenant actor's own mailbox (so messages before it finish
on the old configuration). Pub/sub forgets what it sent while we were not subscribed, so after
every subscription, the first one included, every cached tenant is dropped and every active tenant
reloads from its stored version: the shard serves webhooks and starts tenants before this
greenlet first subscribes, and a change committed in between would otherwise go unheard. The
front end's cache then lives a minute (``interlink.tenancy.directory``): only an event lost on a
connection that stays up waits that long.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import gevent
import redis

from interlink.store import keys

log = logging.getLogger(__name__)

POLL_TIMEOUT = 1.0
MAX_BACKOFF = 5.0


class ReloadListener:
    def __init__(
        self,
        client: redis.Redis,
        on_change: Callable[[str, int | None, str], None],
        on_resync: Callable[[], None],
    ) -> None:
        self.redis = client
        self.on_change = on_change
        self.on_resync = on_resync
        self._greenlet: gevent.Greenlet | None = None
        self.events = 0

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=2)

    def _run(self) -> None:
        backoff = 0.1
        first = True
        while True:
            pubsub = self.redis.pubsub()
            try:
                pubsub.subscribe(keys.tenant_events())
                while True:
                    message = pubsub.get_message(timeout=POLL_TIMEOUT)
                    if message is None:
                        continue
                    if message["type"] == "message":
                        self._handle(message)
                    elif message["type"] == "subscribe":
                        # Redis confirmed: every change from here on is heard. Resynchronise
                        # now, also the first time (what was read before may predate a change
                        # announced before), never before (a change in between would be lost).
                        if not first:
                            log.info("tenant events resubscribed; resynchronising")
                        first = False
                        backoff = 0.1
                        self.on_resync()
            except redis.RedisError as exc:
                log.warning(
                    "tenant events unavailable; retrying", extra={"error": type(exc).__name__}
                )
                gevent.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                try:
                    pubsub.close()
                except redis.RedisError:
                    pass

    def _handle(self, message: dict[str, Any]) -> None:
        try:
            event = json.loads(message["data"])
            tenant_id = str(event["tenantId"])
            version = event.get("version")
            kind = str(event.get("kind", "updated"))
        except (ValueError, KeyError, TypeError):
            log.warning("malformed tenant event ignored")
            return
        self.events += 1
        try:
            self.on_change(tenant_id, int(version) if isinstance(version, int) else None, kind)
        except Exception:
            log.exception("tenant event handler failed", extra={"tenant": tenant_id})
