"""OpenTelemetry traces of API requests, and request ids in the structured logs.

`RequestTracing` is the outermost of the app's own middleware (pure ASGI). Per request it:

- takes the caller's `X-Request-Id` when it is sane (1 to 128 of letters, digits and
  `._:/+=-`), else makes one, and returns it in the response's `X-Request-Id`;
- binds it to the log context for the request (`request_id`; the order's `order_id` joins
  once the order service knows it; both are unbound when the request ends);
- with tracing on, opens the server span `METHOD /route/template` (attributes
  `http.method`, `http.route`, `http.status_code`, `request.id`; a W3C `traceparent` sent
  by the caller becomes its parent). The route is read after the request from the route
  the router matched, or is the path of `POST /v1/orders` and `/v1/orders/batch`, which the
  order fast path (`order_fast_path`, inside this middleware) answers without the router.

With tracing off (the default) the order path pays for a header scan, a random id and the
log context's bind and unbind: no span object is made. A WebSocket connection gets a
request id for its logs and no span (it lasts as long as the connection).
"""

from __future__ import annotations

import logging
import os
import re
import time

from fastapi import FastAPI
from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.order_fast_path import ROUTES as FAST_PATHS
from gateway.config import Settings
from gateway.telemetry import tracing
from gateway.telemetry.logs import close_request, open_request

REQUEST_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")
log = logging.getLogger("gateway.api")


def install_tracing(app: FastAPI, settings: Settings) -> None:
    """Install the tracer provider the settings ask for, and the request middleware."""
    tracing.configure_tracing(settings)
    app.add_middleware(RequestTracing)


class RequestTracing:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind != "websocket":
                await self.app(scope, receive, send)
                return
            opened = open_request(request_id(scope), scoped=False)
            try:
                await self.app(scope, receive, send)
            finally:
                close_request(opened)
            return
        rid = request_id(scope)
        header = (REQUEST_ID_HEADER, rid.encode("latin-1"))
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        opened = open_request(rid)
        started = time.perf_counter() if log.isEnabledFor(logging.DEBUG) else None
        try:
            if not tracing.enabled():
                try:
                    await self.app(scope, receive, send_with_id)
                finally:
                    if started is not None:
                        _log_request(scope, status, started)
                return
            method = scope["method"]
            parent = _caller_context(scope)
            with tracing.start_span(method, kind=SpanKind.SERVER, context=parent) as span:
                span.set_attribute("http.method", method)
                span.set_attribute("request.id", rid)
                try:
                    await self.app(scope, receive, send_with_id)
                except BaseException:
                    status = status or 500
                    raise
                finally:
                    route = route_template(scope)
                    if route is not None:
                        span.update_name(f"{method} {route}")
                        span.set_attribute("http.route", route)
                    if status:
                        span.set_attribute("http.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                    if started is not None:  # inside the span: the line has its trace id
                        _log_request(scope, status, started)
        finally:
            close_request(opened)


def _log_request(scope: Scope, status: int, started: float) -> None:
    """One DEBUG line per request (uvicorn's access log is the INFO one), with the request's
    ids; the path without its query string (which may hold a WebSocket's token)."""
    log.debug(
        "%s %s %s",
        scope["method"],
        scope["path"],
        status,
        extra={
            "http_method": scope["method"],
            "http_route": route_template(scope),
            "status_code": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        },
    )


def request_id(scope: Scope) -> str:
    """The caller's `X-Request-Id` if sane, else a new random one (32 hex digits)."""
    value: bytes
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            if _SANE_ID.fullmatch(value):
                return value.decode("latin-1")
            break
    return os.urandom(16).hex()


def route_template(scope: Scope) -> str | None:
    """The matched route's path template (`/v1/orders/{order_id}`), None when none did."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    if scope["path"] in FAST_PATHS:  # answered by the order fast path, before any router
        return str(scope["path"])
    return None


def _caller_context(scope: Scope) -> Context | None:
    """The caller's trace (a W3C `traceparent` header), if it sent one."""
    for name, _ in scope["headers"]:
        if name == b"traceparent":
            carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            return propagate.extract(carrier)
    return None
