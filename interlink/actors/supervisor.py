"""The shard's supervisor: one tenant tree per active tenant, activated on its first message.

It keeps its own ``tenantId -> ref`` table (pykka's registry is a list scanned linearly), restarts a
crashed tenant actor one-for-one after a backoff, and marks a tenant ``failed`` once it crashes more
than the restart policy allows, without touching any other tenant. Work for a tenant that is
restarting waits in a bounded queue; work beyond the bound is refused (it stays unacknowledged in
the durable inbox and comes back).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import pykka

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

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 1000

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
        self.starting: set[str] = set()  # "start" came while the old tree was still stopping
        self.pending: dict[str, deque[Entry]] = {}
        self.draining = False
        self.activations = 0
        self.refused = 0

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
        return super().receive(message)

    def deliver(self, work: Entry) -> bool:
        """Hand ``work`` to its tenant; False when it was refused (failed tenant, full queue)."""
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
            self.tenants.stop(tenant_id)
            return {"state": STOPPED}
        if message.type == "start":
            self.held.discard(tenant_id)
            self.failed.pop(tenant_id, None)
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


def _tell(ref: pykka.ActorRef[Any], message: Any) -> bool:
    """A tenant may die between any two of our steps: a dead one is not an error of ours."""
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return False
    return True
