"""Every Redis key interlink uses, in one place.

Only :func:`token` is a public contract (other programs may read it); everything under ``il:v1:`` /
``il:v2:`` is private to interlink and versioned by that prefix.

Redis Cluster runs a Lua script or a ``MULTI`` only when all of its keys hash to one slot, so every
key that a script uses together with others carries a hash tag (the part in ``{...}``, which alone
decides the slot):

- ``{N}``, the owner shard: its inbox stream, the backlog counters of the tenants it owns and the
  "accepted" dedupe markers, so that a group commit (``accept.lua``) and an acknowledgement batch
  (``ack.lua``) stay one script call per shard;
- ``{registry}``: tenant records, the tenant id set, the three webhook indexes and the API keys,
  which the admin scripts (``tenant_write.lua`` and friends) change together, atomically;
- ``{<tenant id>}``: the tenant's message maps and receipt hashes (a part's status moves both).

The keys that moved to get a tag are under ``il:v2:``; :mod:`interlink.store.layout` renames a v1
layout's keys at start. Keys used one at a time (conversations, aliases, provider-call markers,
dead letters, tokens) keep their v1 names: any slot will do for them.
"""

from __future__ import annotations

NS = "il:v1:"
NS2 = "il:v2:"
REGISTRY = NS2 + "{registry}:"  # one slot for every key the tenant admin scripts touch together


def token(tenant_id: str) -> str:
    """The tenant's cached Genesys access token; it expires with the token. Other programs may
    read this key: its name and meaning never change."""
    return f"genesys:oauth:token:{tenant_id}"


def token_lifetime(tenant_id: str) -> str:
    """The lifetime Genesys granted the cached token (seconds), expiring with it."""
    return f"{NS}token-life:{tenant_id}"


def token_lock(tenant_id: str) -> str:
    """Held by the one shard that is fetching the tenant's token (``SET NX PX``)."""
    return f"{NS}token-lock:{tenant_id}"


def layout() -> str:
    """The key layout version this Redis holds (``2``), written once a v1 layout was moved."""
    return f"{REGISTRY}layout"


def tenant(tenant_id: str) -> str:
    return f"{REGISTRY}tenant:{tenant_id}"


def tenant_ids() -> str:
    """Sorted set of every tenant id (score 0, so it is ordered by id: stable cursors)."""
    return f"{REGISTRY}tenants"


def index_phone() -> str:
    """Hash: WhatsApp phone number id -> tenant id."""
    return f"{REGISTRY}idx:phone"


def index_integration() -> str:
    """Hash: Genesys Open Messaging integration id -> tenant id."""
    return f"{REGISTRY}idx:integration"


def index_verify_token() -> str:
    """Hash: sha256 of a Meta webhook verify token -> tenant id (never the token itself)."""
    return f"{REGISTRY}idx:verify"


def api_key(key_id: str) -> str:
    return f"{REGISTRY}apikey:{key_id}"


def tenant_api_keys(tenant_id: str) -> str:
    """Set of the key ids issued for one tenant (revoked together when it is deleted)."""
    return f"{REGISTRY}tenant-keys:{tenant_id}"


def tenant_events() -> str:
    """Pub/sub channel of tenant changes: ``{"tenantId", "version", "kind"}`` (hot reload). A
    channel, not a key: Redis Cluster carries a classic ``PUBLISH`` to every node."""
    return f"{NS}events:tenants"


def shard_tag(shard_id: int) -> str:
    """The hash tag of everything that goes with shard ``shard_id``'s inbox in one script."""
    return f"{{{shard_id}}}"


def inbox(shard_id: int) -> str:
    """The shard's durable inbox stream (webhooks accepted, not yet fully handled)."""
    return f"{NS}inbox:{shard_tag(shard_id)}"


def backlog(shard_id: int, tenant_id: str) -> str:
    """Counter of the tenant's accepted items not yet finished (its webhooks get 429 past a
    bound), next to the inbox of ``shard_id``, the tenant's owner: the accept and ack scripts
    change it with the stream."""
    return f"{NS2}backlog:{shard_tag(shard_id)}:{tenant_id}"


def accepted(shard_id: int, tenant_id: str, ident: str) -> str:
    """Marks an item as accepted into the inbox of ``shard_id`` (its owner): a provider's
    redelivery of ``ident`` finds it. In the inbox's slot, so "seen before" and "appended" are
    one script step."""
    return f"{NS2}seen:{shard_tag(shard_id)}:{tenant_id}:in:{ident}"


def dedupe(tenant_id: str, kind: str, ident: str) -> str:
    """Marks a step as seen or done (``kind``: done, begun, typing ...), one key at a time.
    Accepted inbox items have their own marker, :func:`accepted`."""
    return f"{NS}seen:{tenant_id}:{kind}:{ident}"


def dead_letters(tenant_id: str) -> str:
    return f"{NS}dead:{tenant_id}"


def conversation(tenant_id: str, user_id: str) -> str:
    """Hash of one conversation's state (last inbound time, Genesys conversation id ...)."""
    return f"{NS}conv:{tenant_id}:{user_id}"


def tenant_tag(tenant_id: str) -> str:
    """The hash tag of one tenant's keys that a script uses together (tenant ids hold no braces)."""
    return f"{{{tenant_id}}}"


def message_map(tenant_id: str, message_id: str) -> str:
    """Maps a message id of one side to the other side's id and the conversation. In the
    tenant's slot: a part's status moves it and the Genesys message's receipt in one step."""
    return f"{NS2}msg:{tenant_tag(tenant_id)}:{message_id}"


def receipt(tenant_id: str, genesys_id: str) -> str:
    """Hash of the statuses of an agent message's WhatsApp parts, its final receipt and whether
    that was sent; in the tenant's slot, with :func:`message_map`."""
    return f"{NS2}receipt:{tenant_tag(tenant_id)}:{genesys_id}"


def genesys_conversation(conversation_id: str) -> str:
    """Genesys conversation id -> tenant id: the first way a Genesys webhook finds its tenant."""
    return f"{NS}gconv:{conversation_id}"


def alias(tenant_id: str, alias_key: str) -> str:
    """A WhatsApp identifier (``phone:...`` / ``bsuid:...``) -> the user's Genesys participant id."""
    return f"{NS}alias:{tenant_id}:{alias_key}"


# -- Fleet operations: operator holds, the control relay, shard heartbeats ----------------------
# Keys of one shard carry its id as a hash tag (``{N}``, as the inbox does), so that on Redis
# Cluster a shard's requests and replies live in one slot.


def holds() -> str:
    """Hash: tenant id -> when an operator stopped it (epoch ms). Read by every owner at start;
    an entry goes with the operator's ``start`` or the tenant's deletion."""
    return f"{NS}holds"


def control_requests(shard_id: int) -> str:
    """List of control messages relayed to the shard by other shards (it ``BLPOP``s them)."""
    return f"{NS}control:{{{shard_id}}}:requests"


def control_reply(shard_id: int, request_id: str) -> str:
    """List holding the one reply of shard ``shard_id`` to the relayed request ``request_id``."""
    return f"{NS}control:{{{shard_id}}}:reply:{request_id}"


def shard_alive(shard_id: int) -> str:
    """The shard's heartbeat (expires a few seconds after its last beat): it is running."""
    return f"{NS}alive:{{{shard_id}}}"


def shard_ids() -> str:
    """Set of every shard id that ever announced itself (which heartbeats to look for)."""
    return f"{NS}shards"


# -- The fleet: the agreed shard count and the handover of streams when it changes -------------
# (interlink.fleet). Keys used together with a stream in one script carry the stream's hash tag
# ``{N}``, so that Redis Cluster keeps them in the stream's slot.


def fleet() -> str:
    """Hash: the shard count the fleet agrees on and its generation (``generation``, ``count``,
    ``streams``: how many streams may hold entries, ``settled``: the last generation whose
    handover finished, ``recent``: the counts of the generations since)."""
    return f"{NS}fleet"


def fleet_done() -> str:
    """Hash: stream number -> the generation whose handover that stream has finished."""
    return f"{NS}fleet:done"


def fence(stream: int) -> str:
    """The generation a stream accepts writes from: a writer of an older one is refused."""
    return f"{NS}fence:{shard_tag(stream)}"


def lease(stream: int) -> str:
    """Held (``SET NX PX``, refreshed) by the one shard that reads the stream."""
    return f"{NS}lease:{shard_tag(stream)}"


def handover(shard_id: int) -> str:
    """Stream of entries forwarded to the shard from other streams, delivered before its inbox."""
    return f"{NS}handover:{shard_tag(shard_id)}"


def outbox(stream: int) -> str:
    """Stream of entries taken out of stream ``stream`` and not yet known to have arrived."""
    return f"{NS}outbox:{shard_tag(stream)}"


def forwarded(shard_id: int, source: int, outbox_id: str) -> str:
    """Marks an outbox entry of ``source`` as arrived at ``shard_id`` (a resend is dropped)."""
    return f"{NS}fwd:{shard_tag(shard_id)}:{source}:{outbox_id}"
