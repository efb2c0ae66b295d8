"""The one place that wires a shard process: settings → store → supervisor → listener, and back
down.

Start order: the store (embedded Valkey unless ``INTERLINK_REDIS_URL`` is set), the supervisor,
the fleet's handover (which joins the recorded shard count, leases the shard's streams and starts
the inbox reader once its own stream is handed over), then the listener the caller's factory
builds around the shard's services (``interlink serve`` gives the HTTP server). Stop order is
the reverse: stop accepting and finish in-flight requests, drain the actors within the deadline,
release the stream leases, then stop the embedded store. SIGTERM and SIGINT both stop
the shard cleanly.
"""

from __future__ import annotations

import base64
import functools
import gc
import logging
import os
import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import gevent
import gevent.event
import pykka
import redis

from interlink import settings as settings_module
from interlink.actors import Control, Supervisor, TenantChanged, TreeSpec
from interlink.fleet import FleetView, Handover
from interlink.fleet.relay import ControlRelay
from interlink.http.control import answer_relayed
from interlink.inbox import Entry, InboxReader
from interlink.services import Services
from interlink.settings import Settings
from interlink.store import layout
from interlink.store.connection import connect, redacted
from interlink.store.embedded import EmbeddedStoreError, EmbeddedValkey
from interlink.tenancy.changes import ReloadListener

log = logging.getLogger("interlink.runtime")

ADMIN_TOKEN_FILE = "admin-token"
# A fenced shard whose count the fleet agrees on again stops with this code (EX_TEMPFAIL), so
# that its supervisor (Kubernetes, systemd's Restart=on-failure) starts it afresh.
RESTART_EXIT_CODE = 75
READER_START_WAIT = 2.0  # seconds the start waits for the shard's stream to be handed over
SECRET_KEY_FILE = "secret-key"
YOUNG_COLLECTION = 10_000  # allocations between two collections of the youngest generation


class Listener(Protocol):
    """What serves the shard's clients (the HTTP server): started last, stopped first."""

    @property
    def address(self) -> Any: ...

    def start(self) -> None: ...

    def stop(self, timeout: float | None = None) -> None: ...


ListenerFactory = Callable[[Services], Listener]


class StartupError(RuntimeError):
    """The shard cannot start; ``str()`` is the one line shown to the operator."""


def ensure_secret_file(path: Path, generate: Callable[[], str]) -> tuple[str, bool]:
    """Read a generated secret, or create it with mode 0600 (never readable by others, even
    briefly: the file is created with that mode). Returns the value and whether it is new."""
    try:
        return path.read_text(encoding="utf-8").strip(), False
    except FileNotFoundError:
        pass
    value = generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value, True


def _new_secret_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


class Shard:
    """One shard process's parts. ``start()`` then ``stop()``; ``run()`` does both around signals.

    ``listener`` builds what serves clients around the started services; it is started after the
    supervisor and the inbox reader, and stopped before them."""

    def __init__(self, settings: Settings, listener: ListenerFactory) -> None:
        self.settings = settings
        self.listener = listener
        self.store: EmbeddedValkey | None = None
        self.services: Services | None = None
        self.supervisor: pykka.ActorRef[Supervisor] | None = None
        self.server: Listener | None = None
        self.reload: ReloadListener | None = None
        self.relay: ControlRelay | None = None
        self.handover: Handover | None = None
        self.exit_code = 0  # what ``interlink serve`` exits with once stopped
        self._stop_requested = gevent.event.Event()

    # -- start ----------------------------------------------------------------------------------
    def start(self) -> None:
        settings = self.settings
        # The cycle collector's youngest generation every 10,000 allocations, not 700: a burst of
        # tenant trees starting (their first messages) had it collect, and promote, constantly.
        # Before the inbox reader starts: its collector keeps these for the young generations.
        _, middle, oldest = gc.get_threshold()
        gc.set_threshold(YOUNG_COLLECTION, middle, oldest)
        data_dir = settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        admin_token = settings.admin_token
        if admin_token is None:
            path = data_dir / ADMIN_TOKEN_FILE
            admin_token, created = ensure_secret_file(
                path, lambda: "ila_" + secrets.token_urlsafe(32)
            )
            log.info(
                "admin token %s %s", "generated into" if created else "read from", path.resolve()
            )
        secret_keys = settings.secret_keys
        if not secret_keys:
            path = data_dir / SECRET_KEY_FILE
            text, _ = ensure_secret_file(path, _new_secret_key)
            try:
                secret_keys = (settings_module.decode_secret_key(text),)
            except ValueError:
                raise StartupError(f"{path}: not a urlsafe-base64 key of 32 bytes") from None

        redis_url = settings.redis_url
        if redis_url is None:
            self.store = EmbeddedValkey(data_dir / "valkey")
            try:
                self.store.start()
            except EmbeddedStoreError as exc:
                raise StartupError(str(exc)) from None
            redis_url = self.store.url
        client = connect(redis_url, cluster=settings.redis_cluster)
        self.services = services = Services(
            settings=settings, redis=client, admin_token=admin_token, secret_keys=secret_keys
        )
        self._wait_for_redis(client, redis_url)
        self._ensure_layout(client)

        self.handover = handover = Handover(
            client,
            settings.shard_id,
            settings.shard_count,
            on_view=self._fleet_view,
            on_fenced=self._fenced,
            on_rejoin=self._rejoin,
        )
        services.inbox.refresh = handover.refresh_view
        services.fleet = handover
        reader = InboxReader(client, settings.shard_id, self._deliver, gate=handover)
        handover.on_ready = reader.start
        services.reader = reader
        self.supervisor = Supervisor.start(
            self.tree_spec(services), shard_id=settings.shard_id, shard_count=settings.shard_count
        )
        services.supervisor = self.supervisor
        handover.start()
        # Usually a few milliseconds; while the stream's lease is another's (a handover), the
        # shard serves meanwhile and its reader starts once the lease is free.
        if not handover.wait_ready(READER_START_WAIT):
            log.info("inbox reader waits for its stream's lease (a change of the shard count)")
        self.reload = ReloadListener(client, self._tenant_changed, self._resync)
        self.reload.start()
        # Control messages relayed by the other shards, and this shard's heartbeat.
        self.relay = services.relay = ControlRelay(
            client,
            settings.shard_id,
            settings.shard_count,
            functools.partial(answer_relayed, services),
            timeout=settings.control_relay_timeout,
        )
        self.relay.start()

        self.server = self.listener(services)
        try:
            self.server.start()
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
            ) from None
        # What start-up made lives as long as the process: no collection need walk it again
        # (its garbage collected first, or frozen cycles would be kept for good).
        gc.collect()
        gc.freeze()
        host, port = self.server.address[:2]
        log.info(
            "shard %s/%s listening on http://%s:%s",
            settings.shard_id,
            settings.shard_count,
            host,
            port,
            extra={"redis": redacted(redis_url)},
        )

    def tree_spec(self, services: Services) -> TreeSpec:
        assert services.reader is not None
        return TreeSpec(
            load_config=services.tenants.load_config,
            services=services,
            ack=services.reader.ack,
            commit=services.reader.commit,
            release=services.reader.release,
            rescan=services.reader.rescan_soon,
            held=services.holds.held,
        )

    def _tenant_changed(self, tenant_id: str, version: int | None, kind: str) -> None:
        assert self.services is not None and self.supervisor is not None
        self.services.directory.invalidate(tenant_id)
        self.supervisor.tell(TenantChanged(tenant_id, version, kind))

    def _resync(self) -> None:
        """Events may have been missed while disconnected: start again from what is stored."""
        assert self.services is not None and self.supervisor is not None
        self.services.directory.invalidate(None)
        self.supervisor.tell(Control("reload-all"))

    def _fleet_view(self, view: FleetView) -> None:
        """Webhooks go where the fleet's recorded count puts them, whatever this shard's own."""
        assert self.services is not None
        inbox = self.services.inbox
        inbox.shard_count, inbox.generation = view.count, view.generation

    def _fenced(self) -> bool:
        """The fleet moved to another count: stop delivering, let the actors finish what they
        hold (what they do not finish stays pending for the stream's next holder), write the
        last acknowledgements. The shard goes on accepting webhooks.

        False when some tenants did not stop in time: they may still deliver (a conversation
        retries for minutes), so the next holder must not start while they run. The process
        ends then (exit 75, restarted afresh), keeping its leases until it is gone: the crash
        window, where what was in flight is delivered again and announced as a repeat."""
        assert self.services is not None
        reader = self.services.reader
        stopped = True
        if reader is not None:
            reader.stop_reading()
        if self.supervisor is not None and self.supervisor.is_alive():
            try:
                drained: Any = self.supervisor.ask(
                    Control("drain"), timeout=self.settings.shutdown_timeout + 1
                )
                if drained.get("late"):
                    stopped = False
                    log.error(
                        "tenants did not drain before the handover; the shard restarts",
                        extra={"late": len(drained["late"])},
                    )
            except pykka.Timeout:
                stopped = False
                log.error("tenants did not drain before the handover; the shard restarts")
        if reader is not None and stopped:
            reader.stop(timeout=self.settings.shutdown_timeout)
        # Else the late conversations keep the acknowledgements (and the writes going with
        # them) until ``stop`` has stopped the actors.
        if not stopped:
            self.exit_code = RESTART_EXIT_CODE
            self.request_stop()
        return stopped

    def _rejoin(self) -> None:
        """Fenced, and the fleet is back at this shard's count: start afresh (a fenced shard
        never reads again in the same process)."""
        self.exit_code = RESTART_EXIT_CODE
        self.request_stop()

    def _deliver(self, work: Entry) -> bool:
        """From the inbox to the actors. Never blocks the reader: a tell only queues."""
        supervisor = self.supervisor
        if supervisor is None:
            return False
        try:
            supervisor.tell(work)
        except pykka.ActorDeadError:
            return False
        return True

    def _ensure_layout(self, client: redis.Redis) -> None:
        """Keys written by an older version move to today's names before anything reads them
        (interlink.store.layout). With Redis away, again and again in the background."""
        assert self.services is not None
        shard_count = self.services.settings.shard_count
        try:
            layout.ensure(client, shard_count)
            return
        except redis.RedisError as exc:
            # A refusal (an ACL without RENAMENX, say) is named: it will not pass by itself.
            log.warning(
                "key layout not checked yet",
                extra={"error": type(exc).__name__, "detail": str(exc)[:200]},
            )

        def retry() -> None:
            while True:
                gevent.sleep(1.0)
                try:
                    layout.ensure(client, shard_count)
                    return
                except redis.RedisError:
                    pass

        gevent.spawn(retry)

    def _wait_for_redis(self, client: redis.Redis, url: str, timeout: float = 5.0) -> None:
        """A configured Redis may still be starting (a pod next to ours): wait a little, then
        serve anyway. ``/readyz`` says 503 and webhooks get 503 until it answers; every part
        that uses it retries by itself."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return
            except redis.RedisError as exc:
                if time.monotonic() > deadline:
                    log.warning(
                        "Redis does not answer yet; serving with /readyz at 503 until it does",
                        extra={"redis": redacted(url), "error": type(exc).__name__},
                    )
                    return
                gevent.sleep(0.2)

    # -- run and stop ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop_requested.set()

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop cleanly."""
        handlers = [
            gevent.signal_handler(sig, self.request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        ]
        try:
            self._stop_requested.wait()
        finally:
            for handler in handlers:
                handler.cancel()
            self.stop()

    def stop(self) -> None:
        deadline = time.monotonic() + self.settings.shutdown_timeout
        log.info("shard stopping")
        if self.server is not None:
            # Stop accepting; in-flight requests get until the deadline to finish.
            self.server.stop(timeout=max(0.0, deadline - time.monotonic()) / 2)
        if self.relay is not None:
            self.relay.stop()
        if self.reload is not None:
            self.reload.stop()
        if self.handover is not None:
            self.handover.stop()
        reader = self.services.reader if self.services is not None else None
        if reader is not None:
            reader.stop_reading()
        if self.supervisor is not None and self.supervisor.is_alive():
            # The process ends after this: collecting cycles among thousands of stopping trees
            # would only delay it.
            gc.freeze()
            try:
                self.supervisor.stop(timeout=max(0.1, deadline - time.monotonic()))
            except pykka.Timeout:
                # What did not finish stays unacknowledged in the inbox: the next start takes it.
                # The leases are not given up while those actors may still deliver: they lapse
                # a lease's life after the process ends (the same shard restarted takes them
                # back at once).
                log.warning("actors did not drain before the deadline")
                if self.handover is not None:
                    self.handover.keep_until_exit()
        if reader is not None:
            reader.stop(timeout=max(0.1, deadline - time.monotonic()))
        if self.handover is not None:
            self.handover.release()
        if self.services is not None:
            self.services.close()
        if self.store is not None:
            self.store.stop()
        log.info("shard stopped")
