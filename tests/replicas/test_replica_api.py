"""Two `isthmus up --replica` processes on one PostgreSQL, the internal book as the venue: a
client may talk to either. Requests reach the holder of the roles from the other replica
(HMAC-signed ones stay valid); a signed request replayed to the other replica is refused, also
after the holder died (the replay memory is in the database); the stream of the replica that
does not hold the roles carries the events of orders placed through it (through the database);
order entry on that stream says where the holder is."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

from gateway.access.request_signing import sign_request
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
                # order entry on that stream: the holder serves it
                await socket.send(json.dumps({"op": "place", "id": 1, "order": order("ws")}))
                while True:
                    answer = json.loads(await socket.recv())
                    if answer.get("type") == "response":
                        break
                assert answer["status"] == 421, answer
                assert answer["error"]["code"] == "entry_on_primary"
                assert answer["primary"] == holder.url

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
