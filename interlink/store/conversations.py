"""What a conversation remembers between messages, in Redis (so its actor can retire when idle).

- the alias store: every WhatsApp identifier of a user (phone, BSUID) -> one Genesys participant;
- the conversation: when the user last wrote (24-hour window), their latest phone;
- the message map: a WhatsApp message id -> the agent's Genesys message id, the participant, the
  delivery state reached (receipts never go backwards), how many WhatsApp parts that Genesys
  message went out as, and the kind of menu it was (a bot's quick reply, card buttons, ...);
- per Genesys message, the outcome of each of its parts and its one final receipt;
- the numbered-text menu the user was last shown (answered by its number or title);
- "done" markers for each provider call, so a crash between a provider's success and the inbox
  acknowledgement does not repeat the call;
- the tenant's dead letters.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import redis

from interlink.store import keys, multiplex
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


# Both status scripts end by folding one part's outcome into its Genesys message's one final
# receipt (KEYS[2]); before it they set the Lua locals it reads: outcome ('d' delivered, 'f' failed,
# '' none yet), wamid (the part's), parts (how many the message went out as) and ttl (the receipt
# hash's). Delivered once every part was delivered, Failed as soon as one failed, whichever comes
# first, and nothing else after it; ``final`` is the receipt decided, if any.
_FOLD_RECEIPT = """
local final = redis.call('HGET', KEYS[2], 'final')
if not final and outcome ~= '' then
  redis.call('HSET', KEYS[2], 'p:' .. wamid, outcome)
  if outcome == 'f' then
    final = 'Failed'
  else
    local delivered = 0
    local fields = redis.call('HGETALL', KEYS[2])
    for i = 1, #fields, 2 do
      if string.sub(fields[i], 1, 2) == 'p:' and fields[i + 1] == 'd' then
        delivered = delivered + 1
      end
    end
    if delivered >= parts then final = 'Delivered' end
  end
  if final then redis.call('HSET', KEYS[2], 'final', final) end
  redis.call('EXPIRE', KEYS[2], ttl)
end
"""

# A Meta status of one part of an agent's message: move the part's state (compare-and-set, as
# above) and fold its outcome into the Genesys message's one final receipt. KEYS: the part's message
# map, the Genesys message's receipt hash. ARGV: expected state, new state ('' keeps it), the
# part's wamid, its outcome ('d' delivered, 'f' failed, '' none yet), the number of parts, the
# receipt hash's TTL. Returns the final receipt ('Delivered' | 'Failed') while it is decided and
# not yet acknowledged as sent, else false: Delivered once every part was delivered, Failed as soon
# as one failed, whichever comes first, and nothing else after it.
_PART_STATUS = """
if ARGV[2] ~= '' then
  local current = redis.call('HGET', KEYS[1], 'state') or ''
  if current == ARGV[1] then redis.call('HSET', KEYS[1], 'state', ARGV[2]) end
end
local outcome, wamid, parts, ttl = ARGV[4], ARGV[3], tonumber(ARGV[5]), tonumber(ARGV[6])
""" + _FOLD_RECEIPT + """if final and not redis.call('HGET', KEYS[2], 'acked') then return final end
return false
"""

# How long a conversation actor trusts an alias it read or wrote (see AliasCache).
ALIAS_CACHE_FOR = 300.0

# A Meta status of a part whose Genesys message is known from the status itself (its callback
# data): read the part's map entry, move its state and fold its outcome into the final receipt, as
# _PART_STATUS does after a read of the map, in one step. KEYS: the part's message map, the receipt
# hash of the Genesys message the callback data names. ARGV: that Genesys id, the part's wamid,
# the receipt hash's TTL, the map's TTL, then for each state the part may be in ('', sent,
# delivered, read, failed) the state the status moves it to and the part's outcome ('d', 'f',
# ''). Returns {'other'} when the map names another Genesys message (nothing changed), {'corrupt'}
# for a state not listed (nothing changed), else {'ok', final receipt to send or '', the map's
# participant or ''}.
_STATUS = """
local map = redis.call('HMGET', KEYS[1], 'genesys', 'participant', 'state', 'parts')
if map[1] and map[1] ~= ARGV[1] then return {'other'} end
local state = map[3] or ''
local row = nil
local states = {'', 'sent', 'delivered', 'read', 'failed'}
for i = 1, #states do
  if states[i] == state then row = 5 + 2 * (i - 1) end
end
if not row then return {'corrupt'} end
local new, outcome = ARGV[row], ARGV[row + 1]
if new ~= state then
  redis.call('HSET', KEYS[1], 'state', new)
  -- A part whose send outcome was unknown has no map entry: the state it gets expires too.
  if not map[1] then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4])) end
end
local parts = tonumber(map[4] or '1') or 1
if parts < 1 then parts = 1 end
local wamid, ttl = ARGV[2], tonumber(ARGV[3])
""" + _FOLD_RECEIPT + """if not final or redis.call('HGET', KEYS[2], 'acked') then final = '' end
return {'ok', final, map[2] or ''}
"""

# The states a part may be in, in _STATUS's order (None: no status yet).
PART_STATES: tuple[str | None, ...] = (None, "sent", "delivered", "read", "failed")

MENU_TTL = 24 * 3600  # a numbered menu is answered within the user's window, or not at all
MENU_FIELD = "menu"


class Part(NamedTuple):
    """What the message map knows of one WhatsApp message an agent's message went out as."""

    genesys: str | None
    participant: str | None
    state: str | None
    parts: int  # how many WhatsApp messages the Genesys message went out as (1 when unknown)
    menu: str | None  # the buttonResponse type a tap on it answers with, when it was a menu


# Per tenant, how many times this process rewrote aliases (readdress): an AliasCache entry read
# under an older count is not used (see AliasCache).
_rewrites: dict[str, int] = {}


class AliasCache:
    """What one conversation actor knows of its user's aliases (alias key -> participant), so that
    its user's second and later messages skip the alias lookup's round trip. It lives on the actor
    (per tenant and user, retired when idle) and is handed to each message's ConversationStore.

    An entry is what the store held for that alias key when this process last read or wrote it.
    Why a stale one cannot misroute:

    - Only the shard that owns a tenant runs its flows, the only code that writes aliases; a
      shard leaves the fleet's old count by draining its actors and restarting, and a new owner
      delivers a tenant only once the old one released it (``interlink.fleet``), so no entry
      outlives its process's ownership of the tenant.
    - Within the process, aliases are only added (``SET NX``: an existing entry is never
      changed) except by :meth:`ConversationStore.readdress` (a user's number or id changed: a
      number may now belong to another user). Every readdress of a tenant, by any of its actors,
      invalidates every entry of that tenant held anywhere in the process, once its writes were
      sent.
    - What nothing here can see (an alias expiring after ALIAS_TTL, the store losing writes or
      restored from a backup, an operator editing keys) is bounded: an entry is used for at most
      ALIAS_CACHE_FOR seconds after it was read or written.

    It also remembers which keys of its user (aliases, the conversation hash) it gave their full
    expiry, and when (:meth:`kept`): :meth:`ConversationStore.user_wrote` writes them again only
    once that is ``max_age`` old, instead of with every message.
    """

    def __init__(self, max_age: float = ALIAS_CACHE_FOR) -> None:
        self.max_age = max_age
        self._entries: dict[tuple[str, str], tuple[str, float, int]] = {}
        self._kept: dict[tuple[str, str], tuple[float, int]] = {}

    def get(self, tenant_id: str, alias_key: str) -> str | None:
        entry = self._entries.get((tenant_id, alias_key))
        if entry is None:
            return None
        participant, at, rewrites = entry
        if rewrites != _rewrites.get(tenant_id, 0) or time.monotonic() - at > self.max_age:
            del self._entries[(tenant_id, alias_key)]
            return None
        return participant

    def put(self, tenant_id: str, alias_key: str, participant: str, rewrites: int) -> None:
        """``rewrites``: :func:`rewrites_of` the tenant taken before the read or write that
        answered ``participant`` was sent. A readdress whose writes went out meanwhile (the
        answer may predate them) then leaves the entry already stale, not fresh."""
        self._entries[(tenant_id, alias_key)] = (participant, time.monotonic(), rewrites)

    def kept(self, tenant_id: str, key: str) -> bool:
        """Whether Redis key ``key`` was found or left in place with its full TTL (an EXPIRE
        that answered 1) by this actor less than ``max_age`` ago, with no readdress of the
        tenant since: a set-if-absent of it cannot change anything, and its expiry, set again
        now, would move by ``max_age`` at most (what nothing here can see, e.g. an operator
        deleting it, is bounded as for the entries above)."""
        at = self._kept.get((tenant_id, key))
        if at is None:
            return False
        if at[1] != _rewrites.get(tenant_id, 0) or time.monotonic() - at[0] > self.max_age:
            del self._kept[(tenant_id, key)]
            return False
        return True

    def keep(self, tenant_id: str, key: str, rewrites: int) -> None:
        """``key`` was just given its full TTL (see :meth:`kept`); ``rewrites`` as for
        :meth:`put`."""
        self._kept[(tenant_id, key)] = (time.monotonic(), rewrites)


def rewrites_of(tenant_id: str) -> int:
    """How many readdresses of the tenant's aliases this process has sent so far."""
    return _rewrites.get(tenant_id, 0)


def _aliases_rewritten(tenant_id: str) -> None:
    _rewrites[tenant_id] = _rewrites.get(tenant_id, 0) + 1


class ConversationStore:
    def __init__(
        self,
        client: redis.Redis,
        tenant_id: str,
        *,
        write_behind: bool = False,
        aliases: AliasCache | None = None,
    ) -> None:
        """``write_behind``: done markers, the Genesys conversation and the message map wait in
        memory and go with this object's next round trip, or with :meth:`flush`, which the
        conversation actor calls before it acknowledges the message (a Genesys -> WhatsApp message
        then costs one round trip less). Without it (the flows' unit tests) they go at once.
        ``aliases``: the conversation actor's memory of its user's aliases (a new one when
        None)."""
        self.redis = client
        self.tenant_id = tenant_id
        self.aliases = aliases if aliases is not None else AliasCache()
        self._acks: list[str] = []  # Genesys ids whose final receipt was sent, not yet recorded
        self._done: dict[str, str] = {}
        self._unsaved: dict[str, str] = {}
        self._begun: set[str] = set()  # steps this object began (its own retries are no repeat)
        self._made: set[str] = set()  # steps :meth:`start` let through here (a call may be out)
        self._write_behind = write_behind
        self._queued: list[Callable[[Any], object]] = []  # writes waiting for a round trip
        # Steps checked ahead, in the round trip of a read the flow made first: (done, begun
        # before by someone else), until :meth:`start` takes or :meth:`abandon` drops them.
        self._checked: dict[str, tuple[bool, bool]] = {}
        self._parts: dict[str, Part] = {}  # message map entries read ahead, until :meth:`part`

    # Scripts are registered on first use (a message's store runs one at most; registering
    # hashes the source, ~15 us each).
    @functools.cached_property
    def _advance(self) -> Any:
        return self.redis.register_script(_ADVANCE)

    @functools.cached_property
    def _part_status(self) -> Any:
        return self.redis.register_script(_PART_STATUS)

    @functools.cached_property
    def _status(self) -> Any:
        return self.redis.register_script(_STATUS)

    # -- identity -------------------------------------------------------------------------------
    def known_alias(self, alias_keys: Sequence[str]) -> str | None:
        """The participant of the first of ``alias_keys`` the alias store holds, or None. No round
        trip when the first key is in :attr:`aliases` (the store's first hit is then that one)."""
        if not alias_keys:
            return None
        cached = self.aliases.get(self.tenant_id, alias_keys[0])
        if cached is not None:
            return cached
        # GETs in a pipeline, not an MGET: a user's aliases are in different slots of a cluster.
        pipe = multiplex.pipeline(self.redis)
        for alias_key in alias_keys:
            pipe.get(keys.alias(self.tenant_id, alias_key))
        rewrites = rewrites_of(self.tenant_id)
        found = [_text(v) for v in pipe.execute()]
        for alias_key, participant in zip(alias_keys, found, strict=True):
            if participant:
                self.aliases.put(self.tenant_id, alias_key, participant, rewrites)
        return next((p for p in found if p), None)

    def user_wrote(
        self,
        participant: str,
        at: float,
        phone: str | None,
        aliases: Mapping[str, str],
        wamid: str | None = None,
        *,
        bsuid: str | None = None,
        then_start: str | None = None,
        read_part: str | None = None,
        read_menu: bool = True,
    ) -> dict[str, Any] | None:
        """The user wrote message ``wamid`` at ``at``: their aliases (kept if already taken) and
        the conversation's last inbound time, latest phone, BSUID and last wamid, in one round
        trip. Returns the numbered menu the user was last shown and may be answering (see
        :meth:`remember_menu`), or None.

        In the same round trip: the writes waiting for one, the check of the step the flow is
        about to :meth:`start` (``then_start``; see :meth:`check_ahead`) and the message map
        entry of ``read_part`` (the menu a tap answers), which :meth:`part` then returns.
        ``read_menu=False``: the message cannot answer a numbered menu (it is no text), which is
        then not read (None)."""
        key = keys.conversation(self.tenant_id, participant)
        fields: dict[Any, Any] = {"last_inbound": repr(at)}
        if phone:
            fields["phone"] = phone
        if bsuid:
            fields["bsuid"] = bsuid
        if wamid:
            fields["last_wamid"] = wamid
        tenant, memory = self.tenant_id, self.aliases
        # An alias this actor wrote or refreshed within the memory's max age exists: its SET NX
        # cannot change anything, and its EXPIRE moves its end (ALIAS_TTL, 400 days, away) by
        # that max age at most. Each command skipped is ~15-20 us of redis-py (packing, parsing
        # its reply); an active user's aliases are still refreshed once per max age, and a cold
        # actor's (the first message, or after the memory's max age) at once.
        recorded = [
            (alias_key, owner, keys.alias(tenant, alias_key))
            for alias_key, owner in aliases.items()
            if not memory.kept(tenant, keys.alias(tenant, alias_key))
        ]
        # The same for the conversation hash's EXPIRE: its HSET keeps an existing hash's TTL,
        # and CONVERSATION_TTL (30 days) need not restart with every message.
        expire = not memory.kept(tenant, key)

        def commands(pipe: Any) -> None:
            for _, owner, alias in recorded:
                pipe.set(alias, owner, nx=True, ex=ALIAS_TTL)
            if read_menu:
                pipe.hget(key, MENU_FIELD)
            pipe.hset(key, mapping=fields)
            if expire:
                pipe.expire(key, CONVERSATION_TTL)
            if read_part is not None:
                self._read_part(pipe, read_part)
            # A user who keeps writing keeps their identity: SET NX leaves a taken alias's
            # expiry alone, so without this an active user first known by one identifier would
            # become a new participant (a new Genesys thread) ALIAS_TTL after first contact.
            # Last, so that the results read above keep their places.
            for _, _, alias in recorded:
                pipe.expire(alias, ALIAS_TTL)

        rewrites = rewrites_of(self.tenant_id)
        results = self._round_trip(commands, then_start)
        place = len(recorded)
        for (alias_key, owner, alias), was_set, refreshed in zip(
            recorded, results[:place], results[len(results) - place :], strict=True
        ):
            if was_set:  # now the store's entry (a taken one is left as it was)
                memory.put(tenant, alias_key, owner, rewrites)
            if refreshed:  # it exists, with its full TTL
                memory.keep(tenant, alias, rewrites)
        menu = results[place] if read_menu else None
        place += int(read_menu) + 1  # HGET, HSET
        if expire:
            if results[place]:
                memory.keep(tenant, key, rewrites)
            place += 1
        if read_part is not None:
            self._parts[read_part] = _part(results[place])
        return _menu(menu)

    def remember_menu(
        self, participant: str, genesys_id: str, options: Sequence[tuple[str, str]]
    ) -> None:
        """The user was shown a Genesys quick reply as numbered text: ``options`` are its
        (title, payload) pairs in order. Kept in the conversation hash for MENU_TTL; a newer
        menu replaces it."""
        menu = {
            "id": genesys_id,
            "options": [list(o) for o in options],
            "until": time.time() + MENU_TTL,
        }
        self.redis.hset(
            keys.conversation(self.tenant_id, participant),
            MENU_FIELD,
            json.dumps(menu, separators=(",", ":")),
        )

    def forget_menu(self, participant: str) -> None:
        """The menu was answered: a later message with the same number is just a message."""
        self.redis.hdel(keys.conversation(self.tenant_id, participant), MENU_FIELD)

    def typing_due(self, participant: str, interval: float) -> str | None:
        """The user's latest message to the business when a typing indicator may be shown on it
        now, at most once per ``interval`` seconds; else None. One round trip: the throttle is
        taken whether or not the user wrote (with nothing to show on, nothing is lost by it)."""
        throttle = keys.dedupe(self.tenant_id, "typing", participant)
        pipe = multiplex.pipeline(self.redis)
        pipe.set(throttle, "1", nx=True, px=int(interval * 1000))
        pipe.hget(keys.conversation(self.tenant_id, participant), "last_wamid")
        taken, wamid = pipe.execute()
        return _text(wamid) if taken else None

    def state(self, participant: str) -> tuple[float | None, str | None]:
        """When the user last wrote (Unix seconds) and their latest phone."""
        last, phone, _ = self.address(participant)
        return last, phone

    def address(
        self, participant: str, *, then_start: str | None = None
    ) -> tuple[float | None, str | None, str | None]:
        """When the user last wrote (Unix seconds), their latest phone and latest BSUID; with
        ``then_start``, that step is checked in the same round trip (see :meth:`check_ahead`)."""
        key = keys.conversation(self.tenant_id, participant)
        if then_start is None:
            values = self.redis.hmget(key, ["last_inbound", "phone", "bsuid"])
        else:
            [values] = self._round_trip(
                lambda pipe: pipe.hmget(key, ["last_inbound", "phone", "bsuid"]), then_start
            )
        last, phone, bsuid = values
        return (float(last) if last else None, _text(phone), _text(bsuid))

    def readdress(
        self,
        participant: str,
        *,
        phone: str | None,
        bsuid: str | None,
        aliases: Mapping[str, str],
    ) -> None:
        """The user's number or id changed: ``aliases`` (old and new identifiers) point to
        ``participant`` even where taken (a number now belongs to this user), and replies go to
        the new ``phone`` / ``bsuid``. One round trip."""
        key = keys.conversation(self.tenant_id, participant)
        fields: dict[Any, Any] = {k: v for k, v in (("phone", phone), ("bsuid", bsuid)) if v}
        pipe = multiplex.pipeline(self.redis)
        for alias_key, owner in aliases.items():
            pipe.set(keys.alias(self.tenant_id, alias_key), owner, ex=ALIAS_TTL)
        if fields:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, CONVERSATION_TTL)
        try:
            pipe.execute()
        finally:
            # After the writes (sent, or maybe sent): an entry read meanwhile is dropped too.
            _aliases_rewritten(self.tenant_id)

    # -- messages -------------------------------------------------------------------------------
    def map_message(
        self,
        wamid: str,
        genesys_id: str,
        participant: str,
        *,
        parts: int = 1,
        menu: str | None = None,
        answers_menu: bool = False,
    ) -> None:
        """``wamid`` is one of the ``parts`` WhatsApp messages Genesys message ``genesys_id``
        went out as; ``menu``: the buttonResponse type a tap on it answers with.
        ``answers_menu``: it is (part of) the numbered menu the user was last shown; any other
        message from Genesys makes that menu stale, and it is forgotten in the same round trip
        (a "2" meant for a later question must not pick an old option)."""
        key = keys.message_map(self.tenant_id, wamid)
        fields: dict[Any, Any] = {"genesys": genesys_id, "participant": participant}
        if parts != 1:
            fields["parts"] = str(parts)
        if menu:
            fields["menu"] = menu
        conversation = keys.conversation(self.tenant_id, participant)

        def write(pipe: Any) -> None:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, MESSAGE_TTL)
            if not answers_menu:
                pipe.hdel(conversation, MENU_FIELD)

        self._queued.append(write)
        if not self._write_behind:
            self.flush()

    def part(self, wamid: str) -> Part:
        """Everything the message map holds about ``wamid``, in one round trip (none when it was
        read ahead, see :meth:`user_wrote`)."""
        ahead = self._parts.pop(wamid, None)
        if ahead is not None:
            return ahead
        return _part(self.redis.hmget(keys.message_map(self.tenant_id, wamid), _PART_FIELDS))

    def _read_part(self, pipe: Any, wamid: str) -> None:
        pipe.hmget(keys.message_map(self.tenant_id, wamid), _PART_FIELDS)

    def part_status(
        self,
        wamid: str,
        genesys_id: str,
        *,
        expected: str | None,
        new: str | None,
        outcome: str,
        parts: int,
    ) -> str | None:
        """Record a status of one part (see ``_PART_STATUS``); the final receipt to send now, if
        any. Send it, then :meth:`receipt_sent`: until then a redelivered status returns it
        again, so a crash between the two loses no receipt."""
        result = self._part_status(
            keys=[
                keys.message_map(self.tenant_id, wamid),
                keys.receipt(self.tenant_id, genesys_id),
            ],
            args=[expected or "", new or "", wamid, outcome, parts, DONE_TTL],
        )
        return _text(result) if result else None

    def status_of(
        self,
        wamid: str,
        genesys_id: str,
        moves: Sequence[tuple[str | None, str]],
    ) -> tuple[str | None, str | None] | None:
        """A status of part ``wamid`` of Genesys message ``genesys_id`` (the status's callback
        data), in one round trip: :meth:`part` and :meth:`part_status` in one step. ``moves``:
        for each of PART_STATES, the state the status moves the part to and its outcome ('d',
        'f', ''). The final receipt to send now, if any, and the participant the map names; None
        when the map names another Genesys message or holds a state that is none of PART_STATES
        (nothing was changed: ask :meth:`part`)."""
        args: list[Any] = [genesys_id, wamid, DONE_TTL, MESSAGE_TTL]
        for new, outcome in moves:
            args += [new or "", outcome]
        result = self._status(
            keys=[
                keys.message_map(self.tenant_id, wamid),
                keys.receipt(self.tenant_id, genesys_id),
            ],
            args=args,
        )
        if _text(result[0]) != "ok":
            return None
        return _text(result[1]) or None, _text(result[2]) or None

    def receipt_sent(self, step: str, genesys_id: str) -> None:
        """The final receipt of ``genesys_id`` was sent (the call ``step``): one round trip."""
        self._acks.append(genesys_id)
        self.mark_done(step)

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
            self.flush()
            return False
        checked = self._checked.pop(step, None)
        if checked is None:
            # One round trip: is it done, and (marking it begun) was it begun before? The writes
            # waiting for a round trip go first in it.
            self._round_trip(lambda pipe: None, step)
            checked = self._checked.pop(step)
        done, begun_before = checked
        if done:
            return False
        if begun_before and step not in self._begun:
            log.warning(
                "provider call repeated after a crash",
                extra={"tenant": self.tenant_id, "step": step},
            )
            REPEATED_AFTER_CRASH.inc()
        self._begun.add(step)
        self._made.add(step)
        return True

    def check_ahead(self, pipe: Any, step: str) -> None:
        """Add the check of ``step`` (see :meth:`start`) to ``pipe``, a round trip the flow makes
        anyway before it; :meth:`_round_trip` keeps its outcome for :meth:`start`. It marks the
        step begun as :meth:`start` does: a flow that then does not take it calls
        :meth:`abandon`."""
        pipe.exists(keys.dedupe(self.tenant_id, "done", step))
        pipe.set(keys.dedupe(self.tenant_id, "begun", step), "1", ex=DONE_TTL, get=True)

    def abandon(self, step: str) -> None:
        """``step`` was checked ahead but will not be made: its begun marker, when this object
        set it and made no call of it, is removed with the next writes, so that a later run
        making the call (e.g. once the user's window reopened) does not count a repeat. A marker
        found there is kept: it may be a crash's only trace."""
        checked = self._checked.pop(step, None)
        if checked is None or checked[0] or checked[1] or step in self._made:
            return
        self._begun.discard(step)
        begun = keys.dedupe(self.tenant_id, "begun", step)
        self._queued.append(lambda pipe: pipe.delete(begun))
        if not self._write_behind:
            self.flush()

    def _round_trip(self, commands: Callable[[Any], object], step: str | None) -> list[Any]:
        """One round trip: the writes waiting for one, ``commands``, then, with ``step`` (unless
        known done here), its check ahead. The results of ``commands``."""
        checking = step is not None and step not in self._done
        pipe = multiplex.pipeline(self.redis)
        self._add_waiting(pipe)
        waiting = len(pipe)
        commands(pipe)
        if checking:
            assert step is not None
            self.check_ahead(pipe, step)
        results = pipe.execute()[waiting:]
        self._written()
        if checking:
            assert step is not None
            *results, done, previous = results
            begun_before = previous is not None and step not in self._begun
            if previous is None:
                self._begun.add(step)  # this object began it: its own retries are no repeat
            self._checked[step] = (bool(done), begun_before)
        return results

    def mark_done(
        self, step: str, value: str = "1", *, genesys_conversation: str | None = None
    ) -> None:
        """``step`` succeeded (its result: ``value``). ``genesys_conversation``: the Genesys
        conversation it went to, remembered in the same round trip so that the Genesys webhook
        finds this tenant from it."""
        self._done[step] = value
        self._unsaved[step] = value
        if genesys_conversation:
            tenant_id = self.tenant_id
            self._queued.append(
                lambda pipe: pipe.set(
                    keys.genesys_conversation(genesys_conversation), tenant_id, ex=CONVERSATION_TTL
                )
            )
        if not self._write_behind:
            self.flush()

    def flush(self, commit: Callable[[Callable[[Any], None] | None], None] | None = None) -> None:
        """Store every write still waiting (done markers, receipts sent, conversation and message
        maps) in one round trip. ``commit``: in that round trip of someone else's (the inbox's
        acknowledgement of the message, which stores them with it): it is handed what adds them
        to a pipeline (None when nothing waits) and returns once they are stored."""
        waiting = bool(self._unsaved or self._acks or self._queued)
        if commit is not None:
            commit(self._add_waiting if waiting else None)
        elif not waiting:
            return
        else:
            pipe = multiplex.pipeline(self.redis)
            self._add_waiting(pipe)
            pipe.execute()
        self._written()

    def _add_waiting(self, pipe: Any) -> None:
        for step, value in self._unsaved.items():
            pipe.set(keys.dedupe(self.tenant_id, "done", step), value, ex=DONE_TTL)
        for genesys_id in self._acks:
            pipe.hset(keys.receipt(self.tenant_id, genesys_id), "acked", "1")
        for write in self._queued:
            write(pipe)

    def _written(self) -> None:
        self._unsaved.clear()
        self._acks.clear()
        self._queued.clear()

    # -- dead letters ---------------------------------------------------------------------------
    def dead_letter(
        self, kind: str, payload: Mapping[str, Any], conversation: str | None, reason: str
    ) -> None:
        for step in list(self._checked):  # checked ahead, never taken: no trace of a call
            self.abandon(step)
        self.flush()
        DeadLetters(self.redis, self.tenant_id).add(kind, payload, conversation, reason)


def tenant_of_genesys_conversation(client: redis.Redis, conversation_id: str) -> str | None:
    """The tenant whose customer message opened Genesys conversation ``conversation_id`` (recorded
    by :meth:`ConversationStore.mark_done`), or None when no message of ours went there."""
    return _text(client.get(keys.genesys_conversation(conversation_id)))


def _menu(raw: Any) -> dict[str, Any] | None:
    """A remembered numbered menu, or None when there is none, it expired or it is unreadable."""
    if not raw:
        return None
    try:
        menu = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(menu, dict) or not isinstance(menu.get("until"), int | float):
        return None
    if menu["until"] < time.time() or not isinstance(menu.get("options"), list):
        return None
    return menu


_PART_FIELDS = ["genesys", "participant", "state", "parts", "menu"]


def _part(values: Sequence[Any]) -> Part:
    genesys, participant, state, parts, menu = (_text(v) for v in values)
    count = int(parts) if parts and parts.isdigit() and int(parts) > 0 else 1
    return Part(genesys, participant, state, count, menu)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
