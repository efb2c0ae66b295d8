"""``interlink demo``: the whole round trip for real (simulators, a shard process, its embedded
store), what the transcript shows and hides, colours, and that nothing is left running."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from interlink import demo
from interlink.demo.transcript import Transcript, mask, wants_color

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-]{30,}")
COMMAND = [sys.executable, "-m", "interlink", "demo"]


def command_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(extra)
    return env


def data_dir_of(text: str) -> Path:
    found = re.search(r"embedded Valkey under (\S+)", text)
    assert found, text
    return Path(found.group(1))


def test_run_demo_plays_both_tenants_and_prints_no_secret() -> None:
    out = io.StringIO()
    result = demo.run_demo(out, color=False)
    text = out.getvalue()

    assert result.ok, text
    assert result.error is None
    assert result.transcript == text.splitlines()
    for scene in demo.SCENES:
        assert f"[admin ▸ {scene.tenant_id}]" in text
        assert f'"{scene.says}"' in text  # the user's words, at WhatsApp then at Genesys
        assert f'received "{scene.says}" from {scene.user_name}' in text
        assert f'replies to {scene.user_name}: "{scene.agent_answers}"' in text
        assert f'{scene.user_name} receives "{scene.agent_answers}"' in text
        receipt = rf"^\[Genesys {scene.tenant_id}\] +receipt Delivered for \""
        assert re.search(receipt, text, re.MULTILINE)
    assert 'received an Image "the label on my parcel" from Ana: http://127.0.0.1:' in text
    assert text.splitlines()[-1].startswith(
        "✓ 2 tenants: 3 messages in, 2 replies out, 2 receipts back, "
        "1 bot quick reply answered by a button tap,"
    )

    # The bot's quick reply: Ana sees its options as reply buttons, taps one, and the tap reaches
    # Genesys on the structured-response endpoint with the option's payload, not as a message.
    menu = demo.SCENES[0].bot_menu
    assert menu is not None
    titles = " ".join(f"[{title}]" for title, _ in menu.options)
    assert f'Ana sees "{menu.question}" with 3 reply buttons: {titles}' in text
    assert "Ana taps [Cambiar dirección] (interactive button_reply, id change-address)" in text
    [tap] = result.structured_responses
    assert tap["status"] == 200
    assert re.search(
        r"/api/v2/conversations/messages/integration-acme-[0-9a-f]+"
        r"/inbound/open/structured/response$",
        tap["path"],
    ), tap["path"]
    assert tap["body"]["buttonResponse"] == {
        "type": "QuickReply",
        "text": "Cambiar dirección",
        "payload": "change-address",
    }
    assert re.fullmatch(r"[0-9a-f]{32}", tap["body"]["originatingMessageId"])  # the menu's id
    assert re.search(
        r"^\[Genesys acme\] +the bot gets Ana's answer on \.\.\./inbound/open/structured/response: "
        r'QuickReply "Cambiar dirección", payload change-address',
        text,
        re.MULTILINE,
    )

    # Every secret of the run, the issued Genesys tokens and the media link included, is known
    # to the result, and none is printed: only its mask is.
    assert len(result.secrets) >= 2 * 5 + 1 + 2 + 1
    for secret in result.secrets:
        assert secret not in text
    assert any(mask(secret) in text for secret in result.secrets)
    assert not TOKEN_LIKE.search(text.replace(result.data_dir, ""))

    # Everything stopped and cleaned up: the shard ended on SIGTERM with 0, its data dir is gone.
    assert result.shard_exit_code == 0
    assert not Path(result.data_dir).exists()


def test_a_failed_step_stops_with_its_reason_and_cleans_up() -> None:
    bad = replace(demo.SCENES[0], region="mars.example")
    out = io.StringIO()
    result = demo.run_demo(out, color=False, scenes=[bad])

    assert not result.ok
    assert result.error is not None and "POST /api/tenants answered 400" in result.error
    assert out.getvalue().splitlines()[-1].startswith("✗ demo failed after")
    assert result.shard_exit_code == 0
    assert not Path(result.data_dir).exists()


def test_run_demo_in_an_unpatched_process_fails_at_once_saying_why() -> None:
    """Unpatched, the in-process simulators would starve and the demo hang on its first media
    fetch: it refuses at once instead, starting nothing."""
    code = "import io\nfrom interlink.demo import run_demo\nrun_demo(io.StringIO())"
    began = time.monotonic()
    ran = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 1
    assert f"RuntimeError: {demo.NOT_PATCHED}" in ran.stderr
    assert "embedded Valkey" not in ran.stderr + ran.stdout
    assert time.monotonic() - began < 30  # the import, not a 10 s media timeout and more


def test_the_command_exits_0_with_a_plain_transcript_when_not_a_tty() -> None:
    began = time.monotonic()
    done = subprocess.run(
        COMMAND, env=command_env(), capture_output=True, text=True, timeout=60, check=False
    )
    elapsed = time.monotonic() - began

    assert done.returncode == 0, done.stdout + done.stderr
    assert elapsed < 30
    out = done.stdout
    assert "\x1b[" not in out
    for tenant in ("acme", "globex"):
        assert f"[Genesys {tenant}]" in out and f"[WhatsApp ◂ {tenant}]" in out
    assert out.count("receipt Delivered") == 2
    assert "the bot gets Ana's answer on .../inbound/open/structured/response" in out
    assert re.search(r"in \d+\.\d s$", out.splitlines()[-1])
    assert not TOKEN_LIKE.search(out.replace(str(data_dir_of(out)), ""))
    assert not data_dir_of(out).exists()


def read_pty(fd: int, timeout: float = 60) -> str:
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("no_color", ["", "1"])
def test_colours_on_a_terminal_unless_no_color(no_color: str) -> None:
    controller, terminal = pty.openpty()
    env = command_env(NO_COLOR=no_color) if no_color else command_env()
    process = subprocess.Popen(COMMAND, env=env, stdout=terminal, stderr=subprocess.DEVNULL)
    os.close(terminal)
    try:
        out = read_pty(controller)
        assert process.wait(60) == 0, out
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    assert "Delivered" in out
    if no_color:
        assert not ANSI.search(out)
    else:
        assert ANSI.search(out)
        assert "[Genesys acme]" in ANSI.sub("", out)


def test_keep_running_serves_until_ctrl_c_then_removes_everything() -> None:
    process = subprocess.Popen(
        [*COMMAND, "--keep-running"],
        env=command_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        text = "".join(lines)
        shard_url = re.search(r"shard\s+(http://\S+)", text)
        token_path = re.search(r"admin token\s+in (\S+)", text)
        assert shard_url and token_path, text
        # Still up: the shard answers, and the printed path holds a working operator token.
        token = Path(token_path.group(1)).read_text().strip()
        answer = requests.get(
            shard_url.group(1) + "/api/tenants",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert answer.status_code == 200
        assert {t["tenantId"] for t in answer.json()["items"]} == {"acme", "globex"}

        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    with pytest.raises(requests.ConnectionError):
        requests.get(shard_url.group(1) + "/healthz", timeout=2)
    assert not data_dir_of(text).exists()


def test_sigterm_during_the_demo_stops_the_shard_and_exits_130() -> None:
    process = subprocess.Popen(
        [*COMMAND, "--keep-running"], env=command_env(), stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    try:
        first = [process.stdout.readline() for _ in range(3)]  # title, simulators, shard
        process.send_signal(signal.SIGTERM)
        rest = process.stdout.read()
        code = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    text = "".join(first) + rest
    # Usually mid-demo (130); on a fast machine it may reach the keep-running wait first (0).
    assert code == (0 if "✓" in text else 130), text
    shard_url = re.search(r"shard on (http://\S+),", text)
    assert shard_url, text
    with pytest.raises(requests.ConnectionError):
        requests.get(shard_url.group(1) + "/healthz", timeout=2)
    assert not data_dir_of(text).exists()


def test_colour_choice_and_masking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert wants_color(Terminal(), {})
    assert not wants_color(Terminal(), {"NO_COLOR": "1"})
    assert wants_color(Terminal(), {"NO_COLOR": ""})  # no-color.org: only a non-empty value
    assert not wants_color(io.StringIO(), {})
    out = Terminal()
    Transcript(out, color=None).step("Genesys acme", "hello", "genesys")
    assert out.getvalue().startswith("\x1b[35m[Genesys acme]")
    assert mask("abcdefgh") == "****efgh"
