"""``interlink demo``: a complete local round trip in one terminal, against the built-in simulators.

It starts the simulators and a shard (embedded store), creates two tenants through the admin API,
and plays the whole conversation of each: a WhatsApp user writes (text, and a photo for the
first tenant), the message reaches that tenant's Genesys org with that tenant's token, an agent
answers, the answer reaches the user from that tenant's number with that tenant's Meta token, and
the user's phone's delivery statuses come back to Genesys as a ``Delivered`` receipt. Then the
first tenant's bot asks with a quick reply: the user sees WhatsApp reply buttons, taps one, and
the bot gets the option's payload on Genesys's structured-response endpoint. Every
arrival is checked, not just printed: the first one that does not come (or comes wrong) ends the
demo with its reason and exit code 1.

:func:`run_demo` does the work and returns a :class:`DemoResult` (with the secrets it generated,
so a test can check that none of them was printed); ``interlink.cli.demo`` only wraps it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import gevent.event
import gevent.monkey
import requests

from interlink.demo.play import SCENES, DemoFailure, Play, Scene
from interlink.demo.stack import DemoStack, StackError
from interlink.demo.transcript import Transcript

NOT_PATCHED = (
    "run_demo needs a gevent-patched process: call gevent.monkey.patch_all() before anything "
    "else is imported (the interlink command does)"
)


@dataclass
class DemoResult:
    """What a run did. ``secrets``: every secret generated or issued during the run (admin token,
    tenant credentials, Genesys access tokens, media link tokens): none may appear in
    ``transcript``. ``elapsed``: seconds from the first step to the last check. ``data_dir``: the
    temporary dir the shard used (removed by then); ``shard_exit_code``: how the shard ended
    (0 for a clean stop, ``None`` if it never started). ``structured_responses``: each call the
    shard made to the simulated Genesys structured-response endpoint (``path``, answered
    ``status``, ``body``), i.e. every tap that reached a bot as the answer to its quick reply."""

    ok: bool = False
    elapsed: float = 0.0
    error: str | None = None
    data_dir: str = ""
    shard_exit_code: int | None = None
    transcript: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list, repr=False)
    structured_responses: list[dict[str, Any]] = field(default_factory=list, repr=False)


def run_demo(
    out: TextIO,
    *,
    color: bool | None = None,
    keep_running: bool = False,
    until: gevent.event.Event | None = None,
    scenes: Sequence[Scene] = SCENES,
) -> DemoResult:
    """Play the demo, writing the transcript to ``out``; everything started is stopped before
    returning (after ``until`` is set when ``keep_running``; Ctrl-C ends the wait too).

    Never raises for a failed step: the result says what failed. ``KeyboardInterrupt`` outside
    the keep-running wait propagates, after the stack is stopped.

    The process must be gevent-patched (``gevent.monkey.patch_all()`` first, as ``python -m
    interlink`` does): the simulators serve from greenlets in this process, which an unpatched
    blocking call would starve. Without it: RuntimeError at once, before anything starts."""
    if not gevent.monkey.is_module_patched("socket"):
        raise RuntimeError(NOT_PATCHED)
    transcript = Transcript(out, color=color)
    result = DemoResult(transcript=transcript.lines)
    stack = DemoStack()
    result.data_dir = str(stack.data_dir)
    began = time.monotonic()
    play: Play | None = None
    try:
        transcript.title(
            f"interlink demo: {len(scenes)} tenants, one shard, the Meta and Genesys simulators"
        )
        play = Play(stack, transcript, scenes)
        tally = play.run()
        result.elapsed = time.monotonic() - began
        result.ok = True
        taps = (
            f"{tally.taps} bot quick {'reply' if tally.taps == 1 else 'replies'} answered by "
            "a button tap, "
            if tally.taps
            else ""
        )
        transcript.result(
            f"{len(scenes)} tenants: {tally.inbound} messages in, {tally.replies} replies out, "
            f"{tally.receipts} receipts back, {taps}each on its own credentials, "
            f"in {result.elapsed:.1f} s",
            ok=True,
        )
        if keep_running:
            _keep_running(stack, transcript, until or gevent.event.Event())
    except (DemoFailure, StackError, requests.RequestException) as exc:
        result.elapsed = time.monotonic() - began
        result.error = str(exc)
        transcript.result(f"demo failed after {result.elapsed:.1f} s: {exc}", ok=False)
        tail = stack.log_tail(1500)
        if tail and not isinstance(exc, StackError):  # a StackError carries the tail already
            transcript.step("shard log", "last lines:\n" + tail.rstrip(), "fail")
    finally:
        result.structured_responses = [
            {"path": call.path, "status": call.status, "body": call.body}
            for call in stack.state.requests(kind="genesys.structured_response")
        ]
        result.shard_exit_code = stack.stop()
        result.secrets = list(play.secrets) if play is not None else []
    return result


def _keep_running(stack: DemoStack, out: Transcript, until: gevent.event.Event) -> None:
    out.step("running", f"shard         {stack.url}", "setup")
    out.step("running", f"simulators    {stack.sim.url}", "setup")
    out.step("running", f"admin token   in {stack.admin_token_path}", "setup")
    out.step("running", "Ctrl-C stops everything and removes the data dir", "setup")
    try:
        until.wait()
    except KeyboardInterrupt:
        pass
