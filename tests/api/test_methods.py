"""Undeclared methods answer 405 with `Allow` naming every method the path has, on every route (native and v5);
a literal path (`/triggers/actions`) is never taken for a sibling's `{id}`."""

from __future__ import annotations

import re

from fastapi.routing import iter_route_contexts
from starlette.routing import Match

from retento.api import create_app

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def declared(app):
    """(path template, its methods) of every route, the v5 catch-all aside."""
    out: dict[str, set[str]] = {}
    for context in iter_route_contexts(create_app(app).router.routes):
        if context.methods and "{path:path}" not in (context.path or ""):
            out.setdefault(context.path, set()).update(context.methods)
    return out


def concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", template)


def matches(template: str, path: str) -> bool:
    pattern = re.sub(r"\\\{[^}]*:int\\\}", "[0-9]+", re.escape(template))
    pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", pattern)
    return re.fullmatch(pattern, path) is not None


def test_every_route_answers_undeclared_methods_with_405_and_allow(app, client):
    routes = declared(app)
    assert len(routes) > 60
    checked = 0
    for template in routes:
        path = concrete(template)
        allowed = set().union(*(m for t, m in routes.items() if matches(t, path)))
        for method in METHODS:
            if method in allowed:
                continue
            r = client.request(method, path)
            assert r.status_code == 405, (method, path, r.status_code, r.text)
            assert set(r.headers["allow"].split(", ")) == allowed, (method, path, r.headers["allow"])
            if path.startswith("/api/v5"):
                assert r.json() == {"success": False, "errorMsg": "Method Not Allowed"}
            elif path.startswith("/api/v1") or path.startswith("/api/v1/messaging"):
                assert r.headers["content-type"] == "application/problem+json"
                assert r.json()["errors"][0]["field"] == "method"
            checked += 1
    assert checked > 150


def test_literal_paths_are_not_taken_for_an_id(client):
    """`PUT /triggers/actions` used to reach `PUT /triggers/{trigger_id}` and fail with 422 on the id."""
    for method, path, allow in (("PUT", "/api/v1/triggers/actions", "GET"),
                                ("DELETE", "/api/v1/triggers/templates", "GET"),
                                ("PATCH", "/api/v1/triggers/pending", "GET"),
                                ("PUT", "/api/v1/triggers/runs", "GET"),
                                ("GET", "/api/v1/triggers/dry-run", "POST"),
                                ("GET", "/api/v1/segments/preview", "POST"),
                                ("DELETE", "/api/v1/customers/1", "GET, PATCH")):
        r = client.request(method, path)
        assert (r.status_code, r.headers.get("allow")) == (405, allow), (method, path, r.text)
        assert r.json()["detail"] == f"method: {method} is not allowed here; use {allow.replace(', ', ' or ')}"
    assert client.get("/api/v1/triggers/actions").status_code == 200
    assert client.get("/api/v1/triggers/12345").status_code == 404
    r = client.put("/api/v1/triggers/not-an-id", json={})
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"] == [{"field": "path", "reason": "no such path: /api/v1/triggers/not-an-id"}]
    r = client.delete("/api/v5/customers")
    assert (r.status_code, r.headers["allow"], r.json()) == (
        405, "GET", {"success": False, "errorMsg": "Method Not Allowed"})
    assert client.get("/api/v5/no/such/method").status_code == 404


def top_level_choice(api, method: str, path: str) -> tuple[int, str] | None:
    """Which of the application's top-level routes a request would go to, and how (FULL or PARTIAL)."""
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}
    partial = None
    for i, route in enumerate(api.router.routes):
        match, _ = route.matches(dict(scope))
        if match is Match.FULL:
            return i, "full"
        if match is Match.PARTIAL and partial is None:
            partial = (i, "partial")
    return partial


def test_the_route_index_chooses_what_the_routes_one_by_one_choose(app):
    """`routing.index` lets a router say "no match" from its paths' literal prefixes: every declared path (with
    every method, with and without a trailing slash) and paths no route has still go where they went."""
    indexed, plain = create_app(app), create_app(app)
    guarded = [r for r in plain.router.routes if "matches" in vars(r)]
    assert len(guarded) > 30  # the domains' routers are indexed
    for route in guarded:
        del route.matches  # back to FastAPI's own matching
    paths = [concrete(t) for t in declared(app)]
    paths += [p + "/" for p in paths] + ["/", "", "/nowhere", "/api", "/api/v1", "/api/v5/", "/static/x.css"]
    for path in paths:
        for method in METHODS:
            assert top_level_choice(indexed, method, path) == top_level_choice(plain, method, path), (method, path)
