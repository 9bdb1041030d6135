"""Route-template labels for BentoML's request metrics (issue 27 item 7), in-process: every
path a client can send maps to one of a fixed set of labels, and the layers under BentoML's
metrics middleware still see the real path. `test_server_start.py` checks /metrics itself."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phishguard.serving.route_labels import (
    REAL_PATH,
    UNMATCHED,
    RealPath,
    RouteLabelledApp,
    route_template,
)

KNOWN = {
    ("/predict", "POST"): "/predict",
    ("/predict", "GET"): "/predict",  # a 405 is still that route
    ("/metrics", "GET"): "/metrics",
    ("/ui/", "GET"): "/ui/",
    ("/static_content/swagger-ui.css", "GET"): "/static_content/{path}",
    ("/predict/x", "POST"): UNMATCHED,
    ("/ui/../../etc/passwd", "GET"): UNMATCHED,
    ("/\x00\xff", "GET"): UNMATCHED,
}


def scope_of(path: str, method: str = "GET") -> dict:
    return {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}


@pytest.mark.parametrize(("path", "method"), sorted(KNOWN))
def test_each_path_gets_its_route_template(service_app, path: str, method: str) -> None:
    assert route_template(service_app.router.routes, scope_of(path, method)) == KNOWN[path, method]


@settings(max_examples=300, deadline=None)
@given(path=st.text(min_size=0, max_size=60).map(lambda text: "/" + text))
def test_any_path_gets_a_label_from_a_fixed_set(service_app, path: str) -> None:
    routes = service_app.router.routes
    templates = {route.path for route in routes} | {UNMATCHED, "/ui/", "/static_content/{path}"}
    assert route_template(routes, scope_of(path)) in templates


def test_the_layers_inside_see_the_real_path_and_those_outside_the_template(
    service_app,
) -> None:
    seen: dict[str, str] = {}

    async def endpoint(scope, receive, send) -> None:
        seen["endpoint"] = scope["path"]
        assert REAL_PATH not in scope

    def metrics_layer(app):  # where BentoML's metrics middleware sits
        async def layer(scope, receive, send) -> None:
            seen["metrics"] = scope["path"]
            await app(scope, receive, send)

        return layer

    labelled = RouteLabelledApp(service_app)
    labelled.app = metrics_layer(RealPath(endpoint))
    asyncio.run(labelled(scope_of("/no/such\x00path"), None, None))
    assert seen == {"metrics": UNMATCHED, "endpoint": "/no/such\x00path"}
