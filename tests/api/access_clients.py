"""Callers of each role for the access tests: a gateway on a manual clock, the operator, API
keys signing their requests, traders signing in with Ethereum."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from gateway.access.request_signing import sign_request
from gateway.access.siwe import SiweMessage, sign_siwe
from gateway.api.app import create_app
from gateway.config import Settings
from gateway.runtime import Runtime
from tests.conftest import ManualClock
from tests.operator_access import OPERATOR_TOKEN, operator_headers

# anvil's well-known dev keys: accounts 1..3
KEYS = (
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
)


@contextmanager
def gateway(tmp_path: Path, clock: ManualClock, **settings: Any) -> Iterator[TestClient]:
    config = Settings(
        database_url=f"sqlite:///{tmp_path / 'access.db'}",
        operator_token=OPERATOR_TOKEN,
        **settings,
    )
    rt = Runtime.build(config, clock=clock)
    with TestClient(create_app(config, runtime=rt)) as client:
        yield client


def operator(client: TestClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return client.request(method, path, headers=operator_headers(), **kwargs)


@dataclass
class ApiKey:
    client: TestClient
    clock: ManualClock
    key_id: str
    secret: str

    def request(
        self, method: str, path: str, body: Any = None, *, secret: str | None = None
    ) -> httpx.Response:
        """Signed at the clock's now; the clock moves on a millisecond so that two identical
        requests are two requests, not a replay."""
        self.clock.advance(milliseconds=1)
        content = b"" if body is None else json.dumps(body).encode()
        headers = sign_request(
            self.key_id, secret or self.secret, method, path, content, now_ms=now_ms(self.clock)
        )
        if body is not None:
            headers["Content-Type"] = "application/json"
        return self.client.request(method, path, content=content, headers=headers)


def now_ms(clock: ManualClock) -> int:
    return int(clock.now().timestamp() * 1000)


def api_key(
    client: TestClient,
    clock: ManualClock,
    role: str = "protocol",
    scopes: tuple[str, ...] = ("quote", "trade", "read"),
    accounts: tuple[str, ...] = (),
) -> ApiKey:
    created = operator(
        client,
        "POST",
        "/v1/api-keys",
        json={"role": role, "scopes": list(scopes), "accounts": list(accounts)},
    )
    assert created.status_code == 201, created.text
    return ApiKey(client, clock, created.json()["key_id"], created.json()["secret"])


def wallet(index: int) -> LocalAccount:
    account: LocalAccount = Account.from_key(KEYS[index])
    return account


def siwe_message(
    client: TestClient,
    clock: ManualClock,
    signer: LocalAccount,
    *,
    nonce: str | None = None,
    **changes: Any,
) -> SiweMessage:
    if nonce is None:
        nonce = client.get("/v1/auth/siwe/nonce").json()["nonce"]
    fields: dict[str, Any] = {
        "domain": "testserver",
        "address": signer.address,
        "statement": "Sign in to Isthmus",
        "uri": "http://testserver",
        "chain_id": 31337,
        "nonce": nonce,
        "issued_at": clock.now(),
        "expiration_time": clock.now() + timedelta(hours=1),
    }
    fields.update(changes)
    return SiweMessage(**fields)


def sign_in(client: TestClient, message: SiweMessage, signer: LocalAccount) -> httpx.Response:
    return client.post(
        "/v1/auth/siwe",
        json={"message": message.text(), "signature": sign_siwe(message, signer.key.hex())},
    )


def trader_headers(client: TestClient, clock: ManualClock, signer: LocalAccount) -> dict[str, str]:
    session = sign_in(client, siwe_message(client, clock, signer), signer)
    assert session.status_code == 200, session.text
    return {"Authorization": f"Bearer {session.json()['token']}"}


def order_body(account: str, n: int, **changes: Any) -> dict[str, Any]:
    body = {
        "account": account,
        "client_order_id": f"acc-{n}",
        "instrument": "WETH/USDC",
        "side": "buy",
        "quantity": "1",
        "price": "2900",
    }
    body.update(changes)
    return body


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body["error"]) == {"code", "message", "field"}
    code: str = body["error"]["code"]
    return code
