"""Hostile variations of a valid payload: every place in it, replaced by each kind of junk."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value, the whole value (``()``) first."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*prefix, index))


def replaced(body: Any, path: tuple[Any, ...], junk: Any) -> Any:
    """A copy of ``body`` with the value at ``path`` replaced by ``junk``."""
    if not path:
        return copy.deepcopy(junk)
    copied = copy.deepcopy(body)
    node = copied
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = copy.deepcopy(junk)
    return copied
