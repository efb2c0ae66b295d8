"""The base of every interlink actor: failures stay inside the actor that had them.

pykka stops *every* actor in the process when a ``BaseException`` (``gevent.Timeout``,
``GreenletExit``) escapes a handler: its actor loop calls ``ActorRegistry.stop_all()``. Here such
an exception is turned into :class:`ActorCrashed`, so only the actor that had it dies and its
supervisor decides what happens next. The last error is recorded where the operator can see it
(``/control/actors``).
"""

from __future__ import annotations

import logging
import queue
import sys
from typing import Any, TypeVar

import gevent
import gevent.event
import gevent.queue
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
        # A bare greenlet, not a monkey-patched ``threading.Thread`` around one: the Thread's own
        # locks and events cost about a third of an idle actor's memory.
        gevent.spawn(self._logged_actor_loop)

    def _logged_actor_loop(self) -> None:
        # A greenlet starts with an empty context of its own: binding the tenant once here puts
        # it on every line the actor logs (its handlers, the provider calls they make) for free.
        tenant = self.log_tenant()
        if tenant is not None:
            logs.bind(tenant)
        self._actor_loop()

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
        return (
            gevent.queue.UnboundQueue()
        )  # half the memory of Queue(); mailboxes are unbounded anyway

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
