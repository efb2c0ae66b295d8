"""The supervisor, in the style of OTP's supervisor suite: each way a child can die, and what follows."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pykka
import pytest

from interlink.actors import (
    Control,
    GetTenant,
    RestartPolicy,
    Snapshot,
    Supervisor,
    TenantActor,
    TreeSpec,
)
from interlink.actors.conversation import Conversation
from interlink.actors.messages import TenantChanged, TenantControl
from interlink.inbox import Entry
from interlink.tenancy.config import TenantConfig

FAST = RestartPolicy(max_restarts=3, period=10.0, min_backoff=0.01, max_backoff=0.05)
EVENTS: list[tuple[str, ...]] = []


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        gevent.sleep(0.01)


def config_of(tenant_id: str) -> TenantConfig | None:
    return None if tenant_id.startswith("unknown") else TenantConfig(tenant_id=tenant_id, version=1)


class RecordingConversation(Conversation):
    def handle(self, work: Entry) -> Any:
        if work.kind == "crash":
            raise RuntimeError("conversation crashed on purpose")
        if work.kind == "slow":
            gevent.sleep(0.002)
        EVENTS.append(("handled", self.config.tenant_id, self.user, str(work.payload.get("n"))))
        return super().handle(work)

    def stopping(self) -> None:
        EVENTS.append(("stopped", "conversation", self.config.tenant_id, self.user))


class RecordingTenant(TenantActor):
    start_failures: dict[str, int] = {}

    def started(self) -> None:
        left = self.start_failures.get(self.tenant_id, 0)
        if left:
            self.start_failures[self.tenant_id] = left - 1
            raise RuntimeError("on_start failed on purpose")
        super().started()

    def handle(self, work: Entry) -> Any:
        if work.kind == "crash":
            raise RuntimeError("tenant crashed on purpose")
        if work.kind == "timeout":
            raise gevent.Timeout(0.01)  # a BaseException: must stay inside this actor
        return None

    def stopping(self) -> None:
        super().stopping()
        EVENTS.append(("stopped", "tenant", self.tenant_id))


@pytest.fixture
def spec() -> TreeSpec:
    EVENTS.clear()
    RecordingTenant.start_failures = {}
    return TreeSpec(
        load_config=config_of,
        tenant=RecordingTenant,
        conversation=RecordingConversation,
        policy=FAST,
        idle_timeout=0.2,
        stop_timeout=5.0,
    )


@pytest.fixture
def supervisor(spec: TreeSpec) -> Iterator[pykka.ActorRef[Supervisor]]:
    ref = Supervisor.start(spec)
    yield ref
    if ref.is_alive():
        ref.stop(timeout=10)


def tenant_ref(
    supervisor: pykka.ActorRef[Supervisor], tenant_id: str
) -> pykka.ActorRef[Any] | None:
    return supervisor.ask(GetTenant(tenant_id, activate=False), timeout=5)


def state(supervisor: pykka.ActorRef[Supervisor], tenant_id: str) -> dict[str, Any]:
    snapshot = supervisor.ask(Snapshot(), timeout=5)
    return next(t for t in snapshot["tenants"] if t["tenantId"] == tenant_id)


def handled(tenant_id: str) -> list[str]:
    return [e[3] for e in EVENTS if e[0] == "handled" and e[1] == tenant_id]


def test_a_tenant_tree_is_activated_by_its_first_message(
    supervisor: pykka.ActorRef[Supervisor],
) -> None:
    assert tenant_ref(supervisor, "acme") is None
    supervisor.tell(Entry("acme", "text", {"n": 1}, conversation="u1"))
    wait_for(lambda: handled("acme") == ["1"])
    ref = tenant_ref(supervisor, "acme")
    assert ref is not None and ref.is_alive()
    stats = ref.ask(Control("stats"), timeout=5)
    names = [a["name"] for a in stats["actors"]]
    assert names == ["acme", "conversation:u1"]  # the token and the sends are no actors


def test_a_crash_on_tell_is_restarted_and_later_work_flows(
    supervisor: pykka.ActorRef[Supervisor],
) -> None:
    supervisor.tell(Entry("acme", "text", {"n": 1}, conversation="u1"))
    wait_for(lambda: handled("acme"))
    first = tenant_ref(supervisor, "acme")
    supervisor.tell(Entry("acme", "crash", {}))
    wait_for(
        lambda: (
            (r := tenant_ref(supervisor, "acme")) is not None and r is not first and r.is_alive()
        )
    )
    assert state(supervisor, "acme")["restarts"] == 1
    assert "tenant crashed on purpose" in state(supervisor, "acme")["lastError"]
    supervisor.tell(Entry("acme", "text", {"n": 2}, conversation="u1"))
    wait_for(lambda: handled("acme") == ["1", "2"])


def test_work_queued_behind_a_crash_reaches_the_next_incarnation_in_order(
    supervisor: pykka.ActorRef[Supervisor],
) -> None:
    supervisor.tell(Entry("acme", "crash", {}))
    for n in range(50):
        supervisor.tell(Entry("acme", "text", {"n": n}, conversation="u1"))
    wait_for(lambda: len(handled("acme")) == 50)
    assert handled("acme") == [str(n) for n in range(50)]
    assert state(supervisor, "acme")["restarts"] == 1


def test_work_queued_behind_a_crashed_conversation_is_not_lost(
    supervisor: pykka.ActorRef[Supervisor],
) -> None:
    supervisor.tell(Entry("acme", "crash", {}, conversation="u1"))
    for n in range(50):
        supervisor.tell(Entry("acme", "text", {"n": n}, conversation="u1"))
    wait_for(lambda: len(handled("acme")) == 50)
    assert handled("acme") == [str(n) for n in range(50)]


def test_a_failing_on_start_is_restarted(supervisor: pykka.ActorRef[Supervisor]) -> None:
    RecordingTenant.start_failures["acme"] = 2
    supervisor.tell(Entry("acme", "text", {"n": 1}, conversation="u1"))
    # The work waits while the tenant restarts, then arrives: nothing is dropped.
    wait_for(lambda: handled("acme") == ["1"])
    assert state(supervisor, "acme")["restarts"] == 2
    assert state(supervisor, "acme")["state"] == "active"


def test_exceeding_the_intensity_fails_that_tenant_only(
    supervisor: pykka.ActorRef[Supervisor],
) -> None:
    RecordingTenant.start_failures["bad"] = 1000
    supervisor.tell(Entry("good", "text", {"n": 1}, conversation="u1"))
    supervisor.tell(Entry("bad", "text", {"n": 1}, conversation="u1"))
    wait_for(lambda: state(supervisor, "bad")["state"] == "failed")
    assert "on_start failed on purpose" in state(supervisor, "bad")["lastError"]
    # Work for a failed tenant is refused (it stays in the durable inbox), other tenants flow.
    assert supervisor.ask(Entry("bad", "text", {"n": 2}), timeout=5) is False
    supervisor.tell(Entry("good", "text", {"n": 2}, conversation="u1"))
    wait_for(lambda: handled("good") == ["1", "2"])
    assert state(supervisor, "good")["restarts"] == 0
    assert handled("bad") == []
    totals = supervisor.ask(Control("stats"), timeout=5)
    assert totals["tenantsFailed"] == 1 and totals["tenantsActive"] == 1


def test_a_config_change_gives_a_failed_tenant_another_chance(
    supervisor: pykka.ActorRef[Supervisor],
) -> None:
    RecordingTenant.start_failures["bad"] = 4  # one more than the budget
    supervisor.tell(Entry("bad", "text", {"n": 1}, conversation="u1"))
    wait_for(lambda: state(supervisor, "bad")["state"] == "failed")
    supervisor.tell(TenantChanged("bad", 2))
    supervisor.tell(Entry("bad", "text", {"n": 2}, conversation="u1"))
    wait_for(lambda: handled("bad") == ["2"])


def test_a_base_exception_kills_only_the_actor_that_raised_it(
    supervisor: pykka.ActorRef[Supervisor],
) -> None:
    supervisor.tell(Entry("one", "text", {"n": 1}, conversation="u1"))
    supervisor.tell(Entry("two", "text", {"n": 1}, conversation="u1"))
    wait_for(lambda: handled("one") and handled("two"))
    two = tenant_ref(supervisor, "two")
    supervisor.tell(Entry("one", "timeout", {}))
    wait_for(lambda: state(supervisor, "one")["restarts"] == 1)
    assert supervisor.is_alive() and two is not None and two.is_alive()
    assert "Timeout" in state(supervisor, "one")["lastError"]


def test_a_crashed_conversation_is_forgotten_and_comes_back(
    supervisor: pykka.ActorRef[Supervisor],
) -> None:
    supervisor.tell(Entry("acme", "crash", {}, conversation="u1"))
    supervisor.tell(Entry("acme", "text", {"n": 1}, conversation="u2"))
    wait_for(lambda: handled("acme") == ["1"])
    supervisor.tell(Entry("acme", "text", {"n": 2}, conversation="u1"))
    wait_for(lambda: handled("acme") == ["1", "2"])
    assert state(supervisor, "acme")["restarts"] == 0


def test_idle_conversations_retire_and_come_back(supervisor: pykka.ActorRef[Supervisor]) -> None:
    supervisor.tell(Entry("acme", "text", {"n": 1}, conversation="u1"))
    wait_for(lambda: handled("acme") == ["1"])
    tenant = tenant_ref(supervisor, "acme")
    assert tenant is not None
    assert tenant.ask(Control("stats"), timeout=5)["conversations"] == 1
    wait_for(lambda: ("stopped", "conversation", "acme", "u1") in EVENTS, timeout=3)
    assert tenant.ask(Control("stats"), timeout=5)["conversations"] == 0
    supervisor.tell(Entry("acme", "text", {"n": 2}, conversation="u1"))
    wait_for(lambda: handled("acme") == ["1", "2"])
    assert tenant.ask(Control("stats"), timeout=5)["conversations"] == 1


def test_an_unknown_tenant_stops_quietly_without_restarts(
    supervisor: pykka.ActorRef[Supervisor],
) -> None:
    supervisor.tell(Entry("unknown-1", "text", {"n": 1}, conversation="u1"))
    wait_for(lambda: tenant_ref(supervisor, "unknown-1") is None)
    assert supervisor.ask(Control("stats"), timeout=5)["tenantsFailed"] == 0


def test_operator_stop_holds_work_and_start_delivers_it(
    supervisor: pykka.ActorRef[Supervisor],
) -> None:
    supervisor.tell(Entry("acme", "text", {"n": 1}, conversation="u1"))
    wait_for(lambda: handled("acme") == ["1"])
    assert supervisor.ask(TenantControl("acme", Control("stop")), timeout=10) == {
        "state": "stopped"
    }
    supervisor.tell(Entry("acme", "text", {"n": 2}, conversation="u1"))
    gevent.sleep(0.1)
    assert handled("acme") == ["1"]
    assert state(supervisor, "acme")["state"] == "stopped"
    supervisor.ask(TenantControl("acme", Control("start")), timeout=10)
    wait_for(lambda: handled("acme") == ["1", "2"])


def test_shutdown_drains_mailboxes_and_stops_in_reverse_order(
    supervisor: pykka.ActorRef[Supervisor],
) -> None:
    for n in range(200):
        supervisor.tell(Entry("acme", "slow", {"n": n}, conversation="u1"))
    supervisor.tell(Entry("later", "text", {"n": 0}, conversation="u9"))
    trees = [tenant_ref(supervisor, t) for t in ("acme", "later")]
    supervisor.stop(timeout=10)
    # Everything accepted before the stop was handled...
    assert handled("acme") == [str(n) for n in range(200)]
    # ...then each tree stopped leaves first: its conversations, then the tenant.
    acme = [e for e in EVENTS if e[0] == "stopped" and "acme" in e]
    assert acme == [
        ("stopped", "conversation", "acme", "u1"),
        ("stopped", "tenant", "acme"),
    ]
    # The tenant activated last is asked to stop first.
    tenants_stopped = [e[2] for e in EVENTS if e[:2] == ("stopped", "tenant")]
    assert set(tenants_stopped) == {"acme", "later"}
    assert all(ref is not None and not ref.is_alive() for ref in trees)
