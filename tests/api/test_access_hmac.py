"""HMAC-signed API key requests: the signature covers time, method, path, query and body;
stale and replayed requests are refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.access.request_signing import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign_request,
)
from tests.api.access_clients import (
    ApiKey,
    api_key,
    error_code,
    gateway,
    now_ms,
    operator,
    order_body,
    wallet,
)
from tests.conftest import ManualClock

ALICE = wallet(0)
QUOTE = {"instrument": "WETH/USDC", "side": "buy", "quantity": "1"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def client(tmp_path: Path, clock: ManualClock) -> Iterator[TestClient]:
    with gateway(tmp_path, clock, request_window_seconds=30) as test_client:
        yield test_client


@pytest.fixture
def key(client: TestClient, clock: ManualClock) -> ApiKey:
    return api_key(client, clock)


def test_a_signed_request_is_served(client: TestClient, key: ApiKey) -> None:
    assert key.request("GET", "/v1/orders?limit=5").status_code == 200
    assert key.request("POST", "/v1/quote", QUOTE).status_code not in (401, 403)


def test_a_request_signed_with_another_secret_is_refused(key: ApiKey) -> None:
    wrong = key.request("GET", "/v1/orders", secret="0" * 64)
    assert wrong.status_code == 401 and error_code(wrong) == "bad_signature"


def test_a_tampered_body_query_or_method_is_refused(
    client: TestClient, clock: ManualClock, key: ApiKey
) -> None:
    body = json.dumps(QUOTE).encode()
    headers = sign_request(key.key_id, key.secret, "POST", "/v1/quote", body, now_ms=now_ms(clock))
    tampered = body.replace(b'"1"', b'"9"')
    refused = client.post("/v1/quote", content=tampered, headers=headers)
    assert refused.status_code == 401 and error_code(refused) == "bad_signature"
    clock.advance(milliseconds=1)
    headers = sign_request(
        key.key_id, key.secret, "GET", "/v1/orders?limit=1", now_ms=now_ms(clock)
    )
    assert client.get("/v1/orders?limit=2", headers=headers).status_code == 401
    assert client.delete("/v1/orders?limit=1", headers=headers).status_code == 401
    # the untampered request, sent as signed, passes (and only once)
    assert client.get("/v1/orders?limit=1", headers=headers).status_code == 200


@pytest.mark.parametrize("skew_ms", [-30_001, 30_001])
def test_a_timestamp_outside_the_window_is_refused(
    client: TestClient, clock: ManualClock, key: ApiKey, skew_ms: int
) -> None:
    stamp = now_ms(clock) + skew_ms
    headers = sign_request(key.key_id, key.secret, "GET", "/v1/orders", now_ms=stamp)
    refused = client.get("/v1/orders", headers=headers)
    assert refused.status_code == 401 and error_code(refused) == "stale_request"


@pytest.mark.parametrize("skew_ms", [-30_000, 30_000])
def test_a_timestamp_at_the_edge_of_the_window_is_served(
    client: TestClient, clock: ManualClock, key: ApiKey, skew_ms: int
) -> None:
    stamp = now_ms(clock) + skew_ms
    headers = sign_request(key.key_id, key.secret, "GET", "/v1/orders", now_ms=stamp)
    assert client.get("/v1/orders", headers=headers).status_code == 200


def test_a_replayed_request_is_refused_within_and_beyond_the_window(
    client: TestClient, clock: ManualClock, key: ApiKey
) -> None:
    body = json.dumps(order_body(ALICE.address, 1)).encode()
    headers = sign_request(key.key_id, key.secret, "POST", "/v1/quote", body, now_ms=now_ms(clock))
    first = client.post("/v1/quote", content=body, headers=headers)
    assert first.status_code not in (401, 403)
    clock.advance(seconds=10)
    replayed = client.post("/v1/quote", content=body, headers=headers)
    assert replayed.status_code == 401 and error_code(replayed) == "replayed_request"
    clock.advance(seconds=25)  # forgotten by now, but then it is stale
    late = client.post("/v1/quote", content=body, headers=headers)
    assert late.status_code == 401 and error_code(late) == "stale_request"


def test_a_revoked_or_unknown_key_is_refused(
    client: TestClient, clock: ManualClock, key: ApiKey
) -> None:
    assert key.request("GET", "/v1/orders").status_code == 200
    operator(client, "DELETE", f"/v1/api-keys/{key.key_id}")
    revoked = key.request("GET", "/v1/orders")
    assert revoked.status_code == 401 and error_code(revoked) == "unauthenticated"
    stranger = ApiKey(client, clock, "key_0000000000000000", key.secret)
    assert error_code(stranger.request("GET", "/v1/orders")) == "unauthenticated"


def test_a_key_without_timestamp_or_signature_is_refused(client: TestClient, key: ApiKey) -> None:
    for headers in ({KEY_HEADER: key.key_id}, {KEY_HEADER: key.key_id, TIMESTAMP_HEADER: "1"}):
        refused = client.get("/v1/orders", headers=headers)
        assert refused.status_code == 401 and error_code(refused) == "unauthenticated"
    garbage = {KEY_HEADER: key.key_id, TIMESTAMP_HEADER: "soon", SIGNATURE_HEADER: "00"}
    assert error_code(client.get("/v1/orders", headers=garbage)) == "unauthenticated"


def test_keys_die_with_the_server_key_secret(tmp_path: Path, clock: ManualClock) -> None:
    """A key's secret is derived from the server's key secret: rotating that secret
    invalidates every key; nothing in the database alone can sign."""
    with gateway(tmp_path, clock, api_key_secret="first") as client:
        key = api_key(client, clock)
        assert key.request("GET", "/v1/orders").status_code == 200
    with gateway(tmp_path, clock, api_key_secret="second") as client:
        key.client = client
        assert error_code(key.request("GET", "/v1/orders")) == "unauthenticated"
    with gateway(tmp_path, clock, api_key_secret="first") as client:
        key.client = client
        assert key.request("GET", "/v1/orders").status_code == 200


def test_an_oversized_signed_body_is_still_refused_by_size(
    client: TestClient, clock: ManualClock, key: ApiKey
) -> None:
    body = b'{"x": "' + b"a" * 70_000 + b'"}'
    headers = sign_request(key.key_id, key.secret, "POST", "/v1/quote", body, now_ms=now_ms(clock))
    assert client.post("/v1/quote", content=body, headers=headers).status_code == 413
