"""Every role against every route, and who sees which account's orders."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Match
from starlette.testclient import WebSocketDenialResponse

from gateway.access.policy import Permission, rule_for
from gateway.access.request_signing import sign_request
from gateway.api.app import create_app
from gateway.config import Settings
from tests.api.access_clients import (
    ApiKey,
    api_key,
    error_code,
    gateway,
    now_ms,
    operator,
    order_body,
    trader_headers,
    wallet,
)
from tests.conftest import ManualClock
from tests.operator_access import operator_headers

ALICE, BOB = wallet(0), wallet(1)

# What each kind of caller may reach, by the permission a route needs.
ALLOWED: dict[str, set[Permission]] = {
    "anonymous": {Permission.PUBLIC},
    "operator": set(Permission),
    "trader": {Permission.PUBLIC, Permission.READ, Permission.QUOTE, Permission.TRADE},
    "protocol": {Permission.PUBLIC, Permission.READ, Permission.QUOTE, Permission.TRADE},
    "protocol_quote_only": {Permission.PUBLIC, Permission.QUOTE},
    "auditor": {Permission.PUBLIC, Permission.READ, Permission.OVERSIGHT},
}
PARAMS = {
    "order_id": "ord_nope",
    "parent_id": "ord_nope",
    "algo_id": "algo_nope",
    "batch_id": "batch_nope",
    "key_id": "key_nope",
    "symbol": "WETH/USDC",
    "scope": "global",
    "account": ALICE.address,
    "address": ALICE.address,
}


def http_routes() -> list[tuple[str, str]]:
    app = create_app(Settings(database_url="sqlite:///:memory:"))
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    routes = [(m.upper(), path) for path, ops in paths.items() for m in ops]
    routes += [("GET", p) for p in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")]
    return sorted(routes)


ROUTES = http_routes()


def test_every_route_of_the_app_is_in_the_policy_table() -> None:
    missing = [f"{m} {p}" for m, p in ROUTES if rule_for(m, p) is None]
    assert not missing, "routes with no access rule (they would be operator-only): " + str(missing)
    stream = ("GET", "/v1/stream")
    assert rule_for(*stream) is not None
    app = create_app(Settings(database_url="sqlite:///:memory:"))
    scope = {"type": "websocket", "path": "/v1/stream", "root_path": "", "headers": []}
    assert any(r.matches(scope)[0] is Match.FULL for r in app.router.routes)


def test_the_openapi_document_says_which_credentials_each_route_takes() -> None:
    schema = create_app(Settings(database_url="sqlite:///:memory:")).openapi()
    assert set(schema["components"]["securitySchemes"]) >= {"bearer", "apiKeySignature"}
    submit = schema["paths"]["/v1/orders"]["post"]
    assert {"bearer": []} in submit["security"] and "Needs: `trade`" in submit["description"]
    assert {"401", "403", "429"} <= set(submit["responses"])
    assert "security" not in schema["paths"]["/v1/health"]["get"]


@dataclass
class Callers:
    client: TestClient
    clock: ManualClock
    trader: dict[str, str]
    protocol: ApiKey
    protocol_quote_only: ApiKey
    auditor: ApiKey


@pytest.fixture(scope="module")
def callers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callers]:
    clock = ManualClock()
    path = tmp_path_factory.mktemp("matrix")
    with gateway(path, clock, rate_limit_burst=100_000) as client:
        yield Callers(
            client,
            clock,
            trader_headers(client, clock, ALICE),
            api_key(client, clock),
            api_key(client, clock, scopes=("quote",)),
            api_key(client, clock, role="auditor"),
        )


def call(callers: Callers, role: str, method: str, path: str) -> Any:
    body = {} if method in ("POST", "PUT", "PATCH") else None
    client = callers.client
    if path == "/v1/auth/session":  # public, and it would end the shared trader's session
        return client.request(method, path)
    if role in ("protocol", "protocol_quote_only", "auditor"):
        key: ApiKey = getattr(callers, role)
        return key.request(method, path, body)
    headers = {
        "anonymous": {},
        "operator": operator_headers(),
        "trader": callers.trader,
    }[role]
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize("role", sorted(ALLOWED))
@pytest.mark.parametrize(("method", "template"), ROUTES)
def test_role_against_route(callers: Callers, role: str, method: str, template: str) -> None:
    rule = rule_for(method, template)
    assert rule is not None
    path = template.format(**PARAMS)
    response = call(callers, role, method, path)
    if rule.permission in ALLOWED[role]:
        # allowed: whatever the route answers (404, 422 for an empty body...) but never a refusal
        assert response.status_code not in (401, 403, 429, 500), response.text
    elif role == "anonymous":
        assert response.status_code == 401 and error_code(response) == "unauthenticated"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    else:
        assert response.status_code == 403, response.text
        assert error_code(response) == "forbidden"


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_role_against_the_stream(callers: Callers, role: str) -> None:
    client, allowed = callers.client, Permission.READ in ALLOWED[role]
    if role in ("protocol", "protocol_quote_only", "auditor"):
        key: ApiKey = getattr(callers, role)
        callers.clock.advance(milliseconds=1)
        now = now_ms(callers.clock)
        headers = sign_request(key.key_id, key.secret, "GET", "/v1/stream", now_ms=now)
    else:
        headers = {"anonymous": {}, "operator": operator_headers(), "trader": callers.trader}[role]
    if allowed:
        with client.websocket_connect("/v1/stream", headers=headers) as socket:
            assert socket.receive_json()["type"] == "subscribed"
        return
    with (
        pytest.raises(WebSocketDenialResponse) as denied,
        client.websocket_connect("/v1/stream", headers=headers),
    ):
        pass
    assert denied.value.status_code == (401 if role == "anonymous" else 403)


def test_a_browser_streams_with_its_session_token_in_the_query(callers: Callers) -> None:
    token = callers.trader["Authorization"].removeprefix("Bearer ")
    with callers.client.websocket_connect(f"/v1/stream?token={token}") as socket:
        assert socket.receive_json() == {
            "type": "subscribed",
            "accounts": [ALICE.address],
            "books": [],
        }
        socket.send_json({"op": "subscribe", "accounts": [BOB.address]})
        assert socket.receive_json() == {"type": "error", "code": "forbidden"}


# --- accounts ----------------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def client(tmp_path: Path, clock: ManualClock) -> Iterator[TestClient]:
    with gateway(tmp_path, clock) as test_client:
        yield test_client


def test_traders_see_only_their_own_accounts(client: TestClient, clock: ManualClock) -> None:
    alice, bob = trader_headers(client, clock, ALICE), trader_headers(client, clock, BOB)
    mine = client.post("/v1/orders", json=order_body(ALICE.address, 1), headers=alice)
    assert mine.status_code == 201, mine.text
    theirs = client.post("/v1/orders", json=order_body(BOB.address, 2), headers=bob).json()
    # acting for another account is refused; reading another's order is "not found"
    refused = client.post("/v1/orders", json=order_body(BOB.address, 3), headers=alice)
    assert refused.status_code == 403 and error_code(refused) == "forbidden"
    for method, path in [
        ("GET", f"/v1/orders/{theirs['id']}"),
        ("GET", f"/v1/orders/{theirs['id']}/fills"),
        ("PATCH", f"/v1/orders/{theirs['id']}"),
        ("DELETE", f"/v1/orders/{theirs['id']}"),
    ]:
        body = {"price": "1"} if method == "PATCH" else None
        hidden = client.request(method, path, json=body, headers=alice)
        assert hidden.status_code == 404 and error_code(hidden) == "order_not_found", path
    assert client.get(f"/v1/orders/{theirs['id']}", headers=bob).status_code == 200
    listed = client.get("/v1/orders", headers=alice).json()["items"]
    assert [o["id"] for o in listed] == [mine.json()["id"]]
    other = client.get("/v1/orders", params={"account": BOB.address}, headers=alice)
    assert other.status_code == 403
    risk = client.get(f"/v1/accounts/{BOB.address}/risk", headers=alice)
    assert risk.status_code == 403 and error_code(risk) == "forbidden"
    # the operator and an auditor see every account
    everyone = operator(client, "GET", "/v1/orders").json()["items"]
    assert {o["account"] for o in everyone} == {ALICE.address, BOB.address}
    auditor = api_key(client, clock, role="auditor")
    assert len(auditor.request("GET", "/v1/orders").json()["items"]) == 2
    assert auditor.request("GET", f"/v1/orders/{theirs['id']}").status_code == 200
    write = auditor.request("DELETE", f"/v1/orders/{theirs['id']}")
    assert write.status_code == 403 and error_code(write) == "forbidden"


def test_an_api_key_acts_for_its_accounts_and_only_on_signed_orders(
    client: TestClient, clock: ManualClock
) -> None:
    alice = trader_headers(client, clock, ALICE)
    bob = trader_headers(client, clock, BOB)
    a = client.post("/v1/orders", json=order_body(ALICE.address, 1), headers=alice).json()
    b = client.post("/v1/orders", json=order_body(BOB.address, 2), headers=bob).json()
    key = api_key(client, clock, accounts=(ALICE.address,))
    assert [o["id"] for o in key.request("GET", "/v1/orders").json()["items"]] == [a["id"]]
    assert key.request("GET", f"/v1/orders/{a['id']}").status_code == 200
    assert error_code(key.request("GET", f"/v1/orders/{b['id']}")) == "order_not_found"
    # an API key never trades an unsigned order, even for its own account
    unsigned = key.request("POST", "/v1/orders", order_body(ALICE.address, 3))
    assert unsigned.status_code == 403 and error_code(unsigned) == "signature_required"
    foreign = key.request("POST", "/v1/orders", order_body(BOB.address, 4))
    assert foreign.status_code == 403 and error_code(foreign) == "forbidden"
    # a signature it cannot check (no chain here) is no better than none
    signed = order_body(
        ALICE.address,
        5,
        signature={"nonce": "1", "deadline": 2**40, "signature": "0x" + "11" * 65},
    )
    unverifiable = key.request("POST", "/v1/orders", signed)
    assert unverifiable.status_code == 403 and error_code(unverifiable) == "signature_required"
    twap = {
        "kind": "twap",
        "account": ALICE.address,
        "instrument": "WETH/USDC",
        "side": "buy",
        "quantity": "1",
        "start": clock.now().isoformat(),
        "end": (clock.now() + timedelta(hours=1)).isoformat(),
        "min_child": "0.1",
        "max_child": "0.5",
    }
    algo = key.request("POST", "/v1/algos", twap)
    assert algo.status_code == 403 and error_code(algo) == "signature_required"
    # it may cancel its account's orders, not others'
    assert key.request("DELETE", f"/v1/orders/{a['id']}").json()["status"] == "cancelled"
    assert key.request("DELETE", f"/v1/orders/{b['id']}").status_code == 404


def test_the_unsigned_scope_lets_a_key_trade_its_own_accounts_unsigned(
    client: TestClient, clock: ManualClock
) -> None:
    key = api_key(client, clock, scopes=("trade", "read", "unsigned"), accounts=(ALICE.address,))
    placed = key.request("POST", "/v1/orders", order_body(ALICE.address, 1))
    assert placed.status_code == 201, placed.text
    assert placed.json()["signed"] is None
    foreign = key.request("POST", "/v1/orders", order_body(BOB.address, 2))
    assert foreign.status_code == 403 and error_code(foreign) == "forbidden"
    # only for named accounts, and only with trade
    for refused in (
        {"role": "protocol", "scopes": ["trade", "unsigned"], "accounts": []},
        {"role": "protocol", "scopes": ["read", "unsigned"], "accounts": [ALICE.address]},
    ):
        answer = operator(client, "POST", "/v1/api-keys", json=refused)
        assert answer.status_code == 422 and error_code(answer) == "validation_error"


def test_several_accounts_list_together_in_submission_order(
    client: TestClient, clock: ManualClock
) -> None:
    carol = wallet(2)
    ids = []
    for n in range(5):
        owner = [ALICE, BOB, carol][n % 3]
        created = operator(client, "POST", "/v1/orders", json=order_body(owner.address, n))
        ids.append((owner.address, created.json()["id"]))
    key = api_key(client, clock, accounts=(ALICE.address, BOB.address))
    seen, cursor = [], None
    while True:
        path = "/v1/orders?limit=1" + (f"&cursor={cursor}" if cursor else "")
        page = key.request("GET", path).json()
        seen += [o["id"] for o in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [i for owner, i in ids if owner != carol.address]


def test_api_keys_are_managed_by_the_operator_and_stored_hashed(
    client: TestClient, clock: ManualClock
) -> None:
    key = api_key(client, clock, scopes=("read",), accounts=(ALICE.address,))
    listed = operator(client, "GET", "/v1/api-keys").json()
    assert [k["key_id"] for k in listed] == [key.key_id]
    assert "secret" not in listed[0] and listed[0]["accounts"] == [ALICE.address]
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with rt.read_engine.connect() as connection:
        from sqlalchemy import text

        stored = connection.execute(text("SELECT * FROM api_keys")).mappings().one()
    assert key.secret not in {str(v) for v in stored.values()}
    assert key.request("GET", "/v1/orders").status_code == 200
    # a key cannot manage keys; revoking one stops it at once
    assert key.request("GET", "/v1/api-keys").status_code == 403
    revoked = operator(client, "DELETE", f"/v1/api-keys/{key.key_id}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = key.request("GET", "/v1/orders")
    assert refused.status_code == 401 and error_code(refused) == "unauthenticated"
    missing = operator(client, "DELETE", "/v1/api-keys/key_nope")
    assert missing.status_code == 404 and error_code(missing) == "api_key_not_found"
    # issuing and revoking are in the audit log, without the secret
    with rt.read_engine.connect() as connection:
        records = connection.execute(
            text("SELECT kind, payload FROM audit_log WHERE entity_id = :key"), {"key": key.key_id}
        ).all()
    assert [r.kind for r in records] == ["api_key.created", "api_key.revoked"]
    assert key.secret not in records[0].payload


def test_a_wrong_operator_token_is_refused(client: TestClient) -> None:
    wrong = client.get("/v1/orders", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and error_code(wrong) == "unauthenticated"
    basic = client.get("/v1/orders", headers={"Authorization": "Basic b3A6b3A="})
    assert basic.status_code == 401


def test_rate_limit_answers_429_with_retry_after_and_recovers(
    tmp_path: Path, clock: ManualClock
) -> None:
    with gateway(tmp_path, clock, rate_limit_per_second=2, rate_limit_burst=3) as client:
        alice = trader_headers(client, clock, ALICE)
        key = api_key(client, clock, scopes=("read",))
        for _ in range(3):
            assert client.get("/v1/instruments", headers=alice).status_code == 200
        limited = client.get("/v1/instruments", headers=alice)
        assert limited.status_code == 429 and error_code(limited) == "rate_limited"
        assert limited.headers["Retry-After"] == "1"
        # per caller: the key has its own bucket, the operator none
        assert key.request("GET", "/v1/instruments").status_code == 200
        for _ in range(10):
            assert operator(client, "GET", "/v1/instruments").status_code == 200
        clock.advance(milliseconds=498)  # and 1 ms for the key's request: 0.998 requests
        assert client.get("/v1/instruments", headers=alice).status_code == 429
        clock.advance(milliseconds=2)
        assert client.get("/v1/instruments", headers=alice).status_code == 200
        for _ in range(3):  # refilled to its burst by the half second that went by
            assert key.request("GET", "/v1/instruments").status_code == 200
        drained = key.request("GET", "/v1/instruments")
        assert drained.status_code == 429 and int(drained.headers["Retry-After"]) >= 1
        # sign-in is public but limited per client address (it writes nonces)
        answers = [client.get("/v1/auth/siwe/nonce") for _ in range(4)]  # burst 3
        assert answers[0].status_code == 200
        assert answers[-1].status_code == 429 and error_code(answers[-1]) == "rate_limited"


def test_access_follows_the_runtime_across_restarts_of_the_app(tmp_path: Path) -> None:
    """Each lifespan builds a new runtime; access must write through the running one."""
    from tests.operator_access import OPERATOR_TOKEN

    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path / 'restart.db'}", operator_token=OPERATOR_TOKEN)
    )
    for _ in range(2):
        with TestClient(app, headers=operator_headers()) as client:
            assert client.post("/v1/api-keys", json={}).status_code == 201
    with TestClient(app, headers=operator_headers()) as client:
        assert len(client.get("/v1/api-keys").json()) == 2
