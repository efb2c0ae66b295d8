"""The embedded Valkey asks for a password (issue 13, finding 8): generated once into its data
dir (0600), reused on restart, carried by the URL it hands out, and never on its command line
or in a log line."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from interlink.store.connection import connect, redacted
from interlink.store.embedded import (
    PASSWORD_FILE,
    EmbeddedStoreError,
    EmbeddedValkey,
    read_password,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedValkey]:
    server = EmbeddedValkey(tmp_path / "valkey", appendonly=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_client_without_the_password_is_refused(store: EmbeddedValkey) -> None:
    bare = redis.Redis(port=store.port, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        bare.set("il:test:x", b"1")
    bare.close()
    wrong = redis.Redis(port=store.port, password="not-" + store.password, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()
    wrong.close()


def test_the_url_it_hands_out_carries_the_password(store: EmbeddedValkey) -> None:
    client = connect(store.url)
    try:
        assert client.ping()
        client.set("il:test:x", b"1")
    finally:
        client.close()
    assert store.password in store.url
    assert store.password not in redacted(store.url)


def test_the_password_is_a_private_file_reused_on_restart(store: EmbeddedValkey) -> None:
    path = store.directory / PASSWORD_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700
    password = read_password(store.directory)
    assert password == store.password and len(password) >= 40
    client = connect(store.url)
    client.set("il:test:kept", b"yes")
    client.close()
    store.stop()

    again = EmbeddedValkey(store.directory, appendonly=True)
    again.start()
    try:
        assert again.password == password
        client = connect(again.url)
        assert client.get("il:test:kept") == b"yes"
        client.close()
    finally:
        again.stop()


def test_two_stores_get_different_passwords(tmp_path: Path) -> None:
    first = EmbeddedValkey(tmp_path / "a").password
    second = EmbeddedValkey(tmp_path / "b").password
    assert first != second


def test_the_password_is_not_on_the_command_line_nor_in_the_logs(
    tmp_path: Path, hidden: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = EmbeddedValkey(tmp_path / "valkey", appendonly=False)
    hidden.append(server.password)
    server.start()
    try:
        assert server._process is not None  # the child we started, by its own pid
        cmdline = Path(f"/proc/{server._process.pid}/cmdline").read_bytes()
        assert b"valkey" in cmdline
        assert server.password.encode() not in cmdline
        assert server.password not in repr(server)
        logging.getLogger("test").info("store at %s", redacted(server.url))
    finally:
        server.stop()
    assert server.password not in (server.directory / "valkey.log").read_text()


@pytest.mark.parametrize("content", ["", "   \n", "short", 'has "quotes" and spaces here'])
def test_an_unusable_password_file_stops_the_start(tmp_path: Path, content: str) -> None:
    directory = tmp_path / "valkey"
    directory.mkdir(mode=0o700)
    (directory / PASSWORD_FILE).write_text(content)
    server = EmbeddedValkey(directory)
    with pytest.raises(EmbeddedStoreError) as raised:
        server.start()
    assert "delete it" in str(raised.value)
    if content.strip():
        assert content.strip() not in str(raised.value)
    assert not server.is_running()
