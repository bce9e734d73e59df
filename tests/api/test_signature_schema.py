"""The order signature at the API boundary: 65 bytes (ECDSA: the owner or a trading key) or
any other length up to the wallet's 520 bytes (a contract owner's EIP-1271 signature, e.g. a
2-of-3 Safe's 130 bytes), stored and given back exactly; anything else is refused with the
usual structured error before anything is stored. The refusals of a trading key's order are
published in the OpenAPI document with their stable codes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.chain.signatures import MAX_CONTRACT_SIGNATURE_LENGTH
from gateway.config import Settings
from tests.operator_access import OPERATOR_TOKEN, operator_headers

WALLET = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def order(client_order_id: str, signature: str) -> dict[str, Any]:
    return {
        "account": WALLET,
        "client_order_id": client_order_id,
        "instrument": "WETH/USDC",
        "side": "buy",
        "quantity": "1",
        "price": "2000",
        "signature": {"nonce": "7", "deadline": 2**40, "signature": signature},
    }


@pytest.mark.parametrize(
    "length", [65, 130, MAX_CONTRACT_SIGNATURE_LENGTH], ids=["ecdsa", "two-safe-owners", "most"]
)
def test_signatures_of_every_length_the_wallet_takes_are_stored_exactly(
    client: TestClient, length: int
) -> None:
    # no chain here: a signature given is stored as given (it is checked where a chain is)
    signature = "0x" + bytes(range(256)).hex()[: 2 * length].ljust(2 * length, "a")
    created = client.post("/v1/orders", json=order(f"sig-{length}", signature))
    assert created.status_code == 201, created.text
    assert created.json()["signed"] == {"nonce": "7", "deadline": 2**40, "signature": signature}
    again = client.get(f"/v1/orders/{created.json()['id']}")
    assert again.json()["signed"]["signature"] == signature


def test_the_longest_contract_signature_fits_the_store_on_every_backend(
    database_url: str,
) -> None:
    """The orders table holds 520 bytes of signature (1040 hex characters): PostgreSQL
    enforces the column's length, SQLite does not."""
    signature = "0x" + "5a" * MAX_CONTRACT_SIGNATURE_LENGTH
    settings = Settings(database_url=database_url, operator_token=OPERATOR_TOKEN)
    with TestClient(create_app(settings), headers=operator_headers()) as client:
        created = client.post("/v1/orders", json=order("longest", signature))
        assert created.status_code == 201, created.text
    with TestClient(create_app(settings), headers=operator_headers()) as client:  # reloaded
        [stored] = client.get("/v1/orders").json()["items"]
        assert stored["signed"]["signature"] == signature


@pytest.mark.parametrize(
    "signature",
    [
        "0x",  # empty: an ECDSA signature is 65 bytes, a contract's at least one
        "0x" + "ab" * (MAX_CONTRACT_SIGNATURE_LENGTH + 1),  # over the wallet's limit
        "0x" + "a" * 131,  # half a byte
        "0x" + "zz" * 65,  # not hex
        "ab" * 65,  # no 0x
    ],
    ids=["empty", "too-long", "odd-length", "not-hex", "no-prefix"],
)
def test_malformed_signatures_are_refused_before_anything_is_stored(
    client: TestClient, signature: str
) -> None:
    refused = client.post("/v1/orders", json=order("malformed", signature))
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "validation_error"
    assert refused.json()["error"]["field"] == "body.signature.signature"
    assert client.get("/v1/orders").json()["items"] == []


def test_the_refusals_of_a_signed_order_are_documented(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/v1/orders", "/v1/strategies"):
        responses = schema["paths"][path]["post"]["responses"]
        forbidden = responses["403"]["description"]
        for code in (
            "forbidden",
            "signature_required",
            "key_revoked",
            "key_expired",
            "key_scope",
            "key_max_notional",
        ):
            assert code in forbidden, (path, code)
        assert "invalid_signature" in responses["422"]["description"]
        assert responses["403"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorOut"
        }
    signature = schema["components"]["schemas"]["SignatureIn"]["properties"]["signature"]
    assert signature["pattern"] == r"^0x(?:[0-9a-fA-F]{2}){1,520}$"
