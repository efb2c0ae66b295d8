"""The shard's supervisor: one tenant tree per active tenant, activated on its first message.

It keeps its own ``tenantId -> ref`` table (pykka's registry is a list scanned linearly), restarts a
crashed tenant actor one-for-one after a backoff, and marks a tenant ``failed`` once it crashes more
than the restart policy allows, without touching any other tenant. Work for a tenant that is
restarting waits in a bounded queue; work beyond the bound is refused (it stays unacknowledged in
the durable inbox and comes back).

An operator's ``stop`` holds a tenant until ``start``. The hold is kept in Redis (read here at
start), so it outlives restarts and a change of owner; the tenant's inbox entries are refused
meanwhile and stay in the durable inbox, not in memory (a hold may last days). After ``start`` a
prompt rescan of the inbox offers them again; they go to the tenant oldest first, and newer
entries of the tenant wait in memory behind them, so the order holds.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import gevent
import pykka
import redis

from interlink.actors.actor import Actor
from interlink.actors.messages import (
    ChildStopped,
    Control,
    GetTenant,
    RestartChild,
    Salvaged,
    Snapshot,
    TenantChanged,
    TenantControl,
)
from interlink.actors.supervision import Children
from interlink.actors.tenant import TenantActor
from interlink.actors.tree import TreeSpec
from interlink.inbox import Entry
from interlink.tenancy.ownership import owner

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 1000
# After ``start``, how long newer entries of the tenant wait for the rescan to bring back those
# refused while it was held; past it (an entry vanished meanwhile) they wait no longer.
RESUME_GRACE = 30.0
HOLDS_RETRY = 1.0  # seconds between attempts to read the holds while the store is away


# An inbox entry's place in the order the reader offers them (see _place).
Place = tuple[int, int, int, int]


@dataclass
class _Resume:
    """A started tenant catching up: the entries refused while it was held, oldest first, and
    the entries offered since, each waiting for its turn."""

    owed: deque[Place]
    since: float = field(default_factory=time.monotonic)
    waiting: dict[Place, Entry] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _LoadHolds:
    """Time to read the operator holds again (the store did not answer)."""


@dataclass(frozen=True, slots=True)
class _ResumeTimeout:
    tenant_id: str
    since: float


ACTIVE, RESTARTING, FAILED, STOPPED = "active", "restarting", "failed", "stopped"


class Supervisor(Actor):
    def __init__(
        self,
        spec: TreeSpec,
        *,
        shard_id: int = 0,
        shard_count: int = 1,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        super().__init__()
        self.status.name = "supervisor"
        self.spec = spec
        self.shard_id = shard_id
        self.shard_count = shard_count
        self.max_pending = max_pending
        self.tenants = Children(self.actor_ref, spec.policy)
        self.failed: dict[str, tuple[str, int]] = {}  # tenant -> last error, restarts
        self.held: set[str] = set()  # stopped by an operator: work waits for "start"
        # No work is taken until the holds are read: a held tenant must not run meanwhile.
        self.holds_known = False
        # Held tenant -> the ids of its inbox entries refused (they wait in the inbox).
        self.refused_ids: dict[str, set[Place]] = {}
        self.resuming: dict[str, _Resume] = {}
        self.starting: set[str] = set()  # "start" came while the old tree was still stopping
        self.pending: dict[str, deque[Entry]] = {}
        self.draining = False
        self.activations = 0
        self.refused = 0

    def started(self) -> None:
        self._load_holds()

    def _load_holds(self) -> None:
        if self.holds_known:
            return
        try:
            held = self.spec.held()
        except redis.RedisError as exc:
            log.warning(
                "operator holds unreadable; no work is taken until they are read",
                extra={"error": type(exc).__name__, "delay": HOLDS_RETRY},
            )
            gevent.spawn_later(HOLDS_RETRY, _tell, self.actor_ref, _LoadHolds())
            return
        self.held |= {t for t in held if owner(t, self.shard_count) == self.shard_id}
        self.holds_known = True
        self.spec.rescan()  # what was refused meanwhile

    def stopping(self) -> None:
        late = self.tenants.stop_all(time.monotonic() + self.spec.stop_timeout)
        if late:
            log.warning("tenants did not stop in time", extra={"count": len(late)})

    # -- messages -------------------------------------------------------------------------------
    def receive(self, message: Any) -> Any:
        if isinstance(message, Entry):
            return self.deliver(message)
        if isinstance(message, GetTenant):
            return self._ref(message.tenant_id, activate=message.activate)
        if isinstance(message, ChildStopped):
            return self._tenant_stopped(message)
        if isinstance(message, RestartChild):
            return self._restart(message.key)
        if isinstance(message, Salvaged):
            # Older than anything that arrived since the crash: they go first.
            queue = self.pending.setdefault(message.key, deque())
            queue.extendleft(reversed([m for m in message.messages if isinstance(m, Entry)]))
            return None
        if isinstance(message, TenantChanged):
            return self._changed(message)
        if isinstance(message, Snapshot):
            return self.snapshot()
        if isinstance(message, Control):
            return self.control(message)
        if isinstance(message, TenantControl):
            return self.tenant_control(message.tenant_id, message.control)
        if isinstance(message, _LoadHolds):
            return self._load_holds()
        if isinstance(message, _ResumeTimeout):
            return self._resume_timeout(message)
        return super().receive(message)

    def deliver(self, work: Entry) -> bool:
        """Hand ``work`` to its tenant; False when it was refused (failed or held tenant, full
        queue): it stays in the durable inbox."""
        if work.entry_id is not None:
            if not self.holds_known:
                self.spec.release(work)
                return False
            if work.tenant_id in self.held:
                return self._hold(work)
            if work.tenant_id in self.resuming:
                return self._resume(work)
        return self._hand(work)

    def _hand(self, work: Entry) -> bool:
        tenant_id = work.tenant_id
        if tenant_id in self.failed:
            self.refused += 1
            return False
        held = self.draining or tenant_id in self.held or tenant_id in self.starting
        ref = None if held else self._ref(tenant_id, activate=True)
        if ref is not None and _tell(ref, work):
            return True
        queue = self.pending.setdefault(tenant_id, deque())
        if len(queue) >= self.max_pending:
            self.refused += 1
            return False
        queue.append(work)
        return True

    # -- operator holds -------------------------------------------------------------------------
    def _hold(self, work: Entry) -> bool:
        """A held tenant's entry goes back to the inbox, offered again at each rescan. Only one
        handed over before the stop, still waiting here, is kept (offered again by a reader that
        thinks it lost)."""
        assert work.entry_id is not None
        place = _place(work)
        if any(_place(waiting) == place for waiting in self.pending.get(work.tenant_id, ())):
            return True
        self.refused_ids.setdefault(work.tenant_id, set()).add(place)
        self.spec.release(work)
        return False

    def _resume(self, work: Entry) -> bool:
        """A started tenant takes the entries refused while it was held first, in inbox order;
        any other entry offered meanwhile waits here for its turn."""
        assert work.entry_id is not None
        resume = self.resuming[work.tenant_id]
        place = _place(work)
        if place < resume.owed[0]:
            return self._hand(work)  # older than anything refused: never held back
        resume.waiting[place] = work
        self._catch_up(work.tenant_id)
        return True

    def _catch_up(self, tenant_id: str, *, give_up: bool = False) -> None:
        resume = self.resuming[tenant_id]
        while resume.owed and resume.owed[0] in resume.waiting:
            self._hand(resume.waiting.pop(resume.owed.popleft()))
        if resume.owed and not give_up:
            return
        del self.resuming[tenant_id]
        for place in sorted(resume.waiting):
            self._hand(resume.waiting[place])

    def _resume_timeout(self, message: _ResumeTimeout) -> None:
        resume = self.resuming.get(message.tenant_id)
        if resume is not None and resume.since == message.since:
            log.warning(
                "entries refused while the tenant was held did not come back in time",
                extra={"tenant": message.tenant_id, "missing": len(resume.owed)},
            )
            self._catch_up(message.tenant_id, give_up=True)

    def _start_resuming(self, tenant_id: str) -> None:
        owed = self.refused_ids.pop(tenant_id, None)
        if not owed:
            return
        resume = _Resume(deque(sorted(owed)))
        self.resuming[tenant_id] = resume
        gevent.spawn_later(
            RESUME_GRACE, _tell, self.actor_ref, _ResumeTimeout(tenant_id, resume.since)
        )
        self.spec.rescan()

    def _stop_resuming(self, tenant_id: str) -> None:
        """Stopped again before catching up: what it still owed, and what waited for its turn,
        is refused again (back to the inbox)."""
        resume = self.resuming.pop(tenant_id, None)
        if resume is None:
            return
        refused = self.refused_ids.setdefault(tenant_id, set())
        refused.update(resume.owed)
        for place, work in resume.waiting.items():
            refused.add(place)
            self.spec.release(work)

    def _ref(self, tenant_id: str, *, activate: bool) -> pykka.ActorRef[Any] | None:
        ref = self.tenants.ref(tenant_id)
        if ref is not None or not activate or tenant_id in self.failed:
            return ref
        cls = self.spec.tenant or TenantActor
        spec = self.spec
        self.activations += 1
        return self.tenants.start(tenant_id, lambda s: cls.start(tenant_id, spec=spec, status=s))

    def _tenant_stopped(self, message: ChildStopped) -> None:
        tenant_id = message.key
        status = self.tenants.status(tenant_id)
        outcome = self.tenants.stopped(tenant_id, message.ref)
        if outcome == "exhausted":
            reason = (status and status.last_error) or "crashed"
            self.failed[tenant_id] = (reason, status.restarts if status else 0)
            self.tenants.forget(tenant_id)
            dropped = len(self.pending.pop(tenant_id, ()))
            log.error(
                "tenant failed: restart budget exhausted",
                extra={"tenant": tenant_id, "reason": reason, "dropped": dropped},
            )
        elif outcome == "removed" and tenant_id in self.starting:
            self.starting.discard(tenant_id)
            ref = self._ref(tenant_id, activate=True)
            if ref is not None:
                self._flush(tenant_id, ref)
        elif outcome == "removed" and tenant_id not in self.held and not self.draining:
            # Deleted or unknown tenant: work still waiting for it has nowhere to go.
            for work in self.pending.pop(tenant_id, ()):
                log.warning(
                    "work of a deleted tenant dropped",
                    extra={"tenant": tenant_id, "kind": work.kind},
                )
                self.spec.ack(work)

    def _restart(self, tenant_id: str) -> None:
        ref = self.tenants.restart(tenant_id)
        if ref is not None:
            self._flush(tenant_id, ref)

    def _flush(self, tenant_id: str, ref: pykka.ActorRef[Any]) -> None:
        """Deliver held work in order; if the tenant died again meanwhile, the rest keeps waiting."""
        queue = self.pending.get(tenant_id)
        while queue and _tell(ref, queue[0]):
            queue.popleft()
        if not queue:
            self.pending.pop(tenant_id, None)

    def _changed(self, change: TenantChanged) -> None:
        """A changed tenant gets another chance: a fixed configuration may cure a failed one.
        A deleted one is forgotten, operator holds and waiting work included."""
        self.failed.pop(change.tenant_id, None)
        if change.kind == "deleted":
            self.held.discard(change.tenant_id)
            self._stop_resuming(change.tenant_id)
            self.refused_ids.pop(change.tenant_id, None)
            self.starting.discard(change.tenant_id)
            self.pending.pop(change.tenant_id, None)
        ref = self.tenants.ref(change.tenant_id)
        if ref is not None:
            _tell(ref, change)

    # -- operator messages ----------------------------------------------------------------------
    def control(self, message: Control) -> dict[str, Any]:
        if message.type == "ping":
            return {"pong": True}
        if message.type == "stats":
            return self.totals()
        if message.type == "reload-all":
            for tenant_id in self.tenants.keys():
                self._changed(TenantChanged(tenant_id, None))
            return {"reloading": len(self.tenants)}
        if message.type == "drain":
            self.draining = True
            late = self.tenants.stop_all(time.monotonic() + self.spec.stop_timeout)
            return {"drained": len(self.tenants) - len(late), "late": late}
        return {"unsupported": message.type}

    def tenant_control(self, tenant_id: str, message: Control) -> dict[str, Any] | None:
        """``stop`` and ``start`` are the supervisor's to do; None means: ask the tenant itself."""
        if message.type == "stop":
            # From now on its work waits here; what is already in its mailbox finishes first.
            # No waiting in this handler: every other tenant's work goes through it.
            self.held.add(tenant_id)
            self.starting.discard(tenant_id)
            self._stop_resuming(tenant_id)
            self.tenants.stop(tenant_id)
            return {"state": STOPPED}
        if message.type == "start":
            self.held.discard(tenant_id)
            self.failed.pop(tenant_id, None)
            self._start_resuming(tenant_id)
            status = self.tenants.status(tenant_id)
            if status is not None and status.intended_stop:
                self.starting.add(tenant_id)  # the old tree is still draining: start after it
                return {"state": ACTIVE}
            ref = self._ref(tenant_id, activate=True)
            if ref is not None:
                self._flush(tenant_id, ref)
            return {"state": ACTIVE}
        return None

    def state_of(self, tenant_id: str) -> str:
        if tenant_id in self.failed:
            return FAILED
        if tenant_id in self.held:
            return STOPPED
        ref = self.tenants.ref(tenant_id)
        if ref is not None:
            return ACTIVE if ref.is_alive() else RESTARTING
        return "idle"

    def totals(self) -> dict[str, Any]:
        return {
            "id": self.shard_id,
            "count": self.shard_count,
            "tenantsActive": sum(1 for key in self.tenants.keys() if self.state_of(key) == ACTIVE),
            "tenantsFailed": len(self.failed),
            "tenantsStopped": len(self.held),
            "activations": self.activations,
            "refused": self.refused,
            "pending": sum(len(q) for q in self.pending.values()),
            "draining": self.draining,
        }

    def snapshot(self) -> dict[str, Any]:
        """Per tenant: state and refs to ask for details (the HTTP side asks them, with a deadline,
        so one slow tenant does not stall this mailbox)."""
        tenants: list[dict[str, Any]] = []
        for tenant_id in self.tenants.keys():
            status = self.tenants.status(tenant_id)
            tenants.append(
                {
                    "tenantId": tenant_id,
                    "state": self.state_of(tenant_id),
                    "ref": status.ref if status else None,
                    "restarts": status.restarts if status else 0,
                    "lastError": status.last_error if status else None,
                }
            )
        for tenant_id, (reason, restarts) in self.failed.items():
            tenants.append(
                {
                    "tenantId": tenant_id,
                    "state": FAILED,
                    "ref": None,
                    "restarts": restarts,
                    "lastError": reason,
                }
            )
        for tenant_id in self.held - set(self.tenants.keys()) - set(self.failed):
            tenants.append({"tenantId": tenant_id, "state": STOPPED, "ref": None})
        return {"shard": self.totals(), "tenants": tenants}


def _place(work: Entry) -> Place:
    """Where an inbox entry stands in the order the reader offers them: entries forwarded to
    this shard during a change of the shard count (another stream) before its own stream's, in
    the order they were accepted (accept generation, original id: not their handover stream's
    ids, which say when they were forwarded); the shard's own in entry id (``ms-seq``) order."""
    assert work.entry_id is not None
    if work.stream is not None and work.order is not None:
        return (0, *work.order)
    ms, _, seq = work.entry_id.partition("-")
    return (0 if work.stream is not None else 1, 0, int(ms), int(seq or 0))


def _tell(ref: pykka.ActorRef[Any], message: Any) -> bool:
    """A tenant may die between any two of our steps: a dead one is not an error of ours."""
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return False
    return True
