"""Faults fire as many times as asked, in the service's own error shape, then stop."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
import requests

from interlink.sim import SimServer, SimState
from interlink.sim.genesys import GenesysOrg
from interlink.sim.meta import MetaNumber
from interlink.sim.recorder import Recorder

REGION = "mypurecloud.de"


@pytest.fixture
def server() -> Iterator[SimServer]:
    with SimServer(SimState()) as running:
        yield running


def _org(state: SimState) -> GenesysOrg:
    return state.genesys.add_org(
        "org-" + secrets.token_hex(4),
        region=REGION,
        client_id=secrets.token_hex(8),
        client_secret=secrets.token_urlsafe(16),
        integration_ids=[secrets.token_hex(8)],
    )


def _number(state: SimState) -> MetaNumber:
    return state.meta.add_number(
        str(secrets.randbelow(10**15)),
        access_token=secrets.token_urlsafe(24),
        app_secret=secrets.token_hex(8),
    )


def _send(server: SimServer, number: MetaNumber, timeout: float = 5) -> requests.Response:
    return requests.post(
        f"{server.env()['INTERLINK_META_GRAPH_URL']}/{number.phone_number_id}/messages",
        headers={"Authorization": f"Bearer {number.access_token}"},
        json={
            "messaging_product": "whatsapp",
            "to": "351910000001",
            "type": "text",
            "text": {"body": "x"},
        },
        timeout=timeout,
    )


def _genesys_message(server: SimServer, org: GenesysOrg) -> requests.Response:
    login = server.env()["INTERLINK_GENESYS_LOGIN_URL"].replace("{region}", REGION)
    api = server.env()["INTERLINK_GENESYS_API_URL"].replace("{region}", REGION)
    token = requests.post(
        login + "/oauth/token",
        auth=(org.client_id, org.client_secret),
        data={"grant_type": "client_credentials"},
        timeout=5,
    ).json()["access_token"]
    return requests.post(
        f"{api}/api/v2/conversations/messages/{next(iter(org.integration_ids))}/inbound/open/message",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "channel": {"from": {"id": "u", "idType": "Opaque"}, "time": "2026-01-02T10:00:00Z"},
            "text": "x",
        },
        timeout=5,
    )


def test_genesys_429_with_retry_after_twice_then_normal(server: SimServer) -> None:
    org = _org(server.state)
    created = requests.post(
        f"{server.url}/_sim/faults",
        timeout=5,
        json={"route": "genesys.message", "count": 2, "status": 429, "retryAfter": 3},
    )
    assert created.status_code == 201
    answers = [_genesys_message(server, org) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "3"
    assert answers[0].json()["code"] == "too.many.requests.retry.after"
    records = server.state.requests(kind="genesys.message", tenant=org.org_id)
    assert [r.fault for r in records] == ["status 429", "status 429", None]
    assert requests.get(f"{server.url}/_sim/faults", timeout=5).json()["items"] == []


def test_meta_error_code_fault_uses_graph_shape_and_its_status(server: SimServer) -> None:
    number = _number(server.state)
    server.state.faults.inject("meta.messages", count=1, meta_error=131056)
    first, second = _send(server, number), _send(server, number)
    assert first.status_code == 429
    assert first.json()["error"]["code"] == 131056 and first.json()["error"]["fbtrace_id"]
    assert second.status_code == 200


def test_5xx_fault_only_for_the_named_tenant(server: SimServer) -> None:
    target, bystander = _number(server.state), _number(server.state)
    server.state.faults.inject(
        "meta.messages", count=None, status=503, tenant=target.phone_number_id
    )
    assert _send(server, bystander).status_code == 200
    failing = _send(server, target)
    assert failing.status_code == 503 and failing.json()["error"]["code"] == 2
    assert _send(server, target).status_code == 503  # count=None: until cleared
    assert requests.delete(f"{server.url}/_sim/faults", timeout=5).status_code == 204
    assert _send(server, target).status_code == 200


def test_latency_then_normal_answer(server: SimServer) -> None:
    number = _number(server.state)
    server.state.faults.inject("meta.messages", latency=0.2)
    started = time.monotonic()
    assert _send(server, number).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_dropped_connection_then_recovery(server: SimServer) -> None:
    number = _number(server.state)
    server.state.faults.inject("meta.messages", drop=True)
    with pytest.raises(requests.ConnectionError):
        _send(server, number)
    assert _send(server, number).status_code == 200
    assert [r.status for r in server.state.requests(kind="meta.messages")] == [0, 200]


def test_hang_outlasts_the_client_timeout(server: SimServer) -> None:
    number = _number(server.state)
    server.state.faults.inject("meta.messages", hang=2.0)
    with pytest.raises(requests.Timeout):
        _send(server, number, timeout=0.3)
    assert _send(server, number).status_code == 200


def test_token_route_fault_and_invalid_fault_specs(server: SimServer) -> None:
    org = _org(server.state)
    server.state.faults.inject("genesys.token", count=1, status=503)
    login = server.env()["INTERLINK_GENESYS_LOGIN_URL"].replace("{region}", REGION) + "/oauth/token"
    form = {"grant_type": "client_credentials"}
    assert (
        requests.post(
            login, auth=(org.client_id, org.client_secret), data=form, timeout=5
        ).status_code
        == 503
    )
    assert (
        requests.post(
            login, auth=(org.client_id, org.client_secret), data=form, timeout=5
        ).status_code
        == 200
    )
    for bad in (
        {"route": "nowhere"},
        {"route": "meta.messages", "count": 0},
        {"status": 500},
        {"route": "genesys.message", "metaError": 131056},
    ):
        assert requests.post(f"{server.url}/_sim/faults", json=bad, timeout=5).status_code == 400


def test_request_log_over_http(server: SimServer) -> None:
    number = _number(server.state)
    _send(server, number)
    _send(server, _number(server.state))
    items = requests.get(
        f"{server.url}/_sim/requests", params={"tenant": number.phone_number_id}, timeout=5
    ).json()["items"]
    assert len(items) == 1 and items[0]["kind"] == "meta.messages"
    assert items[0]["headers"]["authorization"] == f"Bearer {number.access_token}"
    assert items[0]["body"]["to"] == "351910000001"
    assert requests.delete(f"{server.url}/_sim/requests", timeout=5).status_code == 204
    assert requests.get(f"{server.url}/_sim/requests", timeout=5).json()["count"] == 0


def test_recorder_indexes_and_bounds() -> None:
    recorder = Recorder(capacity=1000)
    for i in range(3000):
        recorder.record(
            time=0.0,
            kind=f"k{i % 3}",
            tenant=f"t{i % 2}",
            direction="in",
            method="POST",
            path="/",
            query="",
            headers={},
            body=None,
            status=200,
        )
    assert recorder.count() == 1000
    both = recorder.query(kind="k0", tenant="t1")
    assert both and all(r.kind == "k0" and r.tenant == "t1" for r in both)
    last_seq = recorder.query(limit=1)[0].seq
    assert last_seq == 3000
    assert [r.seq for r in recorder.query(since=2995)] == [2996, 2997, 2998, 2999, 3000]
    assert [r.seq for r in recorder.query(kind="k0", limit=2)] == [2995, 2998]  # seq = i + 1
