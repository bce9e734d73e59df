"""Sign-In with Ethereum: the message a trader signs opens a session for its address only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from gateway.access.siwe import InvalidSiweMessage, SiweMessage, parse_siwe, sign_siwe
from tests.api.access_clients import (
    error_code,
    gateway,
    order_body,
    sign_in,
    siwe_message,
    wallet,
)
from tests.conftest import ManualClock

ALICE, BOB = wallet(0), wallet(1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def client(tmp_path: Path, clock: ManualClock) -> Iterator[TestClient]:
    with gateway(tmp_path, clock, session_ttl_seconds=3600) as test_client:
        yield test_client


def test_a_signed_message_opens_a_session_for_that_address(
    client: TestClient, clock: ManualClock
) -> None:
    nonce = client.get("/v1/auth/siwe/nonce").json()
    assert len(nonce["nonce"]) >= 8 and nonce["nonce"].isalnum()
    message = siwe_message(client, clock, ALICE, nonce=nonce["nonce"])
    session = sign_in(client, message, ALICE)
    assert session.status_code == 200, session.text
    assert session.json()["address"] == ALICE.address
    headers = {"Authorization": f"Bearer {session.json()['token']}"}
    placed = client.post("/v1/orders", json=order_body(ALICE.address, 1), headers=headers)
    assert placed.status_code == 201
    # only the token's hash is stored
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with rt.read_engine.connect() as connection:
        from sqlalchemy import text

        stored = connection.execute(text("SELECT token_hash FROM access_sessions")).scalars()
        assert session.json()["token"] not in list(stored)
    # signing out ends it
    assert client.delete("/v1/auth/session", headers=headers).status_code == 204
    assert client.get("/v1/orders", headers=headers).status_code == 401


def test_a_nonce_is_spent_once(client: TestClient, clock: ManualClock) -> None:
    message = siwe_message(client, clock, ALICE)
    assert sign_in(client, message, ALICE).status_code == 200
    again = sign_in(client, message, ALICE)
    assert again.status_code == 401 and error_code(again) == "siwe_bad_nonce"


def test_a_nonce_the_gateway_never_gave_is_refused(client: TestClient, clock: ManualClock) -> None:
    made_up = siwe_message(client, clock, ALICE, nonce="abcdef0123456789")
    refused = sign_in(client, made_up, ALICE)
    assert refused.status_code == 401 and error_code(refused) == "siwe_bad_nonce"


def test_an_expired_nonce_is_refused(client: TestClient, clock: ManualClock) -> None:
    message = siwe_message(client, clock, ALICE)
    clock.advance(seconds=301)  # the nonce lives 300 s
    refused = sign_in(client, message, ALICE)
    assert refused.status_code == 401 and error_code(refused) == "siwe_bad_nonce"


def test_an_expired_message_is_refused(client: TestClient, clock: ManualClock) -> None:
    message = siwe_message(client, clock, ALICE, expiration_time=clock.now() + timedelta(seconds=5))
    clock.advance(seconds=6)
    refused = sign_in(client, message, ALICE)
    assert refused.status_code == 401 and error_code(refused) == "siwe_expired"


def test_a_message_not_valid_yet_is_refused(client: TestClient, clock: ManualClock) -> None:
    early = siwe_message(client, clock, ALICE, not_before=clock.now() + timedelta(minutes=1))
    refused = sign_in(client, early, ALICE)
    assert refused.status_code == 401 and error_code(refused) == "siwe_early"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"domain": "evil.example"}, "siwe_wrong_domain"),
        ({"chain_id": 1}, "siwe_wrong_chain"),
    ],
)
def test_a_message_for_another_site_or_chain_is_refused(
    client: TestClient, clock: ManualClock, change: dict[str, object], code: str
) -> None:
    refused = sign_in(client, siwe_message(client, clock, ALICE, **change), ALICE)
    assert refused.status_code == 401 and error_code(refused) == code


def test_a_signature_by_another_key_is_refused(client: TestClient, clock: ManualClock) -> None:
    """Bob signs a message naming Alice: no session for either."""
    message = siwe_message(client, clock, ALICE)
    refused = sign_in(client, message, BOB)
    assert refused.status_code == 401 and error_code(refused) == "siwe_bad_signature"
    # the nonce was not spent by the failed attempt
    assert sign_in(client, message, ALICE).status_code == 200


def test_a_session_ends_when_its_time_is_up(client: TestClient, clock: ManualClock) -> None:
    session = sign_in(client, siwe_message(client, clock, ALICE), ALICE).json()
    headers = {"Authorization": f"Bearer {session['token']}"}
    assert client.get("/v1/instruments", headers=headers).status_code == 200
    clock.advance(seconds=3601)
    expired = client.get("/v1/instruments", headers=headers)
    assert expired.status_code == 401 and error_code(expired) == "unauthenticated"


def test_a_malformed_message_is_refused(client: TestClient) -> None:
    refused = client.post("/v1/auth/siwe", json={"message": "hello", "signature": "0x" + "11" * 65})
    assert refused.status_code == 401 and error_code(refused) == "invalid_siwe_message"


texts = st.text(
    st.characters(blacklist_characters="\n\r", blacklist_categories=["Cs"]), max_size=40
)


@given(
    statement=st.none() | texts.filter(lambda t: t != ""),
    request_id=st.none() | texts,
    resources=st.lists(texts, max_size=3),
    chain_id=st.integers(min_value=1, max_value=2**63),
)
def test_messages_round_trip_through_their_text(
    statement: str | None, request_id: str | None, resources: list[str], chain_id: int
) -> None:
    clock = ManualClock()
    message = SiweMessage(
        domain="app.example:8443",
        address=ALICE.address,
        uri="https://app.example/login",
        chain_id=chain_id,
        nonce="n0nce1234",
        issued_at=clock.now(),
        statement=statement,
        request_id=request_id,
        resources=tuple(resources),
        scheme="https",
    )
    assert parse_siwe(message.text()) == message


def test_a_lowercase_address_is_not_a_siwe_message() -> None:
    message = SiweMessage(
        domain="x.example",
        address=ALICE.address.lower(),
        uri="https://x.example",
        chain_id=1,
        nonce="n0nce1234",
        issued_at=ManualClock().now(),
    )
    with pytest.raises(InvalidSiweMessage):
        parse_siwe(message.text())
    assert sign_siwe(message, ALICE.key.hex()).startswith("0x")
