"""Prove the lower bounds in setup.cfg: every runtime dependency at exactly its declared lower
bound (``name>=X`` installed as ``name==X``) in a venv of its own, interlink on top with
``--no-deps``, then the end-to-end round trip (``interlink demo`` and
``tests/e2e/test_round_trip.py``, ``tests/e2e/test_cluster.py`` on a Redis Cluster, and
``tests/docs/test_security_acl.py``: the documented ACL with the oldest client). Exit 0 only if
both pass with a clean stderr.

    python3.11 deploy/ci/lower_bounds.py [--dir build/lower-bounds]

The venv is kept under ``--dir`` and made again only when the pins change, so a second run costs
the round trip alone. Run it with the oldest Python that setup.cfg admits.
"""

from __future__ import annotations

import argparse
import configparser
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Not runtime dependencies, so their versions are free: the e2e test's runner, and the build
# backend that pyproject.toml names (installed once, so that each run builds without isolation).
TOOLS = ("pytest>=8", "setuptools>=68", "wheel")
# The round trip, and the same on a Redis Cluster (redis-py's cluster client at its lowest bound);
# the documented ACL, whose cluster additions older clients need more of.
E2E_TESTS = (
    "tests/e2e/test_round_trip.py",
    "tests/e2e/test_cluster.py",
    "tests/docs/test_security_acl.py",
)
# Lines a clean run never prints (an exception swallowed at exit is still a failure).
BAD_OUTPUT = ("Traceback (most recent call last)", "Exception ignored")
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(?:,.*)?$")


def lower_bound_pins(setup_cfg: Path) -> list[str]:
    """``name==X`` for each ``name>=X`` in ``[options] install_requires``; a requirement without
    a lower bound is an error (nothing would say which oldest version it works with)."""
    parser = configparser.ConfigParser()
    parser.read(setup_cfg, encoding="utf-8")
    pins = []
    for line in parser["options"]["install_requires"].splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = _REQUIREMENT.match(line.split(";", 1)[0].strip())
        if match is None:
            raise SystemExit(f"lower-bounds: {line!r} has no '>=' lower bound in setup.cfg")
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


def _run(
    command: list[str],
    *,
    cwd: Path | str | None = None,
    capture_output: bool = False,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(command), flush=True)
    return subprocess.run(
        command, check=False, text=True, cwd=cwd, capture_output=capture_output, timeout=timeout
    )


def _check(result: subprocess.CompletedProcess[str], what: str) -> None:
    output = (result.stdout or "") + (result.stderr or "")
    bad = [marker for marker in BAD_OUTPUT if marker in output]
    if result.returncode != 0 or bad:
        sys.stdout.write(output[-6000:])
        raise SystemExit(
            f"lower-bounds: {what} failed (exit {result.returncode}, {bad or 'no'} tracebacks)"
        )


def prepare(venv: Path, pins: list[str]) -> None:
    stamp = venv / "lower-bounds.pins"
    wanted = "\n".join(pins) + "\n"
    if stamp.exists() and stamp.read_text() == wanted:
        return
    shutil.rmtree(venv, ignore_errors=True)
    python = venv / "bin" / "python"
    for command in (
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", *pins, *TOOLS],
    ):
        if _run(command).returncode != 0:
            raise SystemExit("lower-bounds: could not install the pins")
    stamp.write_text(wanted)


def installed_versions(python: Path) -> dict[str, str]:
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        check=True,
        text=True,
        capture_output=True,
    ).stdout
    pairs = (line.split("==", 1) for line in listed.splitlines() if "==" in line)
    return {_normal(name): version for name, version in pairs}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "build" / "lower-bounds")
    args = parser.parse_args()
    started = time.monotonic()
    pins = lower_bound_pins(ROOT / "setup.cfg")
    venv = args.dir.resolve() / "venv"
    python = venv / "bin" / "python"
    prepare(venv, pins)
    install = _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--force-reinstall",
            "--no-build-isolation",
            str(ROOT),
        ],
        capture_output=True,
    )
    _check(install, "installing interlink")
    # The test runner must not have lifted a pin: what runs is exactly the lower bounds.
    versions = installed_versions(python)
    for pin in pins:
        name, version = pin.split("==")
        if not _same_version(versions.get(_normal(name), "?"), version):
            raise SystemExit(
                f"lower-bounds: {name} is {versions.get(_normal(name))}, not {version}"
            )
    prepared = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="interlink-lower-") as work:
        demo = _run(
            [str(venv / "bin" / "interlink"), "demo"], cwd=work, capture_output=True, timeout=180
        )
    _check(demo, "interlink demo")
    demo_done = time.monotonic()
    e2e = _run(
        [
            str(python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *E2E_TESTS,
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
    )
    _check(e2e, " ".join(E2E_TESTS))
    done = time.monotonic()
    print(
        f"lower bounds hold ({', '.join(pins)}): venv {prepared - started:.1f} s, "
        f"demo {demo_done - prepared:.1f} s, e2e {done - demo_done:.1f} s"
    )
    return 0


def _same_version(installed: str, pinned: str) -> bool:
    """``4.5`` pins ``4.5.0``: compare with trailing zero components dropped."""

    def parts(text: str) -> list[str]:
        items = text.split(".")
        while len(items) > 1 and items[-1] == "0":
            items.pop()
        return items

    return parts(installed) == parts(pinned)


if __name__ == "__main__":
    sys.exit(main())
