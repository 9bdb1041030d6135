"""BentoML's request metrics labelled by route template, never by the path a client sent.

BentoML's HTTP metrics middleware (`RunnerTrafficMetricsMiddleware`, the outermost layer of
its app) labels `request_total`, `request_duration_seconds` and `request_in_progress` with
`scope["path"]` as it arrives: every distinct path, 404s included, made new series in the
multiprocess files (3,000 random paths grew /metrics from 59 KB to 12.8 MB, a scrape took
16.8 s) and put raw request bytes (NUL included) in label values. BentoML offers no setting
for the label (its `metrics` config has only `enabled`, `namespace` and buckets) and runs the
service's own ASGI middlewares inside that one, so the label is fixed in two steps:

- `RouteLabelledApp` wraps the whole app at the HTTP protocol (`header_limits` installs it,
  the one place outside BentoML's stack): it sets `scope["path"]` to the template of the route
  that will answer (`/predict`, `/static_content/{path}`, `/ui/`), or `unmatched` for every
  path no route takes, and keeps the real path in the scope under `REAL_PATH`;
- `RealPath`, the first of the service's own middlewares, puts the real path back, so that
  routing, auth and limits see exactly what the client sent (an unmatched path still 404s).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

REAL_PATH = "phishguard.real_path"
UNMATCHED = "unmatched"
_LABELLED = ("http", "websocket")


def route_template(routes: list[Any], scope: Scope) -> str:
    """The template of the route among `routes` that takes `scope` (a mount's own routes
    are followed), else `UNMATCHED`."""
    for route in routes:
        match, child = route.matches(scope)
        if match == Match.NONE:
            continue
        if not isinstance(route, Mount):
            return route.path
        inner = getattr(route.app, "routes", None)
        if inner is None:  # static files and other apps: every path below is one label
            return f"{route.path}/{{path}}"
        template = route_template(inner, {**scope, **child})
        return UNMATCHED if template == UNMATCHED else route.path + template
    return UNMATCHED


def _router_of(app: Any) -> Any | None:
    """The Starlette router under uvicorn's wrappers (each keeps the next in `.app`)."""
    for _ in range(8):
        if hasattr(app, "router") and hasattr(app.router, "routes"):
            return app.router
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


class RouteLabelledApp:
    """`app` with `scope["path"]` set to its route template for the layers that label by it;
    the real path travels in the scope under `REAL_PATH` (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.router = _router_of(app)
        # The routes without parameters (every API route) are their own template: found in a
        # set (~0.1 µs) instead of by matching each route in turn (~40 µs).
        routes = [] if self.router is None else self.router.routes
        self.exact = {
            route.path
            for route in routes
            if not isinstance(route, Mount) and not getattr(route, "param_convertors", True)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.router is not None and scope["type"] in _LABELLED:
            if scope["path"] in self.exact:
                await self.app(scope, receive, send)
                return
            template = route_template(self.router.routes, scope)
            if template != scope["path"]:
                scope = {**scope, "path": template, REAL_PATH: scope["path"]}
        await self.app(scope, receive, send)


class RealPath:
    """An ASGI middleware that puts back the path `RouteLabelledApp` replaced."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if REAL_PATH in scope:
            real = scope[REAL_PATH]
            scope = {key: value for key, value in scope.items() if key != REAL_PATH}
            scope["path"] = real
        await self.app(scope, receive, send)
