"""Supervision for pykka, which has none: watch a child's death, restart it within a budget.

OTP's rule: a supervisor restarts a crashed child, but more than ``max_restarts`` restarts within
``period`` seconds means the problem will not go away by restarting, so it gives up (here: the
tenant is marked ``failed``; nothing else is touched). Restarts back off exponentially so that a
child failing on start does not spin.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import pykka

log = logging.getLogger(__name__)

DEFAULT_MAX_RESTARTS = 5
DEFAULT_PERIOD = 30.0
DEFAULT_MIN_BACKOFF = 0.05
DEFAULT_MAX_BACKOFF = 5.0


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """At most ``max_restarts`` in ``period`` seconds; the n-th recent restart waits
    ``min_backoff * 2**(n-1)`` seconds, capped at ``max_backoff``."""

    max_restarts: int = DEFAULT_MAX_RESTARTS
    period: float = DEFAULT_PERIOD
    min_backoff: float = DEFAULT_MIN_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF


@dataclass(slots=True)
class RestartBudget:
    policy: RestartPolicy
    clock: Callable[[], float] = time.monotonic
    recent: deque[float] = field(default_factory=deque)
    total: int = 0

    def spend(self) -> float | None:
        """Record one restart; the delay before it, or None when the intensity is exceeded."""
        now = self.clock()
        while self.recent and now - self.recent[0] > self.policy.period:
            self.recent.popleft()
        if len(self.recent) >= self.policy.max_restarts:
            return None
        self.recent.append(now)
        self.total += 1
        delay = self.policy.min_backoff * 2 ** (len(self.recent) - 1)
        return min(delay, self.policy.max_backoff)


@dataclass(slots=True)
class ChildStatus:
    """What an operator sees of one actor: shared by the actor (writes) and its parent (reads)."""

    name: str
    restarts: int = 0
    last_error: str | None = None
    ref: pykka.ActorRef[Any] | None = None
    # Set before a stop that is meant (shutdown, retirement, deletion): that stop is no crash.
    intended_stop: bool = False
    # Where a crashed actor hands back the messages it had not started (see Actor._salvage).
    parent: pykka.ActorRef[Any] | None = None

    def mailbox(self) -> int:
        ref = self.ref
        if ref is None or not ref.is_alive():
            return 0
        inbox: Any = ref.actor_inbox
        return int(inbox.qsize()) if hasattr(inbox, "qsize") else 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mailbox": self.mailbox(),
            "restarts": self.restarts,
            "lastError": self.last_error,
        }


def watch(ref: pykka.ActorRef[Any], on_stopped: Callable[[], None]) -> None:
    """Call ``on_stopped`` once the actor has stopped, however it stopped.

    ``actor_stopped`` is set on every exit path, including a failing ``on_start`` (which pykka reports
    to neither ``on_failure`` nor ``on_stop``). Under gevent it is a gevent Event: ``rawlink`` costs no
    greenlet per watched actor. The callback runs in the hub, so it must only ``tell``.
    """
    event: Any = ref.actor_stopped
    if hasattr(event, "rawlink"):
        event.rawlink(lambda _event: _safely(on_stopped))
    else:  # plain threads (no monkey-patching): one waiter greenlet/thread per child

        def wait_then_call() -> None:
            event.wait()
            _safely(on_stopped)

        gevent.spawn(wait_then_call)


def _safely(callback: Callable[[], None]) -> None:
    try:
        callback()
    except pykka.ActorDeadError:
        pass  # the parent is gone too: nobody left to tell
    except Exception:
        log.exception("supervision callback failed")


StartFn = Callable[[ChildStatus], "pykka.ActorRef[Any]"]


@dataclass(slots=True)
class _Child:
    status: ChildStatus
    start: StartFn
    budget: RestartBudget
    permanent: bool


class Children:
    """The children of one actor: started in order, watched, restarted one-for-one within budget.

    The owner actor forwards :class:`~interlink.actors.messages.ChildStopped` and ``RestartChild``
    messages to :meth:`stopped` and :meth:`restart`; every method runs inside the owner's handler, so
    no lock is needed.
    """

    def __init__(self, owner: pykka.ActorRef[Any], policy: RestartPolicy) -> None:
        self.owner = owner
        self.policy = policy
        self._children: dict[str, _Child] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._children

    def __len__(self) -> int:
        return len(self._children)

    def keys(self) -> list[str]:
        return list(self._children)

    def status(self, key: str) -> ChildStatus | None:
        child = self._children.get(key)
        return child.status if child else None

    def ref(self, key: str) -> pykka.ActorRef[Any] | None:
        child = self._children.get(key)
        return child.status.ref if child else None

    def start(self, key: str, start: StartFn, *, permanent: bool = True) -> pykka.ActorRef[Any]:
        """Start a child under ``key``. A permanent child is restarted when it crashes; a
        transient one (a conversation) is only forgotten and started again on demand."""
        child = _Child(
            ChildStatus(name=key, parent=self.owner), start, RestartBudget(self.policy), permanent
        )
        self._children[key] = child
        return self._launch(key, child)

    def _launch(self, key: str, child: _Child) -> pykka.ActorRef[Any]:
        from interlink.actors.messages import ChildStopped

        child.status.intended_stop = False
        ref = child.start(child.status)
        child.status.ref = ref
        owner = self.owner
        watch(ref, lambda: owner.tell(ChildStopped(key, ref)))
        return ref

    def stopped(self, key: str, ref: pykka.ActorRef[Any]) -> str:
        """Handle a child's death: ``"ignored"`` (an older incarnation), ``"removed"`` (meant, or
        transient), ``"restarting"`` (a restart is scheduled) or ``"exhausted"`` (over budget)."""
        from interlink.actors.messages import RestartChild

        child = self._children.get(key)
        if child is None or child.status.ref is not ref:
            return "ignored"
        if child.status.intended_stop or not child.permanent:
            del self._children[key]
            return "removed"
        delay = child.budget.spend()
        if delay is None:
            return "exhausted"
        child.status.restarts += 1
        log.info("restarting actor", extra={"actor": key, "delay": delay})
        gevent.spawn_later(delay, _tell_quietly, self.owner, RestartChild(key))
        return "restarting"

    def restart(self, key: str) -> pykka.ActorRef[Any] | None:
        child = self._children.get(key)
        if child is None or (child.status.ref is not None and child.status.ref.is_alive()):
            return None
        return self._launch(key, child)

    def forget(self, key: str) -> None:
        self._children.pop(key, None)

    def stop(self, key: str) -> pykka.Future[bool] | None:
        """Ask one child to stop after the messages already in its mailbox; no restart follows."""
        child = self._children.get(key)
        if child is None or child.status.ref is None:
            return None
        child.status.intended_stop = True
        try:
            return child.status.ref.stop(block=False)
        except pykka.ActorDeadError:
            return None

    def stop_all(self, deadline: float, *, sequential: bool = False) -> list[str]:
        """Stop every child in reverse start order, each draining its mailbox first, all before
        ``deadline`` (a ``time.monotonic()`` value). ``sequential`` waits for each child before
        stopping the next; otherwise all stop concurrently (thousands of tenants). Returns the keys
        that did not stop in time."""
        late: list[str] = []
        pending: list[tuple[str, pykka.Future[bool]]] = []
        for key in reversed(self._children):
            future = self.stop(key)
            if future is not None:
                pending.append((key, future))
                if sequential:
                    late += _wait_all(pending, deadline)
                    pending = []
        return late + _wait_all(pending, deadline)


def _wait_all(pending: list[tuple[str, pykka.Future[bool]]], deadline: float) -> list[str]:
    late = []
    for key, future in pending:
        try:
            future.get(timeout=max(0.0, deadline - time.monotonic()))
        except pykka.Timeout:
            late.append(key)
        except pykka.ActorDeadError:
            pass
    return late


def _tell_quietly(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        pass
