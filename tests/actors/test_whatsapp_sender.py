"""The tenant's WhatsApp sender, called in the caller's greenlet: the number's pace, Meta's pair
rate and its 131056 back-off, the bound on concurrent sends, reloads and stopping. Graph is
answered by ``responses``."""

from __future__ import annotations

import secrets
import time
from typing import Any

import gevent
import gevent.event
import pytest
import requests
import responses

from interlink.actors.whatsapp_sender import (
    MAX_PAIR_REFUSALS,
    PAIR_BURST,
    SendLane,
    WhatsAppSender,
)
from interlink.providers.errors import MetaError, PermanentError, SendUncertain, TransientError
from interlink.providers.pacing import DEFAULT_META_BURST, META_PACED_SHARE
from interlink.settings import DEFAULT_META_GRAPH_URL
from interlink.tenancy.config import TenantConfig, WhatsAppConfig

PNID = "106540352242922"
SEND = f"{DEFAULT_META_GRAPH_URL}/{PNID}/messages"
MEDIA = f"{DEFAULT_META_GRAPH_URL}/{PNID}/media"
BODY = {
    "messaging_product": "whatsapp",
    "to": "+16505551234",
    "type": "text",
    "text": {"body": "hi"},
}


def config(settings: dict[str, object] | None = None, *, pnid: str = PNID) -> TenantConfig:
    return TenantConfig(
        tenant_id=f"t-{secrets.token_hex(4)}",
        version=1,
        genesys=None,
        whatsapp=WhatsAppConfig(
            phone_number_id=pnid,
            business_account_id="102290129340398",
            access_token=secrets.token_urlsafe(16),
            app_secret=secrets.token_urlsafe(16),
            verify_token=secrets.token_urlsafe(16),
        ),
        settings=settings or {},
    )


class Clock:
    """Time that passes only when a pacer sleeps: the waits are recorded, not spent."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def paced(cfg: TenantConfig, clock: Clock, **kwargs: Any) -> SendLane:
    return SendLane(cfg, clock=clock, sleep=clock.sleep, **kwargs)


def sender(cfg: TenantConfig, lane: SendLane) -> WhatsAppSender:
    return WhatsAppSender(cfg, lane, requests.Session(), DEFAULT_META_GRAPH_URL)


def accepted(wamid: str = "wamid.OK") -> dict[str, Any]:
    return {"json": {"messages": [{"id": wamid}]}}


def pair_rate_refusal() -> dict[str, Any]:
    return {
        "status": 400,
        "json": {
            "error": {
                "message": "(#131056) (Business Account, Consumer Account) pair rate limit hit",
                "type": "OAuthException",
                "code": 131056,
                "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
            }
        },
    }


@responses.activate
def test_a_send_returns_the_wamid_and_gives_its_slot_back() -> None:
    cfg = config()
    lane = SendLane(cfg)
    call = responses.post(SEND, **accepted("wamid.A"))
    assert sender(cfg, lane).send(BODY, "+16505551234") == "wamid.A"
    assert call.call_count == 1
    assert call.calls[0].request.headers["Authorization"] == f"Bearer {cfg.whatsapp.access_token}"  # type: ignore[union-attr]
    assert lane.snapshot() == {"inFlight": 0, "waiting": 0, "sent": 1}


@responses.activate
def test_sends_are_paced_at_the_numbers_messages_per_second() -> None:
    cfg = config({"messagesPerSecond": 2})
    lane = SendLane(cfg)
    assert lane.number_pacer.rate == 2 * META_PACED_SHARE  # inbound messages share the budget
    responses.post(SEND, **accepted())
    whatsapp = sender(cfg, lane)
    for n in range(DEFAULT_META_BURST):  # a burst goes at once, each to its own recipient
        whatsapp.send(BODY, f"+1650555{n:04d}")
    started = time.monotonic()
    whatsapp.send(BODY, "+16505559999")
    assert time.monotonic() - started >= 0.9 * (1 / lane.number_pacer.rate)


@responses.activate
def test_a_pair_rate_refusal_holds_that_recipient_back_and_sends_again() -> None:
    clock = Clock()
    cfg = config()
    lane = paced(cfg, clock)
    responses.post(SEND, **pair_rate_refusal())
    responses.post(SEND, **accepted("wamid.LATER"))
    assert sender(cfg, lane).send(BODY, "+16505551234") == "wamid.LATER"
    assert len(responses.calls) == 2
    assert clock.slept == [pytest.approx(1.0)]  # Meta's 4^0 seconds, for that recipient only
    assert lane.pair_pacer.try_acquire("+16505550000") == 0.0  # another one goes at once
    assert lane.in_flight == 0


@responses.activate
def test_after_repeated_pair_rate_refusals_the_send_fails() -> None:
    clock = Clock()
    cfg = config()
    lane = paced(cfg, clock)
    call = responses.post(SEND, **pair_rate_refusal())
    with pytest.raises(MetaError) as refused:
        sender(cfg, lane).send(BODY, "+16505551234")
    assert refused.value.kind == "pair_rate"
    assert call.call_count == MAX_PAIR_REFUSALS + 1
    # At least Meta's 4^X after the X-th refusal (the 6 s pair interval when that is longer).
    assert len(clock.slept) == MAX_PAIR_REFUSALS
    assert all(s >= 4**x - 1e-6 for x, s in enumerate(clock.slept))
    assert [round(s) for s in clock.slept[2:]] == [16, 64]
    assert lane.snapshot() == {"inFlight": 0, "waiting": 0, "sent": 0}


@responses.activate
def test_one_recipient_gets_a_burst_then_waits_for_the_pair_rate() -> None:
    clock = Clock()
    cfg = config()
    lane = paced(cfg, clock)
    responses.post(SEND, **accepted())
    whatsapp = sender(cfg, lane)
    for _ in range(PAIR_BURST):
        whatsapp.send(BODY, "+16505551234")
    assert max(clock.slept, default=0.0) < 1.0  # only the number's pace, a fraction of a second
    whatsapp.send(BODY, "+16505551234")
    assert clock.slept[-1] > 5.0  # about 6 s, for this one user


@responses.activate
def test_at_most_the_concurrency_bound_of_sends_run_at_once() -> None:
    cfg = config()
    lane = SendLane(cfg, concurrency=2)
    release = gevent.event.Event()
    running: list[int] = []
    peak = [0]

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        running.append(1)
        peak[0] = max(peak[0], len(running))
        release.wait(5)
        running.pop()
        return 200, {}, '{"messages": [{"id": "wamid.X"}]}'

    responses.add_callback(responses.POST, SEND, callback=answer)
    whatsapp = sender(cfg, lane)
    greenlets = [gevent.spawn(whatsapp.send, BODY, f"+1650555{n:04d}") for n in range(5)]
    gevent.sleep(0.1)
    assert lane.snapshot() == {"inFlight": 2, "waiting": 3, "sent": 0}
    release.set()
    gevent.joinall(greenlets, timeout=5, raise_error=True)
    assert [g.value for g in greenlets] == ["wamid.X"] * 5
    assert peak[0] == 2
    assert lane.snapshot() == {"inFlight": 0, "waiting": 0, "sent": 5}


@responses.activate
def test_a_send_that_gets_no_slot_in_time_is_not_made() -> None:
    cfg = config()
    lane = SendLane(cfg, concurrency=1, slot_wait=0.05)
    release = gevent.event.Event()

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        release.wait(5)
        return 200, {}, '{"messages": [{"id": "wamid.X"}]}'

    call = responses.add_callback(responses.POST, SEND, callback=answer)
    whatsapp = sender(cfg, lane)
    first = gevent.spawn(whatsapp.send, BODY, "+16505550001")
    gevent.sleep(0.01)
    with pytest.raises(TransientError, match="send slots"):
        whatsapp.send(BODY, "+16505550002")
    release.set()
    assert first.get(timeout=5) == "wamid.X"
    assert call.call_count == 1  # the refused one never reached Meta


@responses.activate
def test_closing_lets_sends_in_flight_finish_and_refuses_new_ones() -> None:
    cfg = config()
    lane = SendLane(cfg, concurrency=1)
    release = gevent.event.Event()

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        release.wait(5)
        return 200, {}, '{"messages": [{"id": "wamid.X"}]}'

    call = responses.add_callback(responses.POST, SEND, callback=answer)
    whatsapp = sender(cfg, lane)
    going = gevent.spawn(whatsapp.send, BODY, "+16505550001")
    waiting = gevent.spawn(whatsapp.send, BODY, "+16505550002")  # for the one slot
    gevent.sleep(0.05)
    lane.close()
    with pytest.raises(TransientError, match="stopping"):
        whatsapp.send(BODY, "+16505550003")
    release.set()
    assert going.get(timeout=5) == "wamid.X"
    with pytest.raises(TransientError, match="stopping"):
        waiting.get(timeout=5)
    assert call.call_count == 1
    assert lane.in_flight == 0


@responses.activate
def test_an_uncertain_send_is_not_repeated_and_frees_its_slot() -> None:
    cfg = config()
    lane = SendLane(cfg)
    call = responses.post(SEND, json={"messages": []})  # a 200 without an id
    with pytest.raises(SendUncertain):
        sender(cfg, lane).send(BODY, "+16505551234")
    assert call.call_count == 1
    assert lane.in_flight == 0


@responses.activate
def test_an_upload_returns_the_media_id() -> None:
    cfg = config()
    lane = SendLane(cfg)
    call = responses.post(MEDIA, json={"id": "media-1"})
    assert sender(cfg, lane).upload(b"\x89PNG", "image/png", "a.png") == "media-1"
    assert call.call_count == 1 and lane.in_flight == 0


def test_without_a_whatsapp_configuration_nothing_is_sent() -> None:
    cfg = TenantConfig(tenant_id="t-none", version=1, genesys=None, whatsapp=None, settings={})
    whatsapp = sender(cfg, SendLane(cfg))
    with pytest.raises(PermanentError, match="no WhatsApp configuration"):
        whatsapp.send(BODY, "+16505551234")
    with pytest.raises(PermanentError, match="no WhatsApp configuration"):
        whatsapp.upload(b"x", "image/png", "a.png")


def test_a_reload_keeps_the_budgets_of_the_same_number_and_follows_its_rate() -> None:
    cfg = config({"messagesPerSecond": 5})
    lane = SendLane(cfg)
    number, pairs = lane.number_pacer, lane.pair_pacer
    lane.configure(config({"messagesPerSecond": 5}))
    assert (lane.number_pacer, lane.pair_pacer) == (number, pairs)  # same budgets, same debts
    lane.configure(config({"messagesPerSecond": 40}))
    assert lane.number_pacer.rate == 40 * META_PACED_SHARE and lane.pair_pacer is pairs
    moved = config({"messagesPerSecond": 40}, pnid="999")
    lane.configure(moved)
    assert lane.pair_pacer is not pairs  # another number: Meta counts its pairs anew
    assert sender(moved, lane).number_pacer is lane.number_pacer


def test_no_secret_in_a_senders_repr() -> None:
    cfg = config()
    text = repr(sender(cfg, SendLane(cfg)))
    assert cfg.whatsapp is not None and cfg.whatsapp.access_token not in text


@responses.activate
def test_a_send_made_after_a_token_rotation_carries_the_new_token() -> None:
    import dataclasses

    first = config()
    assert first.whatsapp is not None
    rotated = dataclasses.replace(
        first,
        version=2,
        whatsapp=dataclasses.replace(first.whatsapp, access_token=secrets.token_urlsafe(16)),
    )
    assert rotated.whatsapp is not None
    lane = SendLane(first)
    sent = responses.post(SEND, json={"messages": [{"id": "wamid.1"}]})
    # The sender of the version before the rotation: a message that started on it and was
    # still waiting for its turn when the tenant's configuration changed.
    sender = WhatsAppSender(first, lane, requests.Session(), DEFAULT_META_GRAPH_URL)
    sender.send(BODY, "16505551234")
    lane.configure(rotated)
    sender.send(BODY, "16505551234")
    sender.send(BODY, "16505551234")
    tokens = [call.request.headers["Authorization"] for call in sent.calls]
    assert (
        tokens
        == [f"Bearer {first.whatsapp.access_token}"]
        + [f"Bearer {rotated.whatsapp.access_token}"] * 2
    )
    # Another number in the newest configuration is not this sender's to use.
    other = dataclasses.replace(
        rotated, whatsapp=dataclasses.replace(rotated.whatsapp, phone_number_id="999")
    )
    lane.configure(other)
    sender.send(BODY, "16505551234")
    assert (
        sent.calls[-1].request.headers["Authorization"] == f"Bearer {first.whatsapp.access_token}"
    )
