"""Control from any shard: a control message for a tenant another shard owns is relayed to that
shard through Redis, and the view of every live shard can be gathered from any one of them.

Each shard
- beats: its heartbeat key (:func:`keys.shard_alive`) is set again every ``HEARTBEAT_INTERVAL``
  seconds and expires ``HEARTBEAT_TTL`` seconds after the last beat, so a shard that died stops
  being "live" by itself; its id is also in the set of known shards (:func:`keys.shard_ids`);
- listens: it ``BLPOP``s its request list (:func:`keys.control_requests`) and answers each
  request in a greenlet of its own, pushing the reply onto that request's reply list
  (:func:`keys.control_reply`), which expires.

A relaying shard pushes a request onto the owner's list and ``BLPOP``s the reply list until the
deadline; a request still queued when its deadline passed is dropped by the owner unanswered
(the relaying shard has answered 504 by then). Requests and replies are msgpack maps. Every key
of one shard carries its id as a hash tag, like its inbox, so Redis Cluster keeps a shard's
requests and replies in one slot.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.pool
import msgpack
import redis

from interlink.store import keys

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 8.0  # seconds a relaying shard waits for the owner's reply
HEARTBEAT_INTERVAL = 2.0
HEARTBEAT_TTL = 6.0  # three missed beats: the shard counts as gone
POLL = 1.0  # seconds one BLPOP waits (kept below the connections' socket timeout)
REQUEST_TTL = 60.0  # a request list nobody reads (its shard is down) expires
REPLY_TTL = 60.0
MAX_CONCURRENT = 32  # relayed requests one shard answers at a time
REQUEST_ID = re.compile(r"[0-9a-f]{32}")

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class RelayTimeout(Exception):
    """The shard asked did not answer in time."""

    def __init__(self, shard_id: int, timeout: float) -> None:
        super().__init__(f"shard {shard_id} did not answer within {timeout:g} s")
        self.shard_id = shard_id
        self.timeout = timeout


class OwnerDown(RelayTimeout):
    """The shard asked has no live heartbeat: nobody would read the request."""

    def __init__(self, shard_id: int) -> None:
        Exception.__init__(self, f"shard {shard_id} is down (no heartbeat)")
        self.shard_id = shard_id
        self.timeout = 0.0


def _now_ms() -> int:
    return int(time.time() * 1000)


class ControlRelay:
    """One shard's side of the relay: its heartbeat, its listener, and asking other shards.

    ``handler(request) -> reply`` answers a request relayed to this shard (it runs in a greenlet
    of the listener's pool; the relay transports both maps and adds nothing to them)."""

    def __init__(
        self,
        client: redis.Redis,
        shard_id: int,
        shard_count: int,
        handler: Handler,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        heartbeat_ttl: float = HEARTBEAT_TTL,
    ) -> None:
        self.redis = client
        self.shard_id = shard_id
        self.shard_count = shard_count
        self.handler = handler
        self.timeout = timeout
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_ttl = heartbeat_ttl
        self._pool = gevent.pool.Pool(MAX_CONCURRENT)
        self._greenlets: list[gevent.Greenlet] = []

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            self.beat()  # at once: the other shards ask only a shard that beats
        except redis.RedisError:
            pass  # the loop beats again
        self._greenlets = [gevent.spawn(self._beat_loop), gevent.spawn(self._listen_loop)]

    def stop(self, timeout: float = 2.0) -> None:
        """Stop listening (requests being answered get ``timeout`` to finish) and say so: other
        shards stop counting this one as live at once, not when its heartbeat expires."""
        for greenlet in self._greenlets:
            greenlet.kill(block=True, timeout=timeout)
        self._pool.join(timeout=timeout)
        self._pool.kill(block=False)
        try:
            self.redis.delete(keys.shard_alive(self.shard_id))
        except redis.RedisError:
            pass  # it expires by itself

    # -- heartbeat ------------------------------------------------------------------------------
    def beat(self) -> None:
        value = json.dumps({"id": self.shard_id, "count": self.shard_count})
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.shard_alive(self.shard_id), value, px=int(self.heartbeat_ttl * 1000))
        pipe.sadd(keys.shard_ids(), self.shard_id)
        pipe.execute()

    def _beat_loop(self) -> None:
        while True:
            try:
                self.beat()
            except redis.RedisError as exc:
                log.warning("shard heartbeat failed", extra={"error": type(exc).__name__})
            gevent.sleep(self.heartbeat_interval)

    def live_shards(self) -> list[int]:
        """The shards whose heartbeat has not expired, in id order (this one included once it
        has beaten). Ids seen once and gone for good, beyond the shard count, are forgotten."""
        known = {int(i) for i in self.redis.smembers(keys.shard_ids())}
        candidates = sorted(known | set(range(self.shard_count)))
        pipe = self.redis.pipeline(transaction=False)
        for shard_id in candidates:
            pipe.exists(keys.shard_alive(shard_id))
        alive = pipe.execute()
        gone = [
            s for s, up in zip(candidates, alive, strict=True) if not up and s >= self.shard_count
        ]
        if gone:
            self.redis.srem(keys.shard_ids(), *gone)
        return [s for s, up in zip(candidates, alive, strict=True) if up]

    # -- answering ------------------------------------------------------------------------------
    def _listen_loop(self) -> None:
        backoff = 0.1
        source = keys.control_requests(self.shard_id)
        while True:
            try:
                popped = self.redis.blpop([source], timeout=POLL)
                backoff = 0.1
            except redis.RedisError as exc:
                log.warning(
                    "control relay read failed; retrying",
                    extra={"error": type(exc).__name__, "delay": backoff},
                )
                gevent.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if popped:
                self._pool.spawn(self._answer, popped[1])

    def _answer(self, raw: bytes) -> None:
        try:
            request = msgpack.unpackb(raw, raw=False, strict_map_key=True)
            request_id = request.pop("id")
            deadline = int(request.pop("deadline"))
            if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
                raise ValueError("bad request id")
        except (ValueError, KeyError, TypeError, AttributeError, msgpack.UnpackException):
            log.warning("malformed relayed control request dropped")
            return
        if _now_ms() > deadline:
            log.info(
                "relayed control request expired before it was read",
                extra={"from_shard": request.get("from")},
            )
            return
        reply = self.handler(request)
        # The reply list is named after the request id, under this shard's own hash tag: a
        # request cannot make this shard write any other key.
        target = keys.control_reply(self.shard_id, request_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(target, msgpack.packb(reply, use_bin_type=True))
        pipe.pexpire(target, int(REPLY_TTL * 1000))
        try:
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("relayed control reply not written", extra={"error": type(exc).__name__})

    # -- asking ---------------------------------------------------------------------------------
    def ask(
        self, shard_id: int, request: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """``shard_id``'s reply to ``request``; :class:`RelayTimeout` past ``timeout`` (default:
        the relay's), :class:`OwnerDown` at once when ``shard_id`` has no heartbeat (requests to
        a shard that is down would only pile up), ``redis.RedisError`` when the store does not
        answer. A request not answered in time is taken back from the owner's list: unless the
        owner started it already, it never runs."""
        timeout = self.timeout if timeout is None else timeout
        request_id = secrets.token_hex(16)
        started = time.monotonic()
        payload = msgpack.packb(
            {
                **request,
                "id": request_id,
                "from": self.shard_id,
                "deadline": _now_ms() + int(timeout * 1000),
            },
            use_bin_type=True,
        )
        target = keys.control_requests(shard_id)
        reply_key = keys.control_reply(shard_id, request_id)
        if shard_id != self.shard_id and not self.redis.exists(keys.shard_alive(shard_id)):
            raise OwnerDown(shard_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(target, payload)
        pipe.pexpire(target, int(REQUEST_TTL * 1000))
        pipe.execute()
        while True:
            left = timeout - (time.monotonic() - started)
            if left <= 0:
                pipe = self.redis.pipeline(transaction=False)
                pipe.lrem(target, 1, payload)  # not started later, after the asker gave up
                pipe.delete(reply_key)  # a late reply would only wait to expire
                pipe.execute()
                raise RelayTimeout(shard_id, timeout)
            popped = self.redis.blpop([reply_key], timeout=max(0.01, min(left, POLL)))
            if popped:
                reply: dict[str, Any] = msgpack.unpackb(popped[1], raw=False)
                return reply

    def gather(
        self, request: dict[str, Any], local: Handler
    ) -> list[tuple[int, dict[str, Any] | RelayTimeout]]:
        """Every live shard's reply to ``request``, asked in parallel (this shard through
        ``local``), in shard order; a shard that does not answer in time gives its
        :class:`RelayTimeout`."""
        shards = self.live_shards()
        if self.shard_id not in shards:
            shards = sorted([*shards, self.shard_id])

        def one(shard_id: int) -> dict[str, Any] | RelayTimeout:
            if shard_id == self.shard_id:
                return local(request)
            try:
                return self.ask(shard_id, request)
            except RelayTimeout as exc:
                return exc

        jobs = [gevent.spawn(one, shard_id) for shard_id in shards]
        gevent.joinall(jobs, raise_error=True)
        return [(shard_id, job.value) for shard_id, job in zip(shards, jobs, strict=True)]
