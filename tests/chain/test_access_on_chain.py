"""Access on a chain: a trader signed in with its key acts for the MarginWallets it owns
(read from the chain), and an API key passes on only orders the wallet's owner signed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from web3 import Web3

from gateway.access.request_signing import sign_request
from gateway.access.siwe import SiweMessage, sign_siwe
from gateway.chain.anvil import Anvil
from gateway.chain.transactions import Sender
from tests.chain.settlement_desk import Desk, serve
from tests.operator_access import operator_headers

pytestmark = pytest.mark.chain


class Hmac(httpx.Auth):
    """Signs each request as an API key client would."""

    requires_request_body = True

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id, self.secret = key_id, secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        now_ms = time.time_ns() // 1_000_000
        path = request.url.raw_path.decode()
        request.headers.update(
            sign_request(
                self.key_id, self.secret, request.method, path, request.content, now_ms=now_ms
            )
        )
        yield request


async def sign_in(http: httpx.AsyncClient, trader: Any, chain_id: int) -> dict[str, str]:
    nonce = (await http.get("/v1/auth/siwe/nonce")).json()["nonce"]
    now = datetime.now(UTC)
    message = SiweMessage(
        domain="gw",
        address=trader.address,
        uri="http://gw",
        chain_id=chain_id,
        nonce=nonce,
        issued_at=now,
        expiration_time=now + timedelta(minutes=10),
    )
    signature = sign_siwe(message, Web3.to_hex(trader.key))
    session = await http.post(
        "/v1/auth/siwe", json={"message": message.text(), "signature": signature}
    )
    assert session.status_code == 200, session.text
    return {"Authorization": f"Bearer {session.json()['token']}"}


async def refused(http: httpx.AsyncClient, account: str, code: str) -> None:
    body = {
        "account": account,
        "client_order_id": f"refused-{code}",
        "instrument": "WETH/USDC",
        "side": "sell",
        "quantity": "1",
        "price": "3100",
        "signature": {"nonce": "99", "deadline": 2**40, "signature": "0x" + "11" * 65},
    }
    response = await http.post("/v1/orders", json=body)
    assert response.status_code == 403 and response.json()["error"]["code"] == code


def test_traders_and_api_keys_act_for_the_wallets_their_keys_own(
    w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3, tmp_path: Path
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'access.db'}")

    async def scenario() -> None:
        rt = desk.runtime(require_signed=False)
        http = await serve(rt, as_operator=False)
        try:
            # the buyer signs in with its own key and trades its wallet, not the seller's
            http.headers.update(await sign_in(http, desk.buyer, w3.eth.chain_id))
            mine = await desk.order(http, desk.buyer, desk.buyer_wallet, "buy", "1", "2900")
            assert mine["account"] == desk.buyer_wallet
            risk = await http.get(f"/v1/accounts/{desk.seller_wallet}/risk")
            assert risk.status_code == 403 and risk.json()["error"]["code"] == "forbidden"
            listed = (await http.get("/v1/orders")).json()["items"]
            assert [o["id"] for o in listed] == [mine["id"]]  # learned from the chain
            await refused(http, desk.seller_wallet, "forbidden")

            # an API key for the buyer's wallet passes the buyer's signed orders only
            operator = {"headers": operator_headers()}
            created = await http.post(
                "/v1/api-keys",
                json={"scopes": ["trade", "read"], "accounts": [desk.buyer_wallet]},
                **operator,  # type: ignore[arg-type]
            )
            key = created.json()
            http.headers.pop("Authorization")
            http.auth = Hmac(key["key_id"], key["secret"])
            signed = await desk.order(http, desk.buyer, desk.buyer_wallet, "buy", "1", "2901")
            assert signed["status"] == "accepted"
            unsigned = await http.post(
                "/v1/orders",
                json={
                    "account": desk.buyer_wallet,
                    "client_order_id": "unsigned-1",
                    "instrument": "WETH/USDC",
                    "side": "buy",
                    "quantity": "1",
                    "price": "2902",
                },
            )
            assert unsigned.status_code == 403
            assert unsigned.json()["error"]["code"] == "signature_required"
            await refused(http, desk.seller_wallet, "forbidden")
            # a key for any account still needs the owner's signature: another key's is refused
            any_account = (
                await http.post(
                    "/v1/api-keys",
                    json={"scopes": ["trade"]},
                    auth=None,
                    **operator,  # type: ignore[arg-type]
                )
            ).json()
            http.auth = Hmac(any_account["key_id"], any_account["secret"])
            seller = await desk.order(http, desk.seller, desk.seller_wallet, "sell", "1", "3100")
            assert seller["account"] == desk.seller_wallet
            with pytest.raises(AssertionError, match="invalid_signature"):
                await desk.order(http, desk.buyer, desk.seller_wallet, "sell", "1", "3101")
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())
