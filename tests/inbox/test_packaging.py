"""The inbox's Lua scripts are files of the package: they must ship in the wheel."""

from __future__ import annotations

import configparser
from pathlib import Path

import interlink

PACKAGE = Path(interlink.__file__).parent
SETUP_CFG = PACKAGE.parent / "setup.cfg"


def test_every_lua_file_of_the_package_is_package_data() -> None:
    config = configparser.ConfigParser()
    config.read(SETUP_CFG)
    patterns = config.get("options.package_data", "interlink", fallback="").split()
    shipped = {path for pattern in patterns for path in PACKAGE.glob(pattern)}
    scripts = set(PACKAGE.rglob("*.lua"))
    assert {
        PACKAGE / "inbox" / "scripts" / "accept.lua",
        PACKAGE / "inbox" / "scripts" / "ack.lua",
    } <= scripts
    assert scripts - shipped == set()
