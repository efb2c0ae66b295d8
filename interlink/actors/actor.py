"""The base of every interlink actor: failures stay inside the actor that had them.

pykka stops *every* actor in the process when a ``BaseException`` (``gevent.Timeout``,
``GreenletExit``) escapes a handler: its actor loop calls ``ActorRegistry.stop_all()``. Here such
an exception is turned into :class:`ActorCrashed`, so only the actor that had it dies and its
supervisor decides what happens next. The last error is recorded where the operator can see it
(``/control/actors``).
"""

from __future__ import annotations

import contextvars
import logging
import queue
import sys
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import gevent
import gevent.event
import pykka

from interlink.actors.messages import Salvaged
from interlink.actors.supervision import ChildStatus
from interlink.telemetry import logs

log = logging.getLogger(__name__)

MAX_ERROR_TEXT = 300


T = TypeVar("T")


class GeventFuture(pykka.Future[T]):
    """pykka's future on a gevent ``AsyncResult``. pykka's own ``ThreadingFuture`` builds a
    ``threading.Condition`` per ask, which under monkey-patching is a pure-Python lock: most of
    the time of stopping 10,000 tenant trees went there. Every actor here lives in one thread,
    as greenlets, which is all an ``AsyncResult`` serves."""

    def __init__(self) -> None:
        super().__init__()
        self._result: gevent.event.AsyncResult = gevent.event.AsyncResult()

    def get(self, *, timeout: float | None = None) -> Any:
        if self._get_hook is not None:
            return super().get(timeout=timeout)
        try:
            return self._result.get(timeout=timeout)
        except gevent.Timeout:
            raise pykka.Timeout(f"{timeout} seconds") from None

    def set(self, value: Any | None = None) -> None:
        if self._result.ready() or self._get_hook is not None:
            raise queue.Full
        self._result.set(value)

    def set_exception(self, exc_info: Any = None) -> None:
        if exc_info is None:
            exc_info = sys.exc_info()
        if self._result.ready() or self._get_hook is not None:
            raise queue.Full
        self._result.set_exception(exc_info[1], exc_info=exc_info)

    def set_get_hook(self, func: Any) -> None:
        if self._result.ready():
            raise queue.Full
        super().set_get_hook(func)


class Mailbox:
    """An actor's mailbox: a deque that wakes its actor on ``put``. Nothing waits on it (the
    actor runs only while it has work), so ``get`` on an empty mailbox raises ``queue.Empty``."""

    __slots__ = ("items", "wake")

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self.wake: Callable[[], None] | None = None

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.items.append(item)
        wake = self.wake
        if wake is not None:
            wake()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        try:
            return self.items.popleft()
        except IndexError:
            raise queue.Empty from None

    def empty(self) -> bool:
        return not self.items

    def qsize(self) -> int:
        return len(self.items)


class ActorCrashed(Exception):
    """A handler ended with a ``BaseException``; it is re-raised as this ordinary exception."""


def describe(exc: BaseException) -> str:
    """One line for operators. No interlink exception message carries a secret."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_TEXT]


class Actor(pykka.ThreadingActor):
    """Subclasses implement :meth:`started`, :meth:`receive` and :meth:`stopping`."""

    # Greenlets under gevent; daemon so a forgotten actor never keeps the process alive.
    use_daemon_thread = True

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:
        """Start the actor without entering it in pykka's global ``ActorRegistry``.

        That registry is one list: every stop removes its actor with a linear scan, so stopping a
        shard of 10,000 tenant trees through it takes quadratic time (tens of seconds). Supervisors
        keep their children in dicts instead, and every actor here has a supervisor.
        """
        obj = cls(*args, **kwargs)
        obj._start_actor_loop()
        return obj.actor_ref

    def _start_actor_loop(self) -> None:
        # No greenlet of its own while idle: one runs only while the mailbox has work (the start
        # included), then ends. A blocked greenlet holds about 8 KiB, and a tenant tree's actors
        # (the tenant's and its conversations') sit idle most of the time. One runner at a time keeps the order; the
        # runners share one context, so the tenant bound on the first is on every later one.
        self._running = True
        self._run_context = contextvars.Context()
        inbox: Any = self.actor_inbox
        inbox.wake = self._wake
        gevent.spawn(self._run_context.run, self._first_run)

    def _wake(self) -> None:
        if not self._running:
            self._running = True
            gevent.spawn(self._run_context.run, self._drain)

    def _first_run(self) -> None:
        tenant = self.log_tenant()
        if tenant is not None:
            logs.bind(tenant)
        try:
            self._actor_loop_setup()
        except BaseException:
            self._running = False
            raise
        self._drain()

    def _drain(self) -> None:
        """pykka's loop over the envelopes, ending when the mailbox is empty instead of waiting."""
        inbox = self.actor_inbox
        try:
            while not self.actor_stopped.is_set():
                if inbox.empty():
                    return
                envelope = inbox.get()
                try:
                    response = self._handle_receive(envelope.message)
                    if envelope.reply_to is not None:
                        envelope.reply_to.set(response)
                except Exception:
                    if envelope.reply_to is not None:
                        envelope.reply_to.set_exception()
                    else:
                        self._handle_failure(*sys.exc_info())
                        try:
                            self.on_failure(*sys.exc_info())
                        except Exception:
                            self._handle_failure(*sys.exc_info())
                except BaseException:
                    # on_receive turns these into ActorCrashed; a stray one ends this actor only
                    # (pykka would stop every actor of the process).
                    self._handle_failure(*sys.exc_info())
                    self.on_failure(*sys.exc_info())
            self._actor_loop_teardown()
        finally:
            self._running = False

    def log_tenant(self) -> str | None:
        """The tenant this actor works for, if any: a ``tenant_id`` of its own or of its
        ``config`` (the tenant actor, its conversations and workers)."""
        tenant = getattr(self, "tenant_id", None) or getattr(
            getattr(self, "config", None), "tenant_id", None
        )
        return tenant if isinstance(tenant, str) else None

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return GeventFuture()

    @staticmethod
    def _create_actor_inbox() -> Any:
        return Mailbox()

    def __init__(self, *, status: ChildStatus | None = None) -> None:
        super().__init__()
        self.status = status or ChildStatus(name=type(self).__name__)
        self.status.ref = self.actor_ref
        self._stopping_done = False

    # -- hooks for subclasses -------------------------------------------------------------------
    def started(self) -> None:
        """Runs in the actor before its first message. An exception stops the actor."""

    def receive(self, message: Any) -> Any:
        log.warning(
            "unexpected message", extra={"actor": self.status.name, "type": type(message).__name__}
        )
        return None

    def stopping(self) -> None:
        """Runs once however the actor ends (stop, crash, failed start): release what it holds."""

    # -- pykka hooks ----------------------------------------------------------------------------
    def on_start(self) -> None:
        try:
            self.started()
        except BaseException as exc:
            self.status.last_error = describe(exc)
            self._salvage()
            self._stop_once()
            if isinstance(exc, Exception):
                raise
            raise ActorCrashed(describe(exc)) from None

    def on_receive(self, message: Any) -> Any:
        try:
            return self.receive(message)
        except Exception as exc:
            self.status.last_error = describe(exc)
            raise
        except BaseException as exc:
            self.status.last_error = describe(exc)
            raise ActorCrashed(describe(exc)) from None

    def on_stop(self) -> None:
        self._stop_once()

    def on_failure(self, *exc_info: Any) -> None:
        self._salvage()
        self._stop_once()

    def _salvage(self) -> None:
        """Hand the messages still in the mailbox back to the parent, which gives them to the
        next incarnation. Asks are answered with ActorDeadError, as pykka would."""
        parent = self.status.parent
        if parent is None or self.status.intended_stop:
            return
        kept: list[Any] = []
        while not self.actor_inbox.empty():
            envelope: Any = self.actor_inbox.get()
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception(
                    exc_info=(
                        pykka.ActorDeadError,
                        pykka.ActorDeadError(f"{self.status.name} crashed"),
                        None,
                    )
                )
            elif not isinstance(envelope.message, pykka.messages._ActorStop):
                kept.append(envelope.message)
        if kept:
            try:
                parent.tell(Salvaged(self.status.name, tuple(kept)))
            except pykka.ActorDeadError:
                pass

    def _stop_once(self) -> None:
        if self._stopping_done:
            return
        self._stopping_done = True
        try:
            self.stopping()
        except Exception as exc:
            log.warning(
                "error while stopping", extra={"actor": self.status.name, "error": describe(exc)}
            )
