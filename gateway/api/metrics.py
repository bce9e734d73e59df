"""Prometheus metrics at /metrics and the request metrics of every route.

`RequestMetrics` is the outermost of the app's own middleware (inside only Starlette's error
layer), so it sees every HTTP request, those the order fast path, the access guard or the
body size limit answer themselves included. Each request is counted under its route
TEMPLATE (`/v1/orders/{order_id}`, never the raw path: label values stay bounded): the one
the router matched, or for a request answered before routing, the template its path matches
(`unmatched` when none does).

`GET /metrics` is public, like /v1/health, so that a Prometheus scraper needs no credential:
it exposes no account, order id or secret (labels are routes, instruments, venues, roles,
replicas and levels). Scrapes read the store off the event loop (`GatewayMetrics.refresh`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from re import Pattern
from time import perf_counter
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.order_fast_path import ROUTES as FAST_PATH_ROUTES
from gateway.config import Settings
from gateway.telemetry.metrics import GatewayMetrics

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"
# order entry: the acknowledgement latency of each accepted request
ORDER_ENTRY = frozenset(
    {
        ("POST", "/v1/orders"),
        ("POST", "/v1/orders/batch"),
        ("POST", "/v1/strategies"),
        ("POST", "/v1/quotes"),
    }
)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class RequestMetrics:
    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._templates: RouteTemplates | None = None  # at first use, every route added by then

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, self._on_started(scope, send))
                return
            await self.app(scope, receive, send)
            return
        runtime = getattr(scope["app"].state, "runtime", None)
        if runtime is not None and runtime is not self.metrics.runtime:
            await self.metrics.attach(runtime)  # an app whose runtime started without lifespan
        started = perf_counter()
        status = 500  # unless an answer starts: an exception the error layer turns into 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            elapsed = perf_counter() - started
            method = scope["method"] if scope["method"] in METHODS else "other"
            route = self._route(scope)
            self.metrics.observe_request(
                route, method, status, elapsed, (method, route) in ORDER_ENTRY
            )

    def _on_started(self, scope: Scope, send: Send) -> Callable[[Message], Awaitable[None]]:
        """The lifespan's `send`: once the app started (its runtime set), follow the runtime."""

        async def send_after_start(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                runtime = getattr(scope["app"].state, "runtime", None)
                if runtime is not None:
                    await self.metrics.attach(runtime)
            await send(message)

        return send_after_start

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")  # the route FastAPI matched (or partly: a 405)
        if route is not None:
            return str(getattr(route, "path_format", None) or getattr(route, "path", UNMATCHED))
        # answered before routing (the order fast path, the access guard, the size limit) or
        # by a route FastAPI does not note in the scope (the docs, the web app's files)
        if self._templates is None:
            self._templates = RouteTemplates(scope["app"])
        return self._templates.of(scope["path"])


class RouteTemplates:
    """The app's route templates, to name a path no route has been matched for: a literal
    path by a dict lookup (the order fast path's routes among them), a templated one by the
    routes' own patterns."""

    def __init__(self, app: FastAPI) -> None:
        self.literal: dict[str, str] = {path: path for path in FAST_PATH_ROUTES}
        self.patterns: list[tuple[str, Pattern[str]]] = []
        for route in _flattened(app.router.routes):
            template = getattr(route, "path_format", None)
            pattern = getattr(route, "path_regex", None)
            if not template or pattern is None:
                continue
            if "{" in template:
                self.patterns.append((template, pattern))
            else:
                self.literal.setdefault(template, template)

    def of(self, path: str) -> str:
        template = self.literal.get(path)
        if template is not None:
            return template
        for template, pattern in self.patterns:
            if pattern.match(path):
                return template
        return UNMATCHED


def _flattened(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, those of included routers too (FastAPI keeps an included router as one
    entry that lists its routes' effective contexts: template and pattern)."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            yield from contexts()
        else:
            yield route


async def metrics_endpoint(request: Request) -> Response:
    metrics: GatewayMetrics = request.app.state.metrics
    await metrics.refresh()
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """Serve /metrics (public, outside the OpenAPI document) and count every request; add it
    last, so that its middleware is the outermost of the app's own."""
    metrics = GatewayMetrics()
    app.state.metrics = metrics
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_api_route(
        METRICS_PATH,
        metrics_endpoint,
        methods=["GET"],
        include_in_schema=False,
        summary="Prometheus metrics (text exposition format)",
    )
