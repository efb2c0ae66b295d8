"""The Open Messaging client posts a quick-reply answer to ``structured/response``, exactly."""

from __future__ import annotations

import pytest
import requests
import responses
from responses import matchers

from interlink.providers.errors import SendUncertain
from tests.providers.genesys.test_open_messaging import Sleeps, Tokens, make_client, om_url

INTEGRATION = "0f8e6c7a-1111-2222-3333-444455556666"
ANSWER = {
    "channel": {
        "messageId": "wamid.tap",
        "time": "2026-01-02T10:00:00.000Z",
        "from": {"id": "15551234567", "idType": "Opaque", "nickname": "Ana"},
    },
    "originatingMessageId": "8085cbb3f778c34de0bd14c5318ec44c",
    "buttonResponse": {"type": "QuickReply", "text": "Card", "payload": "pay-card"},
}


def test_the_answer_goes_to_structured_response_without_query_flags(
    rsps: responses.RequestsMock,
) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    url = om_url("mypurecloud.ie", INTEGRATION, "structured/response")
    rsps.post(
        url,
        json={"id": "gen-answer-1", "type": "Structured"},
        status=202,
        match=[
            matchers.header_matcher({"Authorization": f"Bearer {tokens.current}"}),
            matchers.json_params_matcher(ANSWER),
        ],
    )
    client = make_client(tokens, sleeps)
    assert client.send_structured_response(ANSWER)["id"] == "gen-answer-1"
    assert rsps.calls[0].request.url == url


def test_the_answer_is_retried_like_a_message(rsps: responses.RequestsMock) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    url = om_url("mypurecloud.ie", INTEGRATION, "structured/response")
    rsps.post(url, status=503, json={"code": "service.unavailable", "message": "busy"})
    rsps.post(url, status=200, json={"id": "gen-answer-1"})
    client = make_client(tokens, sleeps)
    assert client.send_structured_response(ANSWER) == {"id": "gen-answer-1"}
    assert len(rsps.calls) == 2 and len(sleeps.calls) == 1


def test_a_timed_out_answer_is_uncertain_when_not_retrying_uncertain(
    rsps: responses.RequestsMock,
) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    url = om_url("mypurecloud.ie", INTEGRATION, "structured/response")
    rsps.post(url, body=requests.ReadTimeout("read timed out"))
    # The agent would see the answer twice, as with a message: the caller may choose not to.
    with pytest.raises(SendUncertain):
        make_client(tokens, sleeps, retry_uncertain=False).send_structured_response(ANSWER)
    assert len(rsps.calls) == 1
