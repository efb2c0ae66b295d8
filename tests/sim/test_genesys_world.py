"""The simulated Genesys state on its own: who owns which client and integration, credential
rotation, tokens, conversations and signed download links, with a clock the test moves."""

from __future__ import annotations

import secrets

import pytest

from interlink.sim.genesys import Refusal
from interlink.sim.genesys_world import GenesysWorld

REGION = "mypurecloud.ie"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world(clock: Clock) -> GenesysWorld:
    world = GenesysWorld(clock)
    world.add_org(
        "org-a",
        region=REGION,
        client_id="client-a",
        client_secret="secret-a",
        integration_ids=["int-a"],
        token_lifetime=600,
    )
    return world


def test_a_client_or_integration_of_another_org_is_refused(world: GenesysWorld) -> None:
    with pytest.raises(ValueError, match="client-a belongs to org org-a"):
        world.add_org("org-b", region=REGION, client_id="client-a", client_secret="s")
    with pytest.raises(ValueError, match="int-a belongs to org org-a"):
        world.add_org(
            "org-b",
            region=REGION,
            client_id="client-b",
            client_secret="s",
            integration_ids=["int-a"],
        )
    with pytest.raises(ValueError, match="client-a belongs to org org-a"):
        world.add_org("org-b", region=REGION, client_id="client-b", client_secret="s")
        world.add_client("org-b", "client-a", "s")
    assert world.org_for_integration("int-a") is world.orgs["org-a"]


def test_replacing_an_org_releases_its_old_client_and_integrations(world: GenesysWorld) -> None:
    world.add_org(
        "org-a", region=REGION, client_id="client-a2", client_secret="s", integration_ids=["int-a2"]
    )
    assert world.org_for_client("client-a") is None
    assert world.org_for_integration("int-a") is None
    world.add_org("org-b", region=REGION, client_id="client-a", client_secret="s")
    assert world.org_for_client("client-a") is world.orgs["org-b"]


def test_login_needs_the_right_secret_and_region_and_a_rotated_client_works_too(
    world: GenesysWorld,
) -> None:
    assert world.login(REGION, "client-a", "wrong") is None
    assert world.login("mypurecloud.de", "client-a", "secret-a") is None
    rotated = secrets.token_urlsafe(16)
    world.add_client("org-a", "client-new", rotated)
    issued = world.login(REGION, "client-new", rotated)
    assert issued is not None and (issued.org_id, issued.client_id) == ("org-a", "client-new")
    assert world.login(REGION, "client-a", "secret-a") is not None


def test_authenticate_answers_the_401_of_each_bad_token(world: GenesysWorld, clock: Clock) -> None:
    issued = world.login(REGION, "client-a", "secret-a")
    assert issued is not None
    assert world.authenticate(f"Bearer {issued.token}", REGION) is issued
    codes = [
        world.authenticate(None, REGION),
        world.authenticate(f"Bearer {issued.token}", "mypurecloud.de"),
        world.authenticate("Bearer not-a-token", REGION),
    ]
    assert [c.code for c in codes if isinstance(c, Refusal)] == [
        "authentication.required",
        "bad.credentials",
        "bad.credentials",
    ]
    clock.now += 600
    expired = world.authenticate(f"Bearer {issued.token}", REGION)
    assert isinstance(expired, Refusal) and expired.code == "credentials.expired"


def test_expire_tokens_counts_only_live_matching_tokens(world: GenesysWorld) -> None:
    world.add_org("org-b", region=REGION, client_id="client-b", client_secret="secret-b")
    world.login(REGION, "client-a", "secret-a")
    world.login(REGION, "client-b", "secret-b")
    assert world.expire_tokens(org_id="org-a") == 1
    assert world.expire_tokens(org_id="org-a") == 0
    assert world.expire_tokens() == 1
    assert len(world.tokens_of("org-a")) == 1


def test_one_conversation_per_participant_and_integration(world: GenesysWorld) -> None:
    first = world.conversation_id("int-a", "user-1")
    assert world.conversation_id("int-a", "user-1") == first
    assert world.conversation_id("int-a", "user-2") != first


def test_receipts_attach_to_the_agent_message_of_that_integration(world: GenesysWorld) -> None:
    sent = world.outbound_message("int-a", {"id": "user-1", "idType": "Opaque"}, text="hello")
    receipt = {
        "id": sent.id,
        "channel": {"to": {"id": "user-1", "idType": "Opaque"}, "time": "2026-01-02T10:00:00Z"},
        "status": "Delivered",
    }
    world.accept_receipt(world.orgs["org-a"], "int-other", receipt)
    assert world.receipts_for(sent.id) == []
    answer = world.accept_receipt(world.orgs["org-a"], "int-a", receipt)
    assert world.receipts_for(sent.id) == [receipt]
    assert (answer["status"], answer["isFinalReceipt"]) == ("Delivered", False)


def test_an_agent_message_needs_a_known_integration_and_something_to_say(
    world: GenesysWorld,
) -> None:
    with pytest.raises(KeyError):
        world.outbound_message("int-unknown", {"id": "u", "idType": "Opaque"}, text="hi")
    with pytest.raises(ValueError):
        world.outbound_message("int-a", {"id": "u", "idType": "Opaque"})


def test_signed_download_links_expire_and_bind_the_download(
    world: GenesysWorld, clock: Clock
) -> None:
    download = world.add_download("org-a", b"%PDF", "application/pdf", "a.pdf")
    query = dict(part.split("=") for part in world.signed_download_query(download.id).split("&"))
    expires, signature = query["expires"], query["signature"]
    assert world.check_signed_download(download.id, expires, signature)
    assert not world.check_signed_download("other-download", expires, signature)
    assert not world.check_signed_download(download.id, "not-a-number", signature)
    clock.now += world.download_url_ttl
    assert not world.check_signed_download(download.id, expires, signature)
