"""What a conversation remembers between messages, in Redis (so its actor can retire when idle).

- the alias store: every WhatsApp identifier of a user (phone, BSUID) -> one Genesys participant;
- the conversation: when the user last wrote (24-hour window), their latest phone;
- the message map: a WhatsApp message id -> the agent's Genesys message id, the participant, and
  the delivery state reached (receipts never go backwards);
- "done" markers for each provider call, so a crash between a provider's success and the inbox
  acknowledgement does not repeat the call;
- the tenant's dead letters.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from interlink.store import keys
from interlink.store.dead_letters import DeadLetters
from interlink.telemetry.metrics import REPEATED_AFTER_CRASH

log = logging.getLogger(__name__)

ALIAS_TTL = 400 * 24 * 3600  # a user's identity outlives any conversation
CONVERSATION_TTL = 30 * 24 * 3600
MESSAGE_TTL = 30 * 24 * 3600  # statuses arrive within days; replies quote older messages rarely
DONE_TTL = 8 * 24 * 3600  # as long as a provider may redeliver (Meta: 7 days)

# Compare-and-set of a message's delivery state: two statuses of one message racing (through two
# routes, or a redelivery) cannot both send a receipt.
_ADVANCE = """
local current = redis.call('HGET', KEYS[1], 'state') or ''
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
return 1
"""


class ConversationStore:
    def __init__(self, client: redis.Redis, tenant_id: str) -> None:
        self.redis = client
        self.tenant_id = tenant_id
        self._advance = client.register_script(_ADVANCE)
        self._done: dict[str, str] = {}
        self._unsaved: dict[str, str] = {}
        self._begun: set[str] = set()  # steps this object started (its own retries are no repeat)

    # -- identity -------------------------------------------------------------------------------
    def known_alias(self, alias_keys: Sequence[str]) -> str | None:
        if not alias_keys:
            return None
        values = self.redis.mget([keys.alias(self.tenant_id, k) for k in alias_keys])
        return next((_text(v) for v in values if v), None)

    def user_wrote(
        self,
        participant: str,
        at: float,
        phone: str | None,
        aliases: Mapping[str, str],
        wamid: str | None = None,
    ) -> None:
        """The user wrote message ``wamid`` at ``at``: their aliases (kept if already taken) and
        the conversation's last inbound time, latest phone and last wamid, in one round trip."""
        key = keys.conversation(self.tenant_id, participant)
        fields: dict[Any, Any] = {"last_inbound": repr(at)}
        if phone:
            fields["phone"] = phone
        if wamid:
            fields["last_wamid"] = wamid
        pipe = self.redis.pipeline(transaction=False)
        for alias_key, owner in aliases.items():
            pipe.set(keys.alias(self.tenant_id, alias_key), owner, nx=True, ex=ALIAS_TTL)
        pipe.hset(key, mapping=fields)
        pipe.expire(key, CONVERSATION_TTL)
        pipe.execute()

    def last_wamid(self, participant: str) -> str | None:
        """The user's latest message to the business (what a typing indicator is shown on)."""
        value = self.redis.hget(keys.conversation(self.tenant_id, participant), "last_wamid")
        return value.decode() if isinstance(value, bytes) else value

    def state(self, participant: str) -> tuple[float | None, str | None]:
        """When the user last wrote (Unix seconds) and their latest phone."""
        last, phone = self.redis.hmget(
            keys.conversation(self.tenant_id, participant), ["last_inbound", "phone"]
        )
        return (float(last) if last else None, _text(phone))

    # -- messages -------------------------------------------------------------------------------
    def map_message(self, wamid: str, genesys_id: str, participant: str) -> None:
        key = keys.message_map(self.tenant_id, wamid)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping={"genesys": genesys_id, "participant": participant})
        pipe.expire(key, MESSAGE_TTL)
        pipe.execute()

    def mapped(self, wamid: str) -> tuple[str | None, str | None, str | None]:
        """The Genesys message id, the participant and the delivery state of ``wamid``."""
        genesys, participant, state = self.redis.hmget(
            keys.message_map(self.tenant_id, wamid), ["genesys", "participant", "state"]
        )
        return _text(genesys), _text(participant), _text(state)

    def advance(self, wamid: str, expected: str | None, new: str) -> bool:
        """Move the delivery state from ``expected`` to ``new``; False when someone else moved it."""
        result = self._advance(
            keys=[keys.message_map(self.tenant_id, wamid)], args=[expected or "", new]
        )
        return bool(result)

    # -- idempotence of provider calls -----------------------------------------------------------
    def start(self, step: str) -> bool:
        """Before a provider call: False when ``step`` already succeeded (skip it), else True.

        Steps marked done through this object are known here even when Redis was down at the
        time, so a retry of the same message never repeats a call that succeeded; their markers
        are written as soon as Redis answers.

        Also records that the call is being made. Finding that record from an earlier process
        means a crash came between a call and its "done" marker: the call may have succeeded, and
        making it again may duplicate it. That is logged (``repeated_after_crash``) so that every
        such duplicate can be accounted for; it is the one window the README documents.
        """
        if step in self._done:
            self._flush()
            return False
        # One round trip: is it done, and (marking it begun) was it begun before?
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(keys.dedupe(self.tenant_id, "done", step))
        pipe.set(keys.dedupe(self.tenant_id, "begun", step), "1", ex=DONE_TTL, get=True)
        done, previous = pipe.execute()
        if done:
            return False
        if previous is not None and step not in self._begun:
            log.warning(
                "provider call repeated after a crash",
                extra={"tenant": self.tenant_id, "step": step},
            )
            REPEATED_AFTER_CRASH.inc()
        self._begun.add(step)
        return True

    def mark_done(
        self, step: str, value: str = "1", *, genesys_conversation: str | None = None
    ) -> None:
        """``step`` succeeded (its result: ``value``). ``genesys_conversation``: the Genesys
        conversation it went to, remembered in the same round trip so that the Genesys webhook
        finds this tenant from it."""
        self._done[step] = value
        self._unsaved[step] = value
        self._flush(genesys_conversation)

    def _flush(self, genesys_conversation: str | None = None) -> None:
        if not self._unsaved:
            return
        pipe = self.redis.pipeline(transaction=False)
        for step, value in self._unsaved.items():
            pipe.set(keys.dedupe(self.tenant_id, "done", step), value, ex=DONE_TTL)
        if genesys_conversation:
            pipe.set(
                keys.genesys_conversation(genesys_conversation),
                self.tenant_id,
                ex=CONVERSATION_TTL,
            )
        pipe.execute()
        self._unsaved.clear()

    # -- dead letters ---------------------------------------------------------------------------
    def dead_letter(
        self, kind: str, payload: Mapping[str, Any], conversation: str | None, reason: str
    ) -> None:
        DeadLetters(self.redis, self.tenant_id).add(kind, payload, conversation, reason)


def tenant_of_genesys_conversation(client: redis.Redis, conversation_id: str) -> str | None:
    """The tenant whose customer message opened Genesys conversation ``conversation_id`` (recorded
    by :meth:`ConversationStore.mark_done`), or None when no message of ours went there."""
    return _text(client.get(keys.genesys_conversation(conversation_id)))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
