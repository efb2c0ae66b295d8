"""docs/openapi.yaml against the shard's route table: every /api and /control route is
documented with exactly the methods it answers, and every documented path is a route."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import falcon
import pytest
import yaml

from interlink.http.app import create_app, routes
from interlink.services import Services

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "docs" / "openapi.yaml"
DOCUMENTED_PREFIXES = ("/api/", "/control/")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(OPENAPI.read_text())
    return loaded


def documented() -> dict[str, set[str]]:
    return {
        path: {m.upper() for m in item if m in HTTP_METHODS}
        for path, item in spec()["paths"].items()
    }


def responders(resource: Any, suffix: str | None) -> set[str]:
    """The methods a resource answers, as Falcon maps them (``on_get`` or ``on_get_suffix``)."""
    tail = f"_{suffix}" if suffix else ""
    return {
        m
        for m in falcon.COMBINED_METHODS
        if callable(getattr(resource, f"on_{m.lower()}{tail}", None))
    }


def served(services: Services) -> dict[str, set[str]]:
    table: dict[str, set[str]] = {}
    for path, resource, *suffix in routes(services):
        if path.startswith(DOCUMENTED_PREFIXES):
            table[path] = responders(resource, suffix[0] if suffix else None)
    return table


def test_openapi_is_3_1_with_unique_operations() -> None:
    doc = spec()
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, methods in documented().items():
        assert path.startswith(DOCUMENTED_PREFIXES), path
        assert methods, path
        # Every {param} of the path is declared as a path parameter (on the path or the operation).
        item = doc["paths"][path]
        names = set(re.findall(r"\{(\w+)\}", path))
        declared = {_param(doc, p)["name"] for p in item.get("parameters", [])}
        for method in methods:
            operation = item[method.lower()]
            assert "responses" in operation and operation["summary"], (path, method)
            ops = {_param(doc, p)["name"] for p in operation.get("parameters", [])}
            assert names <= declared | ops, (path, method, names)


def _param(doc: dict[str, Any], param: dict[str, Any]) -> dict[str, Any]:
    ref = param.get("$ref")
    if ref is None:
        return param
    name = ref.rsplit("/", 1)[-1]
    resolved: dict[str, Any] = doc["components"]["parameters"][name]
    return resolved


def test_every_route_is_documented_with_its_methods(services: Services) -> None:
    table = served(services)
    assert "/api/tenants" in table and "/control/actors" in table
    docs = documented()
    missing = sorted(set(table) - set(docs))
    assert not missing, f"routes missing from docs/openapi.yaml: {missing}"
    for path, methods in table.items():
        assert docs[path] == methods, (
            f"{path}: served {sorted(methods)}, documented {sorted(docs[path])}"
        )


def test_every_documented_path_is_a_route(services: Services) -> None:
    extra = sorted(set(documented()) - set(served(services)))
    assert not extra, f"docs/openapi.yaml documents paths the shard does not serve: {extra}"


@pytest.mark.parametrize("path", sorted(documented()))
def test_the_app_routes_each_documented_path(services: Services, path: str) -> None:
    """Through Falcon's own router, with the documented parameter names filled in: a path that
    matches no route, or a resource that does not answer a documented method, fails."""
    app = create_app(services)
    concrete = re.sub(r"\{\w+\}", "acme", path)
    resource, method_map, params, _ = app._router.find(concrete)
    assert resource is not None, path
    assert set(params) == set(re.findall(r"\{(\w+)\}", path)), (path, params)
    for method in documented()[path]:
        responder = method_map[method]
        assert getattr(responder, "__name__", "").startswith("on_"), (path, method)
