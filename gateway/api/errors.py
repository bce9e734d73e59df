"""Every error leaves as `{"error": {"code", "message", "field"}}` with a stable code.

Two answers come from the framework rather than from an operation, and are made exact here:
a body that is not JSON is `400 malformed_json` on every operation that takes a body (and
/openapi.json says so on each of them), and a method a path does not serve is
`405 method_not_allowed` with an `Allow` header listing exactly the methods the path answers.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.schemas import ErrorOut
from gateway.api.settlements import BatchNotFound
from gateway.compliance.rules import ComplianceRefused
from gateway.domain.errors import DomainError, IllegalTransition, InvalidOrder, UnknownInstrument
from gateway.domain.trading_keys import TradingKeyRefused
from gateway.oms.execution_analysis import TcaUnavailable
from gateway.oms.legging_runner import LeggingNotFound
from gateway.oms.service import DuplicateClientOrderId, OrderNotFound, VersionConflict
from gateway.risk.pretrade import InstrumentNotAllowed, KillSwitchEngaged, OrderRateExceeded
from gateway.store.leases import StaleLease

log = logging.getLogger("gateway.api")

# Domain errors by HTTP status; subclasses are looked up through the MRO.
DOMAIN_STATUS: dict[type[DomainError], int] = {
    KillSwitchEngaged: 403,
    ComplianceRefused: 403,
    InstrumentNotAllowed: 403,
    TradingKeyRefused: 403,  # key_revoked, key_expired, key_scope, key_max_notional
    OrderRateExceeded: 429,
    OrderNotFound: 404,
    DuplicateClientOrderId: 409,
    VersionConflict: 409,
    IllegalTransition: 409,
    TcaUnavailable: 409,
    LeggingNotFound: 404,
    BatchNotFound: 404,
    StaleLease: 503,
    UnknownInstrument: 422,
    InvalidOrder: 422,
    DomainError: 422,
}

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_status(error: DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in DOMAIN_STATUS:
            return DOMAIN_STATUS[cls]
    return 422


async def _on_domain_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    return JSONResponse(
        error_body(error.code, error.message, error.field), status_code=error_status(error)
    )


async def _on_validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = error.errors()
    first = problems[0] if problems else {"msg": "invalid request", "loc": (), "type": ""}
    if first.get("type") == "json_invalid":
        return JSONResponse(
            error_body("malformed_json", "the body is not valid JSON", "body"), status_code=400
        )
    field = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid request"))
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problems)"
    return JSONResponse(error_body("validation_error", message, field or None), status_code=422)


async def _on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = HTTP_CODES.get(error.status_code, f"http_{error.status_code}")
    message = str(error.detail)
    headers = dict(getattr(error, "headers", None) or {})
    if error.status_code == 405:
        allowed = allowed_methods(request)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
            message = f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"
    return JSONResponse(
        error_body(code, message), status_code=error.status_code, headers=headers or None
    )


# Methods probed for a path's `Allow`, in the order the header lists them.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")


def allowed_methods(request: Request) -> list[str]:
    """The methods the app answers on the request's path: for each method, the app's own
    router is asked whether a route matches it whole (path and method). The router answers
    one route at a time, so its own 405 names the methods of the first route on the path
    only (POST for /v1/orders, which also serves GET); this asks every route. HEAD is listed
    only where a route serves it (the API's GET operations do not)."""
    routes = request.app.router.routes
    allowed = []
    for method in HTTP_METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return allowed


async def _on_unexpected(_: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=error)
    return JSONResponse(
        error_body("internal_error", "an unexpected error occurred; nothing was acknowledged"),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
    _describe_malformed_json(app)


MALFORMED_JSON = "malformed_json: the body is not valid JSON"


def _describe_malformed_json(app: FastAPI) -> None:
    """Every operation that takes a body answers `400 malformed_json` when it is not JSON
    (`_on_validation_error`): document that on each of them in /openapi.json, in this one
    place, so an operation added later is described too."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # cached by the app after the first call; the changes are idempotent
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        if "ErrorOut" not in schemas:
            error_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(error_schema.pop("$defs", {}))
            schemas["ErrorOut"] = error_schema
        content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                if not isinstance(operation, dict) or "requestBody" not in operation:
                    continue
                answer = operation.setdefault("responses", {}).setdefault("400", {})
                answer.setdefault("content", content)
                if answer.get("description") in (None, "", "Bad Request"):
                    answer["description"] = MALFORMED_JSON
                elif "malformed_json" not in answer["description"]:
                    answer["description"] += f"; {MALFORMED_JSON}"
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class BodySizeLimit:
    """Refuse bodies over `limit` bytes with 413, by header or while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.limit + 1
                if declared > self.limit:
                    await self._too_large(send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            error_body("payload_too_large", f"request bodies are limited to {self.limit} bytes"),
            status_code=413,
        )
        await response({"type": "http"}, _no_receive, send)


class _TooLarge(Exception):
    pass


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
