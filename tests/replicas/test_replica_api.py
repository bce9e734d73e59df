"""Two `isthmus up --replica` processes on one PostgreSQL, the internal book as the venue: a
client may talk to either. Requests reach the holder of the roles from the other replica
(HMAC-signed ones stay valid); a signed request replayed to the other replica is refused, also
after the holder died (the replay memory is in the database); the stream of the replica that
does not hold the roles carries the events of orders placed through it (through the database);
order entry on that stream is served by the holder for that stream's client."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import websockets

from gateway.access.principal import OPERATOR
from gateway.access.request_signing import FORWARDED_BY, ON_BEHALF_OF, sign_request
from gateway.store.database import create_database_engine
from tests.integration.gateway_process import GatewayProcess
from tests.operator_access import operator_headers
from tests.postgres_cluster import PostgresCluster
from tests.replicas.lease_holder import wait_for_holder

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ACCOUNT = "0x00000000000000000000000000000000000000A1"


def order(client_order_id: str, side: str = "buy", price: str = "2900") -> dict[str, str]:
    return {
        "account": ACCOUNT,
        "client_order_id": client_order_id,
        "instrument": "WETH/USDC",
        "side": side,
        "quantity": "1",
        "price": price,
    }


async def response_to(socket: Any, request_id: int) -> dict[str, Any]:
    """The answer to one stream request (events of the account may come in between)."""
    while True:
        message: dict[str, Any] = json.loads(await socket.recv())
        if message.get("type") == "response" and message.get("id") == request_id:
            return message


def test_any_replica_answers_the_whole_api(postgres: PostgresCluster) -> None:
    database_url = postgres.new_database()
    replicas = [
        GatewayProcess(database_url, env={"ISTHMUS_REPLICA": "true", "ISTHMUS_REPLICA_ID": f"r{i}"})
        for i in range(2)
    ]
    for replica in replicas:
        replica.start()
    engine = create_database_engine(database_url, for_writes=False)
    try:
        held = wait_for_holder(database_url)
        holder = next(r for r in replicas if held.address == r.url)
        other = next(r for r in replicas if r is not holder)

        async def main() -> None:
            async with (
                websockets.connect(
                    other.url.replace("http", "ws") + "/v1/stream",
                    additional_headers=operator_headers(),
                ) as socket,
                httpx.AsyncClient(timeout=30) as http,
            ):
                assert json.loads(await socket.recv())["type"] == "subscribed"
                # through the replica that does not hold the book: forwarded, answered the same
                placed = await http.post(
                    f"{other.url}/v1/orders", json=order("via-other"), headers=operator_headers()
                )
                assert placed.status_code == 201, placed.text
                again = await http.post(
                    f"{holder.url}/v1/orders", json=order("via-other"), headers=operator_headers()
                )
                assert again.status_code == 200 and again.json()["id"] == placed.json()["id"]
                # the other replica's stream saw it, through the database
                while True:
                    event = json.loads(await socket.recv())
                    if event.get("type", "").startswith("order.") and (
                        event["order"]["id"] == placed.json()["id"]
                    ):
                        break
                # order entry on that stream: passed on to the holder for this client
                await socket.send(json.dumps({"op": "place", "id": 1, "order": order("ws")}))
                answer = await response_to(socket, 1)
                assert answer["status"] == 201, answer
                order_id = answer["order"]["id"]
                await socket.send(json.dumps({"op": "place", "id": 2, "order": order("ws")}))
                assert (await response_to(socket, 2))["order"]["id"] == order_id  # idempotent
                await socket.send(
                    json.dumps({"op": "amend", "id": 3, "order_id": order_id, "price": "2901"})
                )
                amended = await response_to(socket, 3)
                assert amended["status"] == 200 and amended["order"]["price"] == "2901", amended
                await socket.send(json.dumps({"op": "cancel", "id": 4, "order_id": "ord_nope"}))
                missing = await response_to(socket, 4)
                assert missing["status"] == 404, missing
                await socket.send(json.dumps({"op": "cancel_orders", "id": 5, "account": ACCOUNT}))
                cancelled = await response_to(socket, 5)
                assert cancelled["status"] == 200, cancelled
                stored = await http.get(
                    f"{holder.url}/v1/orders/{order_id}", headers=operator_headers()
                )
                assert stored.json()["status"] == "cancelled"
                # cancel-on-disconnect watches this replica's socket: on the holder's only
                await socket.send(
                    json.dumps({"op": "cancel_on_disconnect", "id": 6, "enabled": True})
                )
                refused = await response_to(socket, 6)
                assert refused["status"] == 421, refused
                assert refused["error"]["code"] == "entry_on_primary"
                assert refused["primary"] == holder.url

                # an API key: its signed request is valid through either replica, once
                created = await http.post(
                    f"{other.url}/v1/api-keys",
                    json={"role": "protocol", "scopes": ["read"], "accounts": [ACCOUNT]},
                    headers=operator_headers(),
                )
                assert created.status_code == 201, created.text
                key_id, secret = created.json()["key_id"], created.json()["secret"]
                path = f"/v1/orders?account={ACCOUNT}"
                headers = sign_request(
                    key_id, secret, "GET", path, b"", now_ms=int(time.time() * 1000)
                )
                first = await http.get(f"{other.url}{path}", headers=headers)
                assert first.status_code == 200, first.text
                assert placed.json()["id"] in {o["id"] for o in first.json()["items"]}
                replayed = await http.get(f"{holder.url}{path}", headers=headers)
                assert replayed.status_code == 401
                assert replayed.json()["error"]["code"] == "replayed_request"
                # only the replicas' shared operator token may speak for someone else: a
                # read-only key claiming the operator is still itself
                body = json.dumps(order("spoof")).encode()
                spoofed = await http.post(
                    f"{holder.url}/v1/orders",
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        FORWARDED_BY: "r9",
                        ON_BEHALF_OF: OPERATOR.to_json(),
                        **sign_request(
                            key_id,
                            secret,
                            "POST",
                            "/v1/orders",
                            body,
                            now_ms=int(time.time() * 1000),
                        ),
                    },
                )
                assert spoofed.status_code == 403, spoofed.text
                # local answers: health of the replica asked
                assert (await http.get(f"{other.url}/v1/health")).status_code == 200
                # the holder dies: the other takes over, and still remembers the signature
                holder.kill()
                while True:  # failing over: 503 no_primary / primary_unavailable meanwhile
                    after = await http.get(f"{other.url}{path}", headers=headers)
                    if after.status_code != 503:
                        break
                    await asyncio.sleep(0.1)
                assert after.status_code == 401, after.text
                assert after.json()["error"]["code"] == "replayed_request"

        asyncio.run(main())
    finally:
        engine.dispose()
        for replica in replicas:
            replica.stop()
