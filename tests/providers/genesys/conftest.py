"""Fixtures of the Genesys client tests: a strict ``responses`` mock and fake credentials."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import pytest
import responses

from interlink.tenancy.config import GenesysCredentials


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def creds() -> GenesysCredentials:
    return GenesysCredentials(
        client_id=str(uuid.uuid4()),
        client_secret=secrets.token_urlsafe(32),
        region="mypurecloud.ie",
        integration_id=str(uuid.uuid4()),
        webhook_secret=secrets.token_urlsafe(24),
    )
