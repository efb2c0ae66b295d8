"""The base of every interlink actor: failures stay inside the actor that had them.

pykka stops *every* actor in the process when a ``BaseException`` (``gevent.Timeout``,
``GreenletExit``) escapes a handler (reference/runtime.md finding 3). Here such an exception is
turned into :class:`ActorCrashed`, so only the actor that had it dies and its supervisor decides
what happens next. The last error is recorded where the operator can see it (``/control/actors``).
"""

from __future__ import annotations

import logging
from typing import Any

import pykka

from interlink.actors.supervision import ChildStatus

log = logging.getLogger(__name__)

MAX_ERROR_TEXT = 300


class ActorCrashed(Exception):
    """A handler ended with a ``BaseException``; it is re-raised as this ordinary exception."""


def describe(exc: BaseException) -> str:
    """One line for operators. Exception messages of ours never carry secrets (STYLE rule)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_TEXT]


class Actor(pykka.ThreadingActor):
    """Subclasses implement :meth:`started`, :meth:`receive` and :meth:`stopping`."""

    # Greenlets under gevent; daemon so a forgotten actor never keeps the process alive.
    use_daemon_thread = True

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
        self._stop_once()

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
