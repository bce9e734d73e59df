"""Access enforcement: one ASGI middleware authenticates every request, applies the rate
limit and the policy table, and leaves the `Principal` in `request.state.principal`;
routers ask the helpers below which accounts the caller may see.

Credentials, in order: `Authorization: Bearer <token>` (the operator token or a trader's
session), the HMAC headers of an API key (`gateway.access.request_signing`), and for the
WebSocket handshake only, a `?token=` query parameter (browsers cannot set headers there).

Failures answer with the usual error body: 401 `unauthenticated`, `bad_signature`,
`stale_request`, `replayed_request`; 403 `forbidden`; 429 `rate_limited` with `Retry-After`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.access.control import (
    AccessControl,
    AccessDenied,
    ApiKeyNotFound,
    ApiKeysUnavailable,
    AuthenticationFailed,
    SignInRefused,
)
from gateway.access.policy import Permission, allows, required_permission
from gateway.access.principal import Principal
from gateway.access.request_signing import (
    FORWARDED_BY,
    KEY_HEADER,
    ON_BEHALF_OF,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
)
from gateway.access.trading import Caller
from gateway.domain.errors import DomainError
from gateway.domain.orders import OrderSpec
from gateway.oms.service import OrderNotFound
from gateway.runtime import Runtime


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    # the shape of gateway.api.errors.error_body, which imports routers that import this
    return {"error": {"code": code, "message": message, "field": field}}


class AccessGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["type"] == "http" else "GET"
        permission = required_permission(method, scope["path"])
        if permission is Permission.PUBLIC and not scope["path"].startswith("/v1/auth/"):
            await self.app(scope, receive, send)
            return
        access = access_control(scope["app"])
        if access is None:  # not started: nothing can be checked
            await _deny(scope, receive, send, 503, "unavailable", "the gateway is starting")
            return
        if permission is Permission.PUBLIC:  # sign-in writes nonces: limited per client address
            client = scope.get("client") or ("unknown", 0)
            wait = access.rate.take(f"ip:{client[0]}", access.clock.now())
            if wait is not None:
                await _too_many(scope, receive, send, wait, f"client {client[0]}")
                return
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        body = b""
        if scope["type"] == "http" and KEY_HEADER in headers:
            body = await _read_body(receive)
            receive = replay_body(body, receive)
        try:
            principal = await _authenticate(access, scope, headers, method, body)
            on_behalf = _on_behalf_of(headers) if principal.is_operator else None
        except AuthenticationFailed as failure:
            await _deny(scope, receive, send, 401, failure.code, failure.message)
            return
        if on_behalf is not None:
            # a replica passing on its stream client's request: checked as that client's, and
            # counted against its rate where it arrived
            principal = on_behalf
            wait = None
        else:
            wait = await access.limit(principal)
        if wait is not None:
            await _too_many(scope, receive, send, wait, f"{principal.role} {principal.subject}")
            return
        if not allows(principal, permission):
            await _deny(
                scope,
                receive,
                send,
                403,
                "forbidden",
                f"the {principal.role} role may not {method} {scope['path']} "
                f"(needs {permission.value})",
            )
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


async def _too_many(scope: Scope, receive: Receive, send: Send, wait: int, who: str) -> None:
    message = f"over the request rate of {who}; retry in {wait} s"
    await _deny(scope, receive, send, 429, "rate_limited", message, {"Retry-After": str(wait)})


async def _authenticate(
    access: AccessControl, scope: Scope, headers: Headers, method: str, body: bytes
) -> Principal:
    authorization = headers.get("authorization")
    if authorization is not None:
        kind, _, token = authorization.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("Authorization must be `Bearer <token>`")
        return await access.bearer(token.strip())
    if KEY_HEADER in headers:
        timestamp = headers.get(TIMESTAMP_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        if timestamp is None or signature is None:
            raise AuthenticationFailed(
                f"{KEY_HEADER} needs {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}"
            )
        return await access.signed_request(
            headers[KEY_HEADER], timestamp, signature, method, _path_with_query(scope), body
        )
    if scope["type"] == "websocket":
        tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        if tokens:
            return await access.bearer(tokens[0])
    raise AuthenticationFailed("credentials are required: a bearer token or a signed request")


def _on_behalf_of(headers: Headers) -> Principal | None:
    """The principal a replica forwarded a stream request for: only with the operator's token
    (which the replicas share) and the replica's forwarding mark."""
    if FORWARDED_BY not in headers or ON_BEHALF_OF not in headers:
        return None
    try:
        return Principal.from_json(headers[ON_BEHALF_OF])
    except (ValueError, KeyError, TypeError):
        raise AuthenticationFailed(f"{ON_BEHALF_OF} is not a principal") from None


def _path_with_query(scope: Scope) -> str:
    """The path as the client sent it (still percent-encoded), with its query."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    query: bytes = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _deny(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    message: str,
    extra_headers: dict[str, str] | None = None,
) -> None:
    headers = dict(extra_headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="isthmus"'
    if scope["type"] == "http":
        response = JSONResponse(error_body(code, message), status_code=status, headers=headers)
        await response(scope, receive, send)
        return
    await receive()  # the handshake's websocket.connect
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps(error_body(code, message)).encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    *((k.lower().encode(), v.encode()) for k, v in headers.items()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": 1008, "reason": code})


# --- for routers: which accounts the caller may see ---------------------------------------


def principal_of(connection: HTTPConnection) -> Principal:
    principal: Principal | None = connection.scope.get("state", {}).get("principal")
    if principal is None:  # only public routes lack one, and they serve no account data
        raise AuthenticationFailed("credentials are required")
    return principal


def access_control(app: Any) -> AccessControl | None:
    """The app's access state, made from its runtime on first use (tests that start a
    runtime themselves set `app.state.runtime` without running the lifespan)."""
    rt: Runtime | None = getattr(app.state, "runtime", None)
    if rt is None:
        return None
    access: AccessControl | None = getattr(app.state, "access", None)
    # each start of the lifespan builds a new runtime (a new writer): follow it
    if access is None or getattr(app.state, "access_runtime", None) is not rt:
        access = AccessControl(rt.settings, rt.read_engine, rt.writer, rt.clock, rt.signatures)
        app.state.access, app.state.access_runtime = access, rt
    return access


def _access(connection: HTTPConnection) -> AccessControl:
    access = access_control(connection.app)
    assert access is not None  # the guard made it before any router runs
    return access


def caller_of(connection: HTTPConnection) -> Caller:
    return Caller(principal_of(connection), _access(connection))


async def can_see(connection: HTTPConnection, account: str) -> bool:
    return await caller_of(connection).can_see(account)


async def ensure_account(connection: HTTPConnection, account: str) -> None:
    await caller_of(connection).ensure_account(account)


async def ensure_order_visible(connection: HTTPConnection, order_id: str, account: str) -> None:
    """Another account's order is answered as not found, so order ids reveal nothing."""
    if not await can_see(connection, account):
        raise OrderNotFound(f"no order {order_id}", field="order_id")


async def ensure_may_trade(connection: HTTPConnection, spec: OrderSpec, chain: bool) -> None:
    await caller_of(connection).ensure_may_trade(spec, chain)


def ensure_not_api_key(connection: HTTPConnection, what: str) -> None:
    """Refuse API keys what they could only do unsigned (algos send unsigned children)."""
    if principal_of(connection).role == "protocol":
        raise AccessDenied(
            f"an API key cannot {what}: only orders the owner signed", code="signature_required"
        )


async def ensure_not_delegate(connection: HTTPConnection, account: str, what: str) -> None:
    await caller_of(connection).ensure_not_delegate(account, what)


# Status of each access error (they are DomainErrors, whose default would be 422).
ACCESS_STATUS: dict[type[DomainError], int] = {
    AuthenticationFailed: 401,
    SignInRefused: 401,
    AccessDenied: 403,
    ApiKeyNotFound: 404,
    ApiKeysUnavailable: 409,
}


async def _on_access_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    status = ACCESS_STATUS[type(error)]
    return JSONResponse(error_body(error.code, error.message, error.field), status_code=status)


def install_access(app: FastAPI) -> None:
    """Call before the body size limit is added, so that limit stays the outer layer."""
    for error in ACCESS_STATUS:
        app.add_exception_handler(error, _on_access_error)
    app.add_middleware(AccessGuard)
    _describe_access(app)


SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The operator token, or a trader's session token from POST /v1/auth/siwe",
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": KEY_HEADER},
    "apiKeyTimestamp": {"type": "apiKey", "in": "header", "name": TIMESTAMP_HEADER},
    "apiKeySignature": {
        "type": "apiKey",
        "in": "header",
        "name": SIGNATURE_HEADER,
        "description": "hex HMAC-SHA256(secret, timestamp + METHOD + path_with_query + body)",
    },
}
_REFUSALS = {
    "401": "Missing or bad credentials: unauthenticated, bad_signature, stale_request, "
    "replayed_request",
    "403": "The caller's role, scopes or accounts do not allow it: forbidden",
    "429": "Over the caller's request rate: rate_limited, with Retry-After (seconds)",
}


def _describe_access(app: FastAPI) -> None:
    """Publish who may call what in /openapi.json (and /docs): the security schemes, and on
    each operation the credentials it takes and its refusals."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        error = {"$ref": "#/components/schemas/ErrorOut"}
        has_error = "ErrorOut" in schema["components"].get("schemas", {})
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                permission = required_permission(method, path)
                if permission is Permission.PUBLIC:
                    continue
                operation["security"] = [
                    {"bearer": []},
                    {"apiKey": [], "apiKeyTimestamp": [], "apiKeySignature": []},
                ]
                responses = operation.setdefault("responses", {})
                for status, text in _REFUSALS.items():
                    answer: dict[str, Any] = {"description": text}
                    if has_error:
                        answer["content"] = {"application/json": {"schema": error}}
                    responses.setdefault(status, answer)
                operation["description"] = (
                    operation.get("description", "") + f"\n\nNeeds: `{permission.value}`."
                ).strip()
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
