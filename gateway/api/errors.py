"""Every error leaves as `{"error": {"code", "message", "field"}}` with a stable code."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.settlements import BatchNotFound
from gateway.compliance.rules import ComplianceRefused
from gateway.domain.errors import DomainError, IllegalTransition, InvalidOrder, UnknownInstrument
from gateway.domain.trading_keys import TradingKeyRefused
from gateway.oms.execution_analysis import TcaUnavailable
from gateway.oms.legging_runner import LeggingNotFound
from gateway.oms.service import DuplicateClientOrderId, OrderNotFound, VersionConflict
from gateway.risk.pretrade import InstrumentNotAllowed, KillSwitchEngaged, OrderRateExceeded

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


def _domain_status(error: DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in DOMAIN_STATUS:
            return DOMAIN_STATUS[cls]
    return 422


async def _on_domain_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    return JSONResponse(
        error_body(error.code, error.message, error.field), status_code=_domain_status(error)
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


async def _on_http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = HTTP_CODES.get(error.status_code, f"http_{error.status_code}")
    return JSONResponse(
        error_body(code, str(error.detail)),
        status_code=error.status_code,
        headers=getattr(error, "headers", None),
    )


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
