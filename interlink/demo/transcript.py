"""The readable transcript ``interlink demo`` prints: one line per step, a label column that says
where the step happens (``[WhatsApp ▸ acme]``, ``[Genesys acme]`` ...), and ANSI colours only for
a terminal that wants them.

Secrets never reach a line in clear: callers pass them through :func:`mask`.
"""

from __future__ import annotations

import os
from typing import TextIO

#: The label column's width: the longest label used by the demo, plus room to breathe.
LABEL_WIDTH = 22

RESET = "\033[0m"
STYLES = {
    "title": "\033[1m",
    "setup": "\033[2m",
    "admin": "\033[36m",
    "whatsapp": "\033[32m",
    "genesys": "\033[35m",
    "agent": "\033[34m",
    "check": "\033[2;32m",
    "ok": "\033[1;32m",
    "fail": "\033[1;31m",
}


def mask(secret: str) -> str:
    """``"****" + last 4``, the masking every interlink surface uses."""
    return "****" + secret[-4:]


def wants_color(out: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Colours for a terminal only, and never when ``NO_COLOR`` is set to anything non-empty
    (https://no-color.org)."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def shorten(text: str, limit: int = 60) -> str:
    """A message body as shown in one line: newlines folded, long bodies cut with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Transcript:
    """Writes the demo's lines to ``out`` (flushed each time, so a slow step shows as it runs).

    ``color`` defaults to :func:`wants_color`; a style is a key of :data:`STYLES`."""

    def __init__(self, out: TextIO, *, color: bool | None = None) -> None:
        self.out = out
        self.color = wants_color(out) if color is None else color
        self.lines: list[str] = []

    def paint(self, text: str, style: str) -> str:
        if not self.color or style not in STYLES:
            return text
        return f"{STYLES[style]}{text}{RESET}"

    def title(self, text: str) -> None:
        self._write(self.paint(text, "title"))

    def step(self, label: str, text: str, style: str) -> None:
        """One step: ``[label]`` padded to the label column, then ``text``."""
        tag = f"[{label}]".ljust(LABEL_WIDTH)
        self._write(self.paint(tag, style) + text)

    def result(self, text: str, *, ok: bool) -> None:
        mark = "✓" if ok else "✗"
        self._write(self.paint(f"{mark} {text}", "ok" if ok else "fail"))

    def _write(self, line: str) -> None:
        self.lines.append(line)
        self.out.write(line + "\n")
        self.out.flush()
