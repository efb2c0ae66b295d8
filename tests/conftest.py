"""Shared fixtures: a real Valkey (embedded) or the Redis named by INTERLINK_TEST_REDIS_URL.

gevent patches the standard library here, before the code under test is imported, exactly as the
shard's entry point does: the actors run as greenlets in the tests too.
"""

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import weakref  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import falcon.testing  # noqa: E402
import gevent  # noqa: E402
import greenlet  # noqa: E402
import pykka  # noqa: E402
import pytest  # noqa: E402
import redis  # noqa: E402

from interlink import settings as settings_module  # noqa: E402
from interlink.actors.actor import Actor  # noqa: E402
from interlink.http.app import create_app  # noqa: E402
from interlink.providers.session import new_session  # noqa: E402
from interlink.services import Services  # noqa: E402
from interlink.store.connection import connect  # noqa: E402
from interlink.store.embedded import EmbeddedValkey  # noqa: E402


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis-protocol server for the whole session. Tests flush its database: never point
    INTERLINK_TEST_REDIS_URL at a database other work uses (pick a spare one, e.g. ``/13``)."""
    url = os.environ.get("INTERLINK_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"), appendonly=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = connect(redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> settings_module.Settings:
    return settings_module.load(
        {"INTERLINK_DATA_DIR": str(tmp_path), "INTERLINK_REDIS_URL": redis_url}
    )


@pytest.fixture
def services(settings: settings_module.Settings, redis_client: redis.Redis) -> Iterator[Services]:
    services = Services(
        settings=settings,
        redis=redis_client,
        admin_token=secrets.token_urlsafe(32),
        secret_keys=(secrets.token_bytes(32),),
    )
    # A plain requests session, so that ``responses`` answers the actors' provider calls (the
    # shared pooled one's JSON POSTs bypass requests; tests/providers/test_session.py holds it
    # to the same wire format, and the e2e tests run it against the simulators).
    services.http = new_session()
    yield services
    services.close()


@pytest.fixture
def client(services: Services) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(services))


class GreenletWatch:
    """The gevent greenlets that ran since :meth:`reset`, seen through ``greenlet.settrace``
    (a set per switch: cheap, where walking the heap after every test doubled the run time)."""

    def __init__(self) -> None:
        self.seen: weakref.WeakSet[gevent.Greenlet] = weakref.WeakSet()
        self._previous = greenlet.settrace(self._trace)

    def _trace(self, event: str, args: tuple[greenlet.greenlet, greenlet.greenlet]) -> None:
        if event in ("switch", "throw") and isinstance(args[1], gevent.Greenlet):
            self.seen.add(args[1])
        if self._previous is not None:
            self._previous(event, args)

    def reset(self) -> None:
        self.seen = weakref.WeakSet()

    def alive(self) -> list[gevent.Greenlet]:
        return [g for g in list(self.seen) if not g.dead]


GREENLETS = GreenletWatch()

# An idle actor of ours holds no greenlet (it runs only while its mailbox has work), so the
# greenlets a test left running do not name every actor it left: the actors are recorded as they
# start instead (a weak set: nothing is kept alive by the record).
STARTED_ACTORS: weakref.WeakSet[Actor] = weakref.WeakSet()
_start_actor_loop = Actor._start_actor_loop


def _start_recorded(self: Actor) -> None:
    STARTED_ACTORS.add(self)
    _start_actor_loop(self)


Actor._start_actor_loop = _start_recorded  # type: ignore[method-assign]


def _actor_of(running: gevent.Greenlet) -> pykka.Actor | None:
    """The actor whose loop this greenlet runs (our actors are not in pykka's registry)."""
    run = getattr(running, "_run", None)
    owner = getattr(run, "__self__", None)
    return owner if isinstance(owner, pykka.Actor) else None


@pytest.fixture(autouse=True)
def _nothing_survives_a_test() -> Iterator[None]:
    """What a test started stops with it: the actors in pykka's registry, then the actors of
    ours (outside it) through their ``stop`` so that their ``on_stop`` runs and their refs say
    they are dead, then every other greenlet the test started that still runs (servers' accept
    loops, the inbox's loops, reload listeners, simulators' timers that already ran). No
    fixture outlives a test with a greenlet of its own, so whatever ran during the test and
    still runs is the test's. Greenlets started but not switched to yet get their turn first
    (``sleep(0)``) so that they are seen."""
    GREENLETS.reset()
    STARTED_ACTORS.clear()
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
    gevent.sleep(0)
    left = GREENLETS.alive()
    actors = [actor for actor in map(_actor_of, left) if actor is not None]
    actors += [actor for actor in list(STARTED_ACTORS) if actor.actor_ref.is_alive()]
    actors = list(dict.fromkeys(actors))
    for actor in actors:
        actor.actor_ref.stop(block=False)
    for actor in actors:
        actor.actor_stopped.wait(5)
    left = GREENLETS.alive()
    if left:
        gevent.killall(left, block=True, timeout=5)


@pytest.fixture
def hidden(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> Iterator[list[str]]:
    """Secrets a test appends here must reach neither a log record (message, fields, traceback)
    nor the process's stdout/stderr (where a greenlet's crash report goes)."""
    caplog.set_level(logging.DEBUG)
    secrets_list: list[str] = []
    yield secrets_list
    formatter = logging.Formatter()
    records = caplog.get_records("setup") + caplog.get_records("call")
    text = [formatter.format(record) + repr(vars(record)) for record in records]
    assert records, "nothing was logged: the check would prove nothing"
    out, err = capfd.readouterr()
    everything = "\n".join([*text, out, err])
    for secret in secrets_list:
        assert secret not in everything, "a secret reached the logs"


@pytest.fixture
def down(services: Services) -> Iterator[Services]:
    """The same shard, but its Redis is a closed port."""
    dead = connect("redis://127.0.0.1:1/0", pool_timeout=0.5, socket_timeout=0.5)
    try:
        yield Services(
            settings=services.settings,
            redis=dead,
            admin_token=services.admin_token,
            secret_keys=services.secret_keys,
        )
    finally:
        dead.close()
