"""Failed logins on /api/ and /control/ are throttled per client address and per tenant key id,
logged without the token and counted (issue 13, finding 7). The real app through Falcon's
TestClient, a clock the test moves by hand."""

from __future__ import annotations

import logging
import secrets

import falcon.testing
import pytest

from interlink.http.app import create_app
from interlink.http.auth import FAILURE_LIMIT, FAILURE_WINDOW, LoginThrottle, Throttle
from interlink.services import Services

Client = falcon.testing.TestClient
ATTACKER = "198.51.100.7"
OPERATOR_HOST = "192.0.2.10"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(services: Services, clock: FakeClock) -> Client:
    services.login_throttle = LoginThrottle(clock=clock)
    return falcon.testing.TestClient(create_app(services))


def get(
    client: Client, token: str | None, addr: str, path: str = "/api/tenants"
) -> falcon.testing.Result:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.simulate_get(path, headers=headers, remote_addr=addr)


def failures(services: Services, reason: str) -> float:
    value = services.metrics.get_sample_value("interlink_auth_failures_total", {"reason": reason})
    return value or 0.0


def wrong() -> str:
    return "ila_" + secrets.token_urlsafe(32)


def test_repeated_wrong_tokens_become_429_with_retry_after_even_for_the_right_token(
    app: Client, services: Services
) -> None:
    invalid, throttled = failures(services, "invalid"), failures(services, "throttled")
    for _ in range(FAILURE_LIMIT):
        assert get(app, wrong(), ATTACKER).status_code == 401
    result = get(app, wrong(), ATTACKER)
    assert result.status_code == 429
    assert result.headers["Retry-After"] == str(int(FAILURE_WINDOW))
    assert set(result.json) == {"title", "description"}
    # The right token no longer helps from there: otherwise 429 vs 200 would tell a guess apart.
    assert get(app, services.admin_token, ATTACKER).status_code == 429
    assert failures(services, "invalid") - invalid == FAILURE_LIMIT
    assert failures(services, "throttled") - throttled == 2
    # /control/ is behind the same door.
    assert get(app, wrong(), ATTACKER, "/control/tenants").status_code == 429


def test_the_block_ends_when_the_window_has_passed(
    app: Client, services: Services, clock: FakeClock
) -> None:
    for _ in range(FAILURE_LIMIT):
        get(app, wrong(), ATTACKER)
    clock.now += FAILURE_WINDOW - 1
    result = get(app, services.admin_token, ATTACKER)
    assert result.status_code == 429
    assert result.headers["Retry-After"] == "1"
    clock.now += 1
    assert get(app, services.admin_token, ATTACKER).status_code == 200
    # And a fresh start: the next limit-1 failures are 401s, not 429s.
    for _ in range(FAILURE_LIMIT - 1):
        assert get(app, wrong(), ATTACKER).status_code == 401
    assert get(app, services.admin_token, ATTACKER).status_code == 200


def test_failures_spread_over_windows_do_not_add_up(
    app: Client, services: Services, clock: FakeClock
) -> None:
    for _ in range(3):
        for _ in range(FAILURE_LIMIT - 1):
            assert get(app, wrong(), ATTACKER).status_code == 401
        clock.now += FAILURE_WINDOW
    assert get(app, services.admin_token, ATTACKER).status_code == 200


def test_another_client_is_not_locked_out(app: Client, services: Services) -> None:
    for _ in range(FAILURE_LIMIT + 5):
        get(app, wrong(), ATTACKER)
    assert get(app, services.admin_token, ATTACKER).status_code == 429
    assert get(app, services.admin_token, OPERATOR_HOST).status_code == 200


def test_requests_without_a_token_are_counted_but_guess_nothing(
    app: Client, services: Services
) -> None:
    missing = failures(services, "missing")
    for _ in range(FAILURE_LIMIT * 3):
        assert get(app, None, ATTACKER).status_code == 401
    assert failures(services, "missing") - missing == FAILURE_LIMIT * 3
    assert get(app, services.admin_token, ATTACKER).status_code == 200


def test_a_key_id_is_throttled_across_addresses(app: Client, services: Services) -> None:
    op = {"Authorization": f"Bearer {services.admin_token}"}
    created = app.simulate_post(
        "/api/tenants", json={"tenantId": "acme", "name": "Acme"}, headers=op
    )
    assert created.status_code == 201, created.text
    issued = app.simulate_post("/api/tenants/acme/keys", headers=op, remote_addr=OPERATOR_HOST)
    key, key_id = issued.json["key"], issued.json["keyId"]
    other = app.simulate_post("/api/tenants/acme/keys", headers=op).json["key"]
    prefix = f"ilk_{key_id}_"
    for i in range(FAILURE_LIMIT):
        guess = prefix + secrets.token_urlsafe(32)
        assert get(app, guess, f"203.0.113.{i + 1}", "/api/tenants/acme").status_code == 401
    # An address that never failed, with the key itself: the key id is blocked.
    result = get(app, key, "203.0.113.200", "/api/tenants/acme")
    assert result.status_code == 429
    assert int(result.headers["Retry-After"]) == int(FAILURE_WINDOW)
    # The tenant's other key and the operator are untouched: a fresh key is the way out.
    assert get(app, other, "203.0.113.200", "/api/tenants/acme").status_code == 200
    assert get(app, services.admin_token, "203.0.113.201").status_code == 200


def test_the_log_names_client_route_and_key_id_but_never_the_token(
    app: Client, services: Services, hidden: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    key_id = secrets.token_hex(8)
    for i in range(FAILURE_LIMIT + 3):
        token = wrong() if i % 2 else f"ilk_{key_id}_{secrets.token_urlsafe(32)}"
        hidden.append(token)
        get(app, token, ATTACKER, "/api/tenants/some-path")
    hidden.append(services.admin_token)
    get(app, services.admin_token, ATTACKER)
    lines = [r for r in caplog.records if r.name == "interlink.http.auth"]
    # One line per failure until blocked (the last of them says so); the 429s after that are
    # only counted, so a flood of guesses does not become a flood of log lines.
    assert len(lines) == FAILURE_LIMIT
    assert all(r.levelno == logging.WARNING for r in lines)
    assert lines[-1].getMessage() == "login blocked after repeated failures"
    assert {vars(r)["client"] for r in lines} == {ATTACKER}
    assert {vars(r)["route"] for r in lines} == {"/api/tenants/some-path"}
    assert {vars(r)["keyId"] for r in lines} == {key_id, None}


def test_a_token_too_long_counts_as_a_failure(app: Client, services: Services) -> None:
    for _ in range(FAILURE_LIMIT):
        assert get(app, "x" * 600, ATTACKER).status_code == 401
    assert get(app, services.admin_token, ATTACKER).status_code == 429


def test_ipv6_clients_are_bucketed_by_their_64(app: Client, services: Services) -> None:
    for i in range(FAILURE_LIMIT):
        assert get(app, wrong(), f"2001:db8:1:2::{i + 1:x}").status_code == 401
    assert get(app, services.admin_token, "2001:db8:1:2:ffff::1").status_code == 429
    assert get(app, services.admin_token, "2001:db8:1:3::1").status_code == 200
    # An IPv4 client seen through an IPv6 socket is the same IPv4 client.
    for _ in range(FAILURE_LIMIT):
        assert get(app, wrong(), f"::ffff:{ATTACKER}").status_code == 401
    assert get(app, services.admin_token, ATTACKER).status_code == 429


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(
    services: Services, clock: FakeClock
) -> None:
    services.login_throttle = LoginThrottle(clock=clock, trusted_proxies=["10.0.0.0/8"])
    app = falcon.testing.TestClient(create_app(services))

    def via(peer: str, forwarded: str, token: str) -> int:
        headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": forwarded}
        return app.simulate_get("/api/tenants", headers=headers, remote_addr=peer).status_code

    # Through the proxy: the client named by the proxy (the right-most untrusted hop) is blocked,
    # whatever it put further left itself; others behind the same proxy are not.
    for _ in range(FAILURE_LIMIT):
        assert via("10.1.1.1", f"{OPERATOR_HOST}, {ATTACKER}, 10.2.2.2", wrong()) == 401
    assert via("10.1.1.1", ATTACKER, services.admin_token) == 429
    assert via("10.1.1.1", OPERATOR_HOST, services.admin_token) == 200
    # Straight from an untrusted peer the header is ignored: it cannot dodge its own block by
    # naming someone else, nor block someone else by naming them.
    for _ in range(FAILURE_LIMIT):
        assert via("198.51.100.99", "192.0.2.55", wrong()) == 401
    assert via("198.51.100.99", "192.0.2.77", services.admin_token) == 429
    assert via("10.1.1.1", "192.0.2.55", services.admin_token) == 200


def test_without_trusted_proxies_x_forwarded_for_is_ignored(
    app: Client, services: Services
) -> None:
    for i in range(FAILURE_LIMIT):
        result = app.simulate_get(
            "/api/tenants",
            headers={"Authorization": f"Bearer {wrong()}", "X-Forwarded-For": f"192.0.2.{i}"},
            remote_addr=ATTACKER,
        )
        assert result.status_code == 401
    assert get(app, services.admin_token, ATTACKER).status_code == 429


def test_the_throttle_stays_bounded_under_made_up_ids(clock: FakeClock) -> None:
    throttle = Throttle(limit=3, window=60, max_entries=100, clock=clock)
    for i in range(10_000):
        throttle.fail(f"{i:016x}")
    assert len(throttle) == 100
    # The most recent survive; their counts are intact.
    for _ in range(2):
        assert throttle.fail(f"{9_999:016x}") is (_ == 1)
    assert throttle.retry_after(f"{9_999:016x}") == 60
