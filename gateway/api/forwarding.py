"""Replicas: a request that needs the roles another replica holds is forwarded to it.

Every replica answers the whole API. The book, the pre-trade ledger and the runners live in
the process that holds the lease, so a replica that does not hold it passes each HTTP request
on to the holder unchanged (method, path, query, headers and body: an HMAC-signed request stays
valid, and is authenticated, rate-limited and checked for replay once, by the holder) and
returns its answer. Health, readiness, metrics, status, the web app's files and the docs are
answered locally; WebSocket streams stay on the replica the client chose (events reach it
through the database).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

import httpx
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.access.principal import Principal
from gateway.access.request_signing import FORWARDED_BY, ON_BEHALF_OF
from gateway.api.errors import error_body

log = logging.getLogger("gateway.forwarding")

LOCAL_PATHS = (
    "/v1/health",
    "/v1/ready",
    "/v1/status",
    "/v1/fix/sessions",
    "/metrics",
    "/docs",
    "/redoc",
)
LOCAL_PREFIXES = ("/app", "/openapi.json", "/docs/")
FORWARDED_HEADER = FORWARDED_BY.lower().encode()
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"te",
    b"trailer",
    b"upgrade",
    b"content-length",
    b"proxy-authorization",
    b"proxy-authenticate",
}
ACTIVATION_WAIT_SECONDS = 30.0  # a new holder rebuilding its book from the store


class ForwardToHolder:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _local(scope["path"]):
            await self.app(scope, receive, send)
            return
        runtime = getattr(scope["app"].state, "runtime", None)
        leases = None if runtime is None else runtime.leases
        if leases is None:
            await self.app(scope, receive, send)
            return
        if leases.holding:
            try:
                await asyncio.wait_for(leases.active.wait(), ACTIVATION_WAIT_SECONDS)
            except TimeoutError:
                await _unavailable(
                    scope, receive, send, "primary_starting", "this replica is still taking over"
                )
                return
            await self.app(scope, receive, send)
            return
        address = leases.holder_address()
        if address is None or any(k == FORWARDED_HEADER for k, _ in scope["headers"]):
            await _unavailable(
                scope,
                receive,
                send,
                "no_primary",
                "no replica holds the book right now (failing over)",
            )
            return
        await self._forward(scope, receive, send, address, leases.replica_id)

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, address: str, replica_id: str
    ) -> None:
        body = bytearray()
        while True:
            message = await receive()
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                break
        # the Host stays the one the client used: a sign-in message names it as its domain
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        headers.append((FORWARDED_HEADER, replica_id.encode()))
        url = address.rstrip("/") + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=2.0))
        try:
            answer = await self._client.request(
                scope["method"], url, headers=headers, content=bytes(body)
            )
        except httpx.TransportError as error:
            log.warning("forwarding to %s failed: %s", address, error)
            await _unavailable(
                scope,
                receive,
                send,
                "primary_unavailable",
                "the replica holding the book did not answer",
            )
            return
        out = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in answer.headers.multi_items()
            if k.lower().encode() not in HOP_BY_HOP and k.lower() != "content-encoding"
        ]
        out.append((b"content-length", str(len(answer.content)).encode()))
        await send({"type": "http.response.start", "status": answer.status_code, "headers": out})
        await send({"type": "http.response.body", "body": answer.content})


def _local(path: str) -> bool:
    return path in LOCAL_PATHS or path.startswith(LOCAL_PREFIXES)


async def _unavailable(scope: Scope, receive: Receive, send: Send, code: str, message: str) -> None:
    answer = JSONResponse(error_body(code, message), 503, headers={"Retry-After": "1"})
    await answer(scope, receive, send)


def _rest_request(op: str, message: dict[str, Any]) -> tuple[str, str, Any] | None:
    """The REST request a stream order-entry request stands for (method, path, JSON body)."""
    payload = {k: v for k, v in message.items() if k not in ("op", "id")}
    order_id = message.get("order_id")
    if op == "place":
        return "POST", "/v1/orders", message.get("order")
    if op == "amend":
        return (
            "PATCH",
            f"/v1/orders/{quote(str(order_id))}",
            {k: v for k, v in payload.items() if k != "order_id"},
        )
    if op == "cancel":
        version = message.get("expected_version")
        query = "" if version is None else f"?expected_version={quote(str(version))}"
        return "DELETE", f"/v1/orders/{quote(str(order_id))}{query}", None
    return {
        "batch": ("POST", "/v1/orders/batch", payload),
        "cancel_orders": ("POST", "/v1/orders/cancel", payload),
        "mass_quote": ("POST", "/v1/quotes", payload),
    }.get(op)


ORDER_ANSWERS = ("place", "amend", "cancel")  # the REST body is the order; the stream nests it


async def forward_entry(
    address: str,
    replica_id: str,
    operator_token: str,
    principal: Principal,
    op: str,
    message: dict[str, Any],
) -> dict[str, Any] | None:
    """A stream order-entry request served by the holder of the roles: sent as its REST
    request on behalf of the stream's client, answered as the stream answers (status, the
    order or the REST body, or the error). None: the request has no REST form here."""
    request = _rest_request(op, message)
    if request is None:
        return None
    method, path, body = request
    headers = {
        "Authorization": f"Bearer {operator_token}",
        FORWARDED_BY: replica_id,
        ON_BEHALF_OF: principal.to_json(),
    }
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=2.0)) as client:
            answer = await client.request(
                method, address.rstrip("/") + path, headers=headers, json=body
            )
    except httpx.TransportError:
        return {
            "status": 503,
            "error": error_body(
                "primary_unavailable", "the replica holding the book did not answer"
            )["error"],
        }
    content = answer.json()
    if answer.status_code >= 400:
        return {"status": answer.status_code, "error": content.get("error")}
    if op in ORDER_ANSWERS:
        return {"status": answer.status_code, "order": content}
    return {"status": answer.status_code, **content}
