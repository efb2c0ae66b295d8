"""A shard's ``/metrics`` over a real socket: every contract series before any traffic, the
delivery and ack histograms counting one message each way, and the inbox gauges rising while a
provider is down and falling once it is back."""

from __future__ import annotations

import requests

from tests.e2e.world import World, wait_for
from tests.telemetry.test_metrics import CONTRACT, samples


def scrape(world: World) -> dict[str, float]:
    resp = requests.get(world.shard.url + "/metrics", timeout=5)
    assert resp.status_code == 200
    return samples(resp.text)


def test_a_fresh_shard_lists_every_series_then_counts_a_message_each_way(world: World) -> None:
    first = scrape(world)
    assert [series for series in CONTRACT if series not in first] == []
    assert first['interlink_delivery_seconds_count{direction="to_genesys"}'] == 0

    tenant = world.add_tenant("acme")
    user, state = world.user(), world.state
    assert state.user.say(tenant.phone_number_id, user, "text", body="hola").status == 200
    wait_for(lambda: state.genesys.messages_from(tenant.integration_id), message="inbound")
    assert state.agent.send(tenant.integration_id, user.wa_id, text="hi").status == 200
    wait_for(lambda: state.meta.sent_to(tenant.phone_number_id), message="reply")

    # The ack comes before the delivery; the delivery is counted just after the provider's 2xx.
    shown = wait_for(
        lambda: (
            s
            if (s := scrape(world))['interlink_delivery_seconds_count{direction="to_whatsapp"}']
            else None
        ),
        message="delivery counted",
    )
    assert shown['interlink_delivery_seconds_count{direction="to_genesys"}'] == 1
    assert shown['interlink_delivery_seconds_count{direction="to_whatsapp"}'] == 1
    assert shown['interlink_webhook_ack_seconds_count{provider="whatsapp"}'] >= 1
    assert shown['interlink_webhook_ack_seconds_count{provider="genesys"}'] >= 1
    assert shown['interlink_webhooks_total{provider="whatsapp",status="200"}'] >= 1
    assert shown['interlink_webhooks_total{provider="genesys",status="200"}'] >= 1
    assert shown['interlink_provider_request_seconds_count{outcome="2xx",provider="genesys"}'] >= 1
    assert shown['interlink_provider_request_seconds_count{outcome="2xx",provider="whatsapp"}'] >= 1
    assert shown['interlink_tenants{state="active"}'] == 1


def test_inbox_gauges_rise_while_genesys_is_down_and_fall_after(world: World) -> None:
    tenant = world.add_tenant("acme")
    user, state = world.user(), world.state
    rule = state.faults.inject("genesys.message", status=500, count=None, tenant="org-acme")
    for n in range(3):
        assert state.user.say(tenant.phone_number_id, user, "text", body=f"m{n}").status == 200

    down = wait_for(
        lambda: s if (s := scrape(world))["interlink_inbox_pending"] >= 3 else None,
        message="pending entries",
    )
    aged = wait_for(
        lambda: s if (s := scrape(world))["interlink_inbox_oldest_age_seconds"] >= 1 else None,
        message="an ageing entry",
    )
    assert down["interlink_inbox_pending"] == 3
    assert aged['interlink_provider_request_seconds_count{outcome="5xx",provider="genesys"}'] >= 1

    state.faults.remove(rule.id)
    wait_for(lambda: len(state.genesys.messages_from(tenant.integration_id)) == 3, timeout=60)
    after = wait_for(
        lambda: s if (s := scrape(world))["interlink_inbox_pending"] == 0 else None,
        message="inbox drained",
    )
    assert after["interlink_inbox_oldest_age_seconds"] == 0
    assert after['interlink_delivery_seconds_count{direction="to_genesys"}'] == 3
