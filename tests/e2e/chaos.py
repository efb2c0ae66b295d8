"""A steady two-way load that behaves like the providers (redelivering what was not acknowledged),
and the counts that say whether anything was lost, duplicated or reordered.

Used by the end-to-end guarantee tests (short runs) and by ``make chaos`` (long runs).
"""

from __future__ import annotations

import itertools
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent

from interlink.sim.driver import WhatsAppUser
from tests.e2e.world import Tenant, World
from tests.support.shard import ShardProcess

REDELIVERY_DELAY = 0.3


@dataclass
class Conversation:
    tenant: Tenant
    user: WhatsAppUser
    sent_in: list[str] = field(default_factory=list)  # user -> agent texts acknowledged by us
    sent_out: list[str] = field(default_factory=list)  # agent -> user texts acknowledged by us


@dataclass
class Counts:
    sent: int = 0
    acknowledged: int = 0
    delivered: int = 0
    duplicates: int = 0
    lost: int = 0
    out_of_order: int = 0
    redeliveries: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class Load:
    """``rate`` messages per second in total, alternating user and agent messages per conversation.
    Each message is redelivered until our webhook answers 2xx, as Meta and Genesys do.

    Keep each conversation's agent side under Meta's pair rate (a burst of 45, then one message
    per 6 s to one user): beyond it interlink paces the replies, correctly, but slowly.

    ``route()`` names the shard (its base URL) each webhook and each redelivery goes to, as a
    load balancer in front of a fleet would; by default the one the simulators are configured
    with."""

    def __init__(
        self,
        world: World,
        conversations: list[Conversation],
        rate: float,
        route: Callable[[], str] | None = None,
    ) -> None:
        self.world = world
        self.route = route
        self.conversations = conversations
        self.rate = rate
        self.counts = Counts()
        self._greenlets: list[gevent.Greenlet] = []
        self._stop = False
        self._seq = itertools.count()

    def start(self) -> None:
        # Every user writes first: agent replies need the 24-hour window open.
        for conversation in self.conversations:
            self._deliver(conversation, inbound=True)
        per_conversation = self.rate / len(self.conversations)
        self._greenlets = [gevent.spawn(self._run, c, per_conversation) for c in self.conversations]

    def stop(self) -> None:
        """Stop sending new messages; redeliveries of unacknowledged ones go on until done."""
        self._stop = True
        gevent.joinall(self._greenlets, timeout=120, raise_error=True)

    def _run(self, conversation: Conversation, rate: float) -> None:
        inbound = False  # the user wrote first (start): the agent answers, and so on
        while not self._stop:
            self._deliver(conversation, inbound=inbound)
            inbound = not inbound
            gevent.sleep(1 / rate)

    def _deliver(self, conversation: Conversation, *, inbound: bool) -> None:
        tenant, user = conversation.tenant, conversation.user
        label = f"{'u' if inbound else 'a'}-{user.wa_id}-{next(self._seq)}"
        self.counts.sent += 1
        state = self.world.state
        driver = state.user if inbound else state.agent
        path = "/webhooks/whatsapp" if inbound else "/webhooks/genesys"
        url = self.route() + path if self.route is not None else None
        if inbound:
            delivery = state.user.say(
                tenant.phone_number_id, user, "text", body=label, webhook_url=url
            )
        else:
            delivery = state.agent.send(
                tenant.integration_id, str(user.wa_id), text=label, webhook_url=url
            )
        while not 200 <= delivery.status < 300:
            # The same message again, as the providers redeliver: a first attempt that was
            # stored but not acknowledged (a 503, a dropped connection) is recognised.
            self.counts.redeliveries += 1
            gevent.sleep(REDELIVERY_DELAY)
            if self.route is not None:
                delivery.url = self.route() + path
            delivery = driver.redeliver(delivery)
        self.counts.acknowledged += 1
        (conversation.sent_in if inbound else conversation.sent_out).append(label)

    def arrived(self, conversation: Conversation) -> tuple[list[str], list[str]]:
        state = self.world.state
        tenant, user = conversation.tenant, conversation.user
        inbound = [
            m.body.get("text", "")
            for m in state.genesys.messages_from(tenant.integration_id, user.wa_id)
        ]
        outbound = [
            s.body["text"]["body"]
            for s in state.meta.sent_to(tenant.phone_number_id, user.wa_id)
            if s.type == "text"
        ]
        return inbound, outbound

    def complete(self) -> bool:
        for conversation in self.conversations:
            inbound, outbound = self.arrived(conversation)
            if not set(conversation.sent_in) <= set(inbound) or not set(
                conversation.sent_out
            ) <= set(outbound):
                return False
        return True

    def tally(self) -> Counts:
        counts = self.counts
        counts.delivered = counts.duplicates = counts.lost = counts.out_of_order = 0
        for conversation in self.conversations:
            inbound, outbound = self.arrived(conversation)
            for expected, got in (
                (conversation.sent_in, inbound),
                (conversation.sent_out, outbound),
            ):
                seen = Counter(got)
                counts.delivered += sum(1 for label in expected if seen[label])
                counts.lost += sum(1 for label in expected if not seen[label])
                counts.duplicates += sum(n - 1 for n in seen.values() if n > 1)
                counts.duplicates += sum(
                    n for label, n in seen.items() if label not in set(expected)
                )
                firsts = list(dict.fromkeys(got))
                order = {label: i for i, label in enumerate(expected)}
                ranks = [order[label] for label in firsts if label in order]
                counts.out_of_order += sum(1 for a, b in itertools.pairwise(ranks) if b < a)
        return counts


def wait_until(predicate: Callable[[], Any], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        gevent.sleep(0.2)
    return bool(predicate())


def repeats_announced(world: World) -> int:
    """Provider calls the shards made again after a crash hid their outcome, as they logged them:
    the only calls that may have been duplicated (README, "Guarantees")."""
    return sum(
        shard.log_text().count("provider call repeated after a crash") for shard in world.shards
    )


def add_shard(world: World, shard_id: int, count: int) -> ShardProcess:
    """A new shard process of the world's fleet (same store, keys and simulators), not started;
    stopped with the world and counted in its repeats."""
    env = {
        name: value
        for name, value in world.shards[0].env.items()
        if name not in ("INTERLINK_PORT", "INTERLINK_DATA_DIR", "INTERLINK_PUBLIC_URL")
    }
    shard = ShardProcess(
        world.shards[0].data_dir.parent / f"shard-{shard_id}",
        {**env, "INTERLINK_SHARD_ID": str(shard_id), "INTERLINK_SHARD_COUNT": str(count)},
    )
    shard.env["INTERLINK_PUBLIC_URL"] = shard.url
    world.shards.append(shard)
    return shard


def restart(shard: ShardProcess, count: int | None = None, *, sig: int = signal.SIGTERM) -> None:
    """Stop the shard (SIGTERM, or SIGKILL: a crash) and start it again, with ``count`` shards
    in its settings when given (a rolling change of the shard count)."""
    if shard.process is not None and shard.process.poll() is None:
        if sig == signal.SIGKILL:
            shard.kill()
        else:
            shard.stop(sig)
    if count is not None:
        shard.env["INTERLINK_SHARD_COUNT"] = str(count)
    shard.start()
