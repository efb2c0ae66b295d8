"""The story ``interlink demo`` plays, step by step, against a started :class:`DemoStack`.

Each step acts as a user, an agent or an operator would, then waits for what that should cause
and checks it (the right tenant, the right token, the right bytes) before printing its line: the
first arrival that does not come, or comes wrong, raises :class:`DemoFailure` with the reason.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import gevent
import requests

from interlink.demo.stack import DemoStack
from interlink.demo.transcript import Transcript, mask, shorten
from interlink.sim.whatsapp_payloads import WhatsAppUser

ARRIVAL_TIMEOUT = 10.0  # each hop takes milliseconds; this only bounds a broken run
POLL_INTERVAL = 0.05

T = TypeVar("T")


class DemoFailure(RuntimeError):
    """An expected arrival did not come, or came wrong; ``str()`` is the line shown."""


@dataclass(frozen=True)
class BotMenu:
    """A Genesys bot's quick reply (``Structured``, one ``QuickReply`` per option: title and
    payload) and the option the user taps."""

    question: str
    options: tuple[tuple[str, str], ...]
    taps: str


@dataclass(frozen=True)
class Scene:
    """One tenant's part of the story: who writes, what, what the agent answers, and (when
    ``bot_menu`` is set) the bot's quick reply the user then answers with a button tap."""

    tenant_id: str
    name: str
    region: str
    user_name: str
    user_phone: str
    says: str
    agent_answers: str
    sends_photo: bool = False
    bot_menu: BotMenu | None = None


SCENES = (
    Scene(
        tenant_id="acme",
        name="Acme Retail",
        region="mypurecloud.ie",
        user_name="Ana",
        user_phone="34611000001",
        says="Hola, ¿dónde está mi pedido 1042?",
        agent_answers="Hola Ana, sale hoy y llega mañana.",
        sends_photo=True,
        bot_menu=BotMenu(
            question="¿Algo más?",
            options=(
                ("Seguir mi pedido", "track-order"),
                ("Cambiar dirección", "change-address"),
                ("Hablar con alguien", "talk-to-agent"),
            ),
            taps="change-address",
        ),
    ),
    Scene(
        tenant_id="globex",
        name="Globex Energie",
        region="mypurecloud.de",
        user_name="Bob",
        user_phone="4915100000002",
        says="Hallo, kann ich meine Adresse ändern?",
        agent_answers="Hallo Bob, ja, schon erledigt.",
    ),
)

#: What Ana's photo is made of: a JPEG header and filler, enough to compare byte for byte.
PHOTO = b"\xff\xd8\xff\xe0" + b"interlink-demo-photo" * 16


@dataclass
class DemoTenant:
    """A tenant as created by the demo, with the credentials generated for it."""

    scene: Scene
    number: int
    org_id: str = ""
    phone_number_id: str = ""
    display_phone: str = ""
    integration_id: str = ""
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    webhook_secret: str = field(default="", repr=False)
    access_token: str = field(default="", repr=False)
    app_secret: str = field(default="", repr=False)
    verify_token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        tid, n = self.scene.tenant_id, self.number
        self.org_id = f"org-{tid}"
        self.phone_number_id = f"10{n:013d}"
        self.display_phone = f"1555010{n:04d}"
        self.integration_id = f"integration-{tid}-{secrets.token_hex(4)}"
        self.client_id = f"client-{tid}-{secrets.token_hex(4)}"
        self.client_secret = secrets.token_urlsafe(24)
        self.webhook_secret = secrets.token_urlsafe(24)
        self.access_token = secrets.token_urlsafe(40)
        self.app_secret = secrets.token_urlsafe(24)
        self.verify_token = secrets.token_urlsafe(12)

    @property
    def credentials(self) -> list[str]:
        return [
            self.client_secret,
            self.webhook_secret,
            self.access_token,
            self.app_secret,
            self.verify_token,
        ]


@dataclass(frozen=True)
class Tally:
    """What a whole run carried: user messages in, agent replies out, receipts back, and bot
    quick replies answered by a tap (each tap reached Genesys as a structured response)."""

    inbound: int
    replies: int
    receipts: int
    taps: int


def wait_for(predicate: Callable[[], T | None], what: str, timeout: float = ARRIVAL_TIMEOUT) -> T:
    """Poll ``predicate`` until it returns something truthy; :class:`DemoFailure` naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailure(f"{what} did not arrive within {timeout:.0f} s")
        gevent.sleep(POLL_INTERVAL)


def bearer(headers: Any) -> str:
    value = str(headers.get("authorization") or "")
    return value.removeprefix("Bearer ")


class Play:
    """The demo's steps, in order; each prints its line once what it shows has been checked."""

    def __init__(self, stack: DemoStack, out: Transcript, scenes: Sequence[Scene] = SCENES) -> None:
        self.stack = stack
        self.out = out
        #: Every secret generated or issued so far (tenant credentials, admin token, Genesys
        #: tokens, media link tokens): none may be printed.
        self.secrets: list[str] = []
        self.tenants = [DemoTenant(scene, n) for n, scene in enumerate(scenes, start=1)]
        self.users = {
            t.scene.tenant_id: WhatsAppUser(wa_id=t.scene.user_phone, name=t.scene.user_name)
            for t in self.tenants
        }
        for tenant in self.tenants:
            self.secrets.extend(tenant.credentials)

    @property
    def state(self) -> Any:
        return self.stack.state

    def run(self) -> Tally:
        """The whole story; what went in, came out and came back."""
        self.start()
        for tenant in self.tenants:
            self.create(tenant)
        participants = {t.scene.tenant_id: self.user_writes(t) for t in self.tenants}
        self.check_isolation()
        photos = sum(self.photo(t, participants[t.scene.tenant_id]) for t in self.tenants)
        messages = {t.scene.tenant_id: self.agent_replies(t, participants) for t in self.tenants}
        for tenant in self.tenants:
            self.receipt(tenant, messages[tenant.scene.tenant_id])
        taps = sum(self.bot_menu(t, participants[t.scene.tenant_id]) for t in self.tenants)
        return Tally(len(self.tenants) + photos, len(messages), len(messages), taps)

    # -- setup ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.stack.start_simulators()
        self.out.step("setup", f"Meta and Genesys simulators on {self.stack.sim.url}", "setup")
        began = time.monotonic()
        self.stack.start_shard()
        self.secrets.append(self.stack.admin_token)
        self.out.step(
            "setup",
            f"shard on {self.stack.url}, embedded Valkey under {self.stack.data_dir} "
            f"(ready in {time.monotonic() - began:.1f} s)",
            "setup",
        )

    def create(self, t: DemoTenant) -> None:
        """The provider side (a Genesys org, a WhatsApp number) in the simulators, then the
        tenant in interlink through the admin API, exactly as an operator would."""
        scene = t.scene
        self.state.genesys.add_org(
            t.org_id,
            region=scene.region,
            client_id=t.client_id,
            client_secret=t.client_secret,
            integration_ids=[t.integration_id],
            webhook_secret=t.webhook_secret,
            webhook_url=self.stack.url + "/webhooks/genesys",
        )
        self.state.meta.add_number(
            t.phone_number_id,
            access_token=t.access_token,
            app_secret=t.app_secret,
            display_phone_number=t.display_phone,
            waba_id=f"20{t.number:013d}",
            webhook_url=self.stack.url + "/webhooks/whatsapp",
        )
        tid = scene.tenant_id
        calls: list[tuple[str, str, dict[str, Any]]] = [
            (
                "POST",
                "/api/tenants",
                {
                    "tenantId": tid,
                    "name": scene.name,
                    "genesysOrgId": t.org_id,
                    "genesysOrgName": scene.name,
                    "genesysRegion": scene.region,
                },
            ),
            (
                "PUT",
                f"/api/tenants/{tid}/genesys/credentials",
                {
                    "clientId": t.client_id,
                    "clientSecret": t.client_secret,
                    "region": scene.region,
                    "integrationId": t.integration_id,
                    "webhookSecret": t.webhook_secret,
                },
            ),
            (
                "POST",
                f"/api/tenants/{tid}/whatsapp/config",
                {
                    "meta_access_token": t.access_token,
                    "whatsapp_phone_number_id": t.phone_number_id,
                    "whatsapp_business_account_id": f"20{t.number:013d}",
                    "meta_app_secret": t.app_secret,
                    "webhook_verify_token": t.verify_token,
                },
            ),
        ]
        for method, path, body in calls:
            answer = self.stack.admin(method, path, json=body)
            if answer.status_code not in (200, 201):
                raise DemoFailure(
                    f"{method} {path} answered {answer.status_code}: {shorten(answer.text, 200)}"
                )
        self.out.step(
            f"admin ▸ {tid}",
            f'tenant "{scene.name}": Genesys org {t.org_id} in {scene.region} '
            f"(client secret {mask(t.client_secret)}), WhatsApp +{t.display_phone} "
            f"(access token {mask(t.access_token)})",
            "admin",
        )

    # -- WhatsApp → Genesys ---------------------------------------------------------------------
    def user_writes(self, t: DemoTenant) -> str:
        """The user's text reaches the tenant's integration with the tenant's token; returns
        the participant id Genesys knows the user by."""
        scene, user = t.scene, self.users[t.scene.tenant_id]
        delivery = self.state.user.say(t.phone_number_id, user, "text", body=scene.says)
        if delivery.status != 200:
            raise DemoFailure(f"the WhatsApp webhook for {scene.tenant_id} got {delivery.status}")
        self.out.step(
            f"WhatsApp ▸ {scene.tenant_id}",
            f'{scene.user_name} (+{scene.user_phone}) to +{t.display_phone}: "{scene.says}"',
            "whatsapp",
        )
        received = wait_for(
            lambda: self.state.genesys.messages_from(t.integration_id),
            f"{scene.user_name}'s message at {t.org_id}",
        )[0]
        if received.body.get("text") != scene.says:
            raise DemoFailure(f"{t.org_id} received {received.body.get('text')!r}")
        token = self.genesys_token(t)
        sender = received.body["channel"]["from"]
        self.out.step(
            f"Genesys {scene.tenant_id}",
            f'received "{shorten(scene.says)}" from {sender.get("nickname")} '
            f"(conversation {received.conversation_id[:8]}, token {mask(token)})",
            "genesys",
        )
        return str(sender["id"])

    def genesys_token(self, t: DemoTenant) -> str:
        """The token on every Open Messaging call for ``t``'s org, checked to be one that org's
        own client was issued."""
        calls = self.state.requests(kind="genesys.message", tenant=t.org_id)
        used = {bearer(call.headers) for call in calls}
        issued = {issued.token for issued in self.state.genesys.tokens_of(t.org_id)}
        self.secrets.extend(issued - set(self.secrets))
        if not calls or not used <= issued:
            raise DemoFailure(f"calls for {t.org_id} carried a token its client was not issued")
        return used.pop()

    def check_isolation(self) -> None:
        """Nothing of one tenant at the other: each integration saw only its own user, and the
        two orgs' tokens differ."""
        tokens = set()
        for t in self.tenants:
            senders = {
                m.body["channel"]["from"].get("nickname")
                for m in self.state.genesys.messages_from(t.integration_id)
            }
            if senders != {t.scene.user_name}:
                raise DemoFailure(f"{t.org_id} received messages from {sorted(map(str, senders))}")
            tokens.add(self.genesys_token(t))
        if len(tokens) != len(self.tenants):
            raise DemoFailure("two tenants' messages went to Genesys with the same token")
        self.out.step(
            "check",
            f"each org got only its own user's message, each with its own token "
            f"({len(tokens)} tokens for {len(self.tenants)} orgs)",
            "check",
        )

    def photo(self, t: DemoTenant, participant: str) -> int:
        """A photo from the user reaches Genesys as a link to the shard's ``/media/{token}``;
        fetching the link returns the very bytes the user sent. 1 if a photo was sent."""
        scene = t.scene
        if not scene.sends_photo:
            return 0
        user = self.users[scene.tenant_id]
        delivery = self.state.user.say(
            t.phone_number_id,
            user,
            "image",
            data=PHOTO,
            mime_type="image/jpeg",
            caption="the label on my parcel",
        )
        if delivery.status != 200:
            raise DemoFailure(f"the WhatsApp webhook for {scene.tenant_id} got {delivery.status}")
        self.out.step(
            f"WhatsApp ▸ {scene.tenant_id}",
            f"{scene.user_name} sends a photo ({len(PHOTO)} bytes, image/jpeg), "
            f'"the label on my parcel"',
            "whatsapp",
        )

        def attachment() -> dict[str, Any] | None:
            for message in self.state.genesys.messages_from(t.integration_id, participant):
                for item in message.body.get("content") or []:
                    return {**item["attachment"], "caption": message.body.get("text")}
            return None

        found = wait_for(attachment, f"{scene.user_name}'s photo at {t.org_id}")
        url = str(found["url"])
        link_token = url.rsplit("/", 1)[-1]
        self.secrets.append(link_token)
        try:
            fetched = requests.get(url, timeout=10)
        except requests.RequestException as exc:
            raise DemoFailure(f"the media link does not answer: {exc}") from None
        if fetched.status_code != 200 or fetched.content != PHOTO:
            raise DemoFailure(f"the media link answered {fetched.status_code}, not the photo")
        shown = url[: -len(link_token)] + mask(link_token)
        self.out.step(
            f"Genesys {scene.tenant_id}",
            f'received an {found.get("mediaType")} "{found.get("caption")}" from '
            f"{scene.user_name}: {shown}",
            "genesys",
        )
        self.out.step(
            "check",
            f"the link serves the {len(fetched.content)} bytes {scene.user_name} sent "
            f"({fetched.headers.get('Content-Type')})",
            "check",
        )
        return 1

    # -- Genesys → WhatsApp ---------------------------------------------------------------------
    def agent_replies(self, t: DemoTenant, participants: dict[str, str]) -> str:
        """The agent's answer leaves from the tenant's number with the tenant's Meta token;
        returns the Genesys message id (the receipt names it)."""
        scene = t.scene
        delivery = self.state.agent.send(
            t.integration_id, participants[scene.tenant_id], text=scene.agent_answers
        )
        if delivery.status != 200 or delivery.message_id is None:
            raise DemoFailure(f"the Genesys webhook for {scene.tenant_id} got {delivery.status}")
        self.out.step(
            f"agent {scene.tenant_id}",
            f'replies to {scene.user_name}: "{scene.agent_answers}"',
            "agent",
        )
        sent = wait_for(
            lambda: self.state.meta.sent_to(t.phone_number_id),
            f"the reply to {scene.user_name} at WhatsApp",
        )[0]
        text = sent.body.get("text", {}).get("body")
        if text != scene.agent_answers or sent.to != scene.user_phone:
            raise DemoFailure(f"WhatsApp got {text!r} for {sent.to} from +{t.display_phone}")
        calls = self.state.requests(kind="meta.messages", tenant=t.phone_number_id)
        if {bearer(call.headers) for call in calls} != {t.access_token}:
            raise DemoFailure(f"a send from +{t.display_phone} carried another tenant's token")
        self.out.step(
            f"WhatsApp ◂ {scene.tenant_id}",
            f'{scene.user_name} receives "{shorten(text)}" from +{t.display_phone} '
            f"(token {mask(t.access_token)})",
            "whatsapp",
        )
        return delivery.message_id

    def receipt(self, t: DemoTenant, message_id: str) -> None:
        """The user's phone reports delivered, then read: Genesys gets one ``Delivered``."""
        scene = t.scene
        wamid = self.state.meta.sent_to(t.phone_number_id)[0].wamid
        for status in ("delivered", "read"):
            answer = self.state.user.status(wamid, status)
            if answer.status != 200:
                raise DemoFailure(f"the {status} status for {scene.tenant_id} got {answer.status}")
        self.out.step(
            f"WhatsApp ▸ {scene.tenant_id}",
            f"{scene.user_name}'s phone reports the reply delivered, then read",
            "whatsapp",
        )
        receipts = wait_for(
            lambda: self.state.genesys.receipts_for(message_id),
            f"the Delivered receipt at {t.org_id}",
        )
        if receipts[0].get("status") != "Delivered":
            raise DemoFailure(f"{t.org_id} got a {receipts[0].get('status')} receipt")
        self.out.step(
            f"Genesys {scene.tenant_id}",
            f'receipt Delivered for "{shorten(scene.agent_answers, 40)}"',
            "genesys",
        )

    # -- a bot's quick reply, answered with a tap -----------------------------------------------
    def bot_menu(self, t: DemoTenant, participant: str) -> int:
        """A Genesys bot asks with a quick reply; the user sees WhatsApp reply buttons, taps one,
        and the bot gets that option's payload on the structured-response endpoint (not a text
        message it would have to match). 1 if the scene has a menu."""
        scene, menu = t.scene, t.scene.bot_menu
        if menu is None:
            return 0
        # Recorded by the simulated Genesys (so it is an agent message it knows), then made the
        # Structured body an Architect bot flow posts.
        message = self.state.genesys.outbound_message(
            t.integration_id,
            {"id": participant, "idType": "Opaque"},
            text=menu.question,
            originating_entity="Bot",
        )
        body: dict[str, Any] = message.body
        body["type"] = "Structured"
        body["content"] = [
            {
                "contentType": "QuickReply",
                "quickReply": {"text": title, "payload": payload, "action": "Message"},
            }
            for title, payload in menu.options
        ]
        delivery = self.state.agent.deliver(t.integration_id, body)
        if delivery.status != 200:
            raise DemoFailure(f"the Genesys webhook for {scene.tenant_id} got {delivery.status}")
        self.out.step(
            f"bot {scene.tenant_id}",
            f'asks {scene.user_name} "{menu.question}", a quick reply with '
            f"{len(menu.options)} options: " + ", ".join(title for title, _ in menu.options),
            "agent",
        )

        sent = wait_for(
            lambda: [
                m for m in self.state.meta.sent_to(t.phone_number_id) if m.type == "interactive"
            ],
            f"the bot's menu at WhatsApp for {scene.user_name}",
        )[0]
        shown = sent.body["interactive"]
        replies = [b.get("reply", {}) for b in shown.get("action", {}).get("buttons", [])]
        payloads = [payload for _, payload in menu.options]
        if shown.get("type") != "button" or [r.get("id") for r in replies] != payloads:
            raise DemoFailure(f"WhatsApp got {shorten(str(shown), 200)}, not the bot's options")
        self.out.step(
            f"WhatsApp ◂ {scene.tenant_id}",
            f'{scene.user_name} sees "{shown["body"]["text"]}" with {len(replies)} reply buttons: '
            + " ".join(f"[{r.get('title')}]" for r in replies),
            "whatsapp",
        )

        tapped = next((r for r in replies if r.get("id") == menu.taps), None)
        if tapped is None:
            raise DemoFailure(f"the menu has no option {menu.taps!r} to tap")
        title = str(tapped["title"])
        answer = self.state.user.say(
            t.phone_number_id,
            self.users[scene.tenant_id],
            "button_reply",
            reply_id=menu.taps,
            title=title,
            context_id=sent.wamid,
        )
        if answer.status != 200:
            raise DemoFailure(f"the WhatsApp webhook for {scene.tenant_id} got {answer.status}")
        self.out.step(
            f"WhatsApp ▸ {scene.tenant_id}",
            f"{scene.user_name} taps [{title}] (interactive button_reply, id {menu.taps})",
            "whatsapp",
        )

        received = wait_for(
            lambda: self.state.genesys.structured_responses_from(t.integration_id, participant),
            f"{scene.user_name}'s tap at {t.org_id}",
        )[0]
        expected = {"type": "QuickReply", "text": title, "payload": menu.taps}
        if received.body.get("buttonResponse") != expected:
            raise DemoFailure(f"{t.org_id} got {received.body.get('buttonResponse')!r}")
        if received.body.get("originatingMessageId") != message.id:
            raise DemoFailure(f"{t.org_id} got the tap, but not as the answer to the bot's menu")
        texts = [m.body.get("text") for m in self.state.genesys.messages_from(t.integration_id)]
        if title in texts:
            raise DemoFailure(f"{t.org_id} got the tap as a text message too")
        calls = self.state.requests(kind="genesys.structured_response", tenant=t.org_id)
        used = {bearer(call.headers) for call in calls}
        if not calls or not used <= {i.token for i in self.state.genesys.tokens_of(t.org_id)}:
            raise DemoFailure(f"the tap went to {t.org_id} with a token its client was not issued")
        self.out.step(
            f"Genesys {scene.tenant_id}",
            f"the bot gets {scene.user_name}'s answer on .../inbound/open/structured/response: "
            f'QuickReply "{title}", payload {menu.taps} (token {mask(used.pop())})',
            "genesys",
        )
        return 1
