"""An open-loop webhook sender for the delivery benchmark, run as its own process.

Request ``i`` is due at ``start + i / rate`` whatever happened to the earlier ones (each is its
own greenlet, taking a kept-alive connection from a pool or opening one), so a slow shard does
not slow the offered load down; each ack's latency is measured from when it was due. Each body is
built and signed when it is due, with the send time (``@t@``) and its place in its conversation
(``#conversation:n#``) in the message text, which the provider stand-in reads on arrival.

stdin: ``{"host", "port", "rate", "duration", "direction": "wa"|"gc", "tenants": [...],
"users": n, "first": n}``; stdout: JSON ``{"sent", "acked", "statuses", "p50_ms", "p99_ms"}``.
"""

from gevent import monkey

monkey.patch_all()

import gc  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.pool  # noqa: E402

from bench.load import _read_response  # noqa: E402
from bench.wire import request  # noqa: E402
from interlink.security.signatures import genesys_signature, meta_signature  # noqa: E402

MAX_CONNECTIONS = 1000


def phone(tenant: int, user: int) -> str:
    return f"346{tenant:05d}{user:02d}"


def wa_webhook(tenant: dict[str, Any], t: int, user: int, n: int) -> bytes:
    """Meta's notification of a text message from ``user`` of tenant ``t``."""
    wa_id = phone(t, user)
    now = time.time()
    body = json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": tenant["phone_number_id"]},
            "contacts": [{"profile": {"name": f"User {user}"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": f"wamid.bench.{t}.{user}.{n}", "timestamp": str(int(now)),
                          "type": "text", "text": {"body": f"hello @{now:.6f}@ #{wa_id}:{n}#"}}]}}]}]},
        separators=(",", ":"),
    ).encode()  # fmt: skip
    return request(
        "POST",
        "/webhooks/whatsapp",
        body,
        {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": meta_signature(tenant["app_secret"], body),
        },
    )


def gc_webhook(tenant: dict[str, Any], t: int, user: int, n: int) -> bytes:
    """Genesys's notification of an agent's text message to ``user`` of tenant ``t``."""
    to = phone(t, user)
    now = time.time()
    integration = tenant["integration"]
    message_id = f"gc{t}x{user}x{n}"
    body = json.dumps(
        {"id": message_id, "channel": {"id": integration, "platform": "Open", "type": "Private", "messageId": message_id,
         "to": {"id": to, "idType": "Opaque"}, "from": {"nickname": "Agent", "id": integration, "idType": "Opaque"},
         "time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now))},
         "originatingEntity": "Human", "direction": "Outbound", "conversationId": f"conv-{integration}",
         "type": "Text", "text": f"agent @{now:.6f}@ #{to}:{n}#"},
        separators=(",", ":"),
    ).encode()  # fmt: skip
    return request(
        "POST",
        "/webhooks/genesys",
        body,
        {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": genesys_signature(tenant["webhook_secret"], body),
        },
    )


def run(spec: dict[str, Any]) -> dict[str, Any]:
    host, port = spec["host"], int(spec["port"])
    rate, duration = float(spec["rate"]), float(spec["duration"])
    tenants, users, first = spec["tenants"], int(spec["users"]), int(spec.get("first", 0))
    build = wa_webhook if spec["direction"] == "wa" else gc_webhook
    idle: list[socket.socket] = []
    opened = [0]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = [0]

    def connection() -> socket.socket:
        if idle:
            return idle.pop()
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        opened[0] += 1
        return sock

    buffers: dict[int, bytearray] = {}

    # A conversation's next message goes only once its previous one is acknowledged, as a
    # provider sends them: order is only promised from acceptance on, and under overload two
    # requests of one conversation on two connections would otherwise race each other.
    previous: dict[tuple[int, int], gevent.event.Event] = {}

    def one(i: int, due: float) -> None:
        # The i-th message overall: tenant, then user within it, round robin; its number within
        # its conversation grows with i, so arrival order can be checked.
        t = i % len(tenants)
        user = (i // len(tenants)) % users
        n = first + i // (len(tenants) * users)
        done = gevent.event.Event()
        before = previous.get((t, user))
        previous[(t, user)] = done
        try:
            if before is not None:
                before.wait()
            send(t, user, n, due)
        finally:
            done.set()

    def send(t: int, user: int, n: int, due: float) -> None:
        wire = build(tenants[t], t, user, n)
        try:
            sock = connection()
        except OSError:
            errors[0] += 1
            return
        buffer = buffers.setdefault(sock.fileno(), bytearray())
        try:
            sock.sendall(wire)
            status = _read_response(sock, buffer)
        except OSError:
            errors[0] += 1
            buffers.pop(sock.fileno(), None)
            sock.close()
            return
        latencies.append(time.perf_counter() - due)
        statuses[status] = statuses.get(status, 0) + 1
        idle.append(sock)

    pool = gevent.pool.Pool(MAX_CONNECTIONS)
    total = int(rate * duration)
    began = time.perf_counter()
    for i in range(total):
        due = began + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        pool.spawn(one, i, due)
    pool.join()
    elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000, 1)

    return {
        "sent": total,
        "acked": statuses.get(200, 0),
        "seconds": round(elapsed, 2),
        "statuses": {str(k): v for k, v in statuses.items()},
        "errors": errors[0],
        "connections": opened[0],
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
    }


if __name__ == "__main__":
    # The sender's own collections stopped it 6-37 ms at a time, counted in the acks it measures
    # as if the shard had been late: none of its objects needs collecting during a phase.
    gc.freeze()
    gc.disable()
    print(json.dumps(run(json.load(sys.stdin))))
