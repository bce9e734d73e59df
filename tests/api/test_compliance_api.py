"""Compliance over HTTP: sanctions, jurisdiction and KYC gates at submit, every decision in the
audit log, the operator's reload (cancelling a newly listed account's resting orders before
it answers) and the account status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.api.app import create_app
from gateway.config import Settings
from gateway.runtime import Runtime
from gateway.store import audit_log
from gateway.store.audit_log import AUDIT_LOG
from tests.operator_access import OPERATOR_TOKEN, operator_headers

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # full KYC, CH
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"  # full KYC, CH
BASIC = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"  # basic KYC: spot up to 25000
IN_US = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"  # full KYC, US: spot only
IN_KP = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"  # full KYC, a blocked jurisdiction
UNKNOWN = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"  # not known to the KYC provider
LISTED = "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955"

RULES = """
[[kyc_levels]]
name = "none"
[[kyc_levels]]
name = "basic"
kinds = ["spot"]
max_order_notional = "25000"
[[kyc_levels]]
name = "full"
kinds = ["spot", "perpetual", "option"]

[jurisdictions]
blocked = ["KP"]
[jurisdictions.allowed_kinds]
US = ["spot"]
"""


def kyc_file() -> str:
    rows = [(ALICE, "full", "CH"), (BOB, "full", "CH"), (BASIC, "basic", "CH")]
    rows += [(IN_US, "full", "US"), (IN_KP, "full", "KP"), (LISTED, "full", "CH")]
    return "".join(
        f'[[accounts]]\naddress = "{a}"\nlevel = "{level}"\njurisdiction = "{j}"\n\n'
        for a, level, j in rows
    )


def sanctions(*addresses: str) -> str:
    return "# test list\naddress,list,reason\n" + "".join(
        f'{a.lower()},TEST-LIST,"listed for the test, with a comma"\n' for a in addresses
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "sanctions": tmp_path / "sanctions.csv",
        "rules": tmp_path / "rules.toml",
        "kyc": tmp_path / "kyc.toml",
    }
    paths["sanctions"].write_text(sanctions(LISTED))
    paths["rules"].write_text(RULES)
    paths["kyc"].write_text(kyc_file())
    return paths


@pytest.fixture
def client(tmp_path: Path, files: dict[str, Path]) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        sanctions_file=files["sanctions"],
        compliance_rules_file=files["rules"],
        kyc_file=files["kyc"],
        operator_token=OPERATOR_TOKEN,
    )
    with TestClient(create_app(settings), headers=operator_headers()) as test_client:
        yield test_client


def order(account: str, n: int = 1, **changes: Any) -> dict[str, Any]:
    body = {
        "account": account,
        "client_order_id": f"c{n}",
        "instrument": "WETH/USDC",
        "side": "buy",
        "quantity": "1.5",
        "price": "3000",
    }
    body.update(changes)
    return body


def records(client: TestClient) -> list[dict[str, Any]]:
    """Every audit record, oldest first (and the chain must be intact)."""
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with rt.read_engine.connect() as connection:
        assert audit_log.verify(connection).ok
        rows = connection.execute(select(AUDIT_LOG).order_by(AUDIT_LOG.c.seq)).all()
    return [
        {
            "kind": r.kind,
            "entity": r.entity_id,
            "at": r.created_at,
            "payload": json.loads(r.payload),
        }
        for r in rows
    ]


def screenings(client: TestClient) -> list[dict[str, Any]]:
    return [r["payload"] for r in records(client) if r["kind"] == "compliance.screened"]


def refused(response: Any, code: str) -> dict[str, Any]:
    assert response.status_code == 403, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["field"] == "account" and error["message"]
    return error


def test_a_sanctioned_account_is_refused_and_the_refusal_is_audited(client: TestClient) -> None:
    error = refused(client.post("/v1/orders", json=order(LISTED.lower())), "address_sanctioned")
    assert "TEST-LIST" in error["message"]
    assert client.get("/v1/orders", params={"account": LISTED}).json()["items"] == []
    (decision,) = screenings(client)
    assert decision["allowed"] is False and decision["code"] == "address_sanctioned"
    assert decision["account"] == LISTED and decision["addresses_screened"] == [LISTED]
    assert decision["sanctioned"] == [
        {
            "address": LISTED.lower(),
            "list": "TEST-LIST",
            "reason": "listed for the test, with a comma",
        }
    ]
    assert [r["kind"] for r in records(client)] == ["compliance.screened"]  # and no order


def test_an_allowed_order_is_audited_with_the_order_in_one_transaction(client: TestClient) -> None:
    response = client.post("/v1/orders", json=order(ALICE))
    assert response.status_code == 201, response.text
    screened, accepted = records(client)
    assert screened["kind"] == "compliance.screened" and accepted["kind"] == "order.accepted"
    assert screened["at"] == accepted["at"]  # written by the same commit
    facts = screened["payload"]
    assert facts["allowed"] is True and facts["code"] is None
    assert facts["kyc_level"] == "full" and facts["jurisdiction"] == "CH"
    assert facts["kinds"] == ["spot"] and facts["notional"] == "4500.0"
    assert facts["client_order_id"] == "c1"
    # a retry returns the order: nothing new is decided or recorded
    assert client.post("/v1/orders", json=order(ALICE)).status_code == 200
    assert len(records(client)) == 2


def test_jurisdiction_gates(client: TestClient) -> None:
    refused(client.post("/v1/orders", json=order(IN_KP)), "jurisdiction_blocked")
    assert client.post("/v1/orders", json=order(IN_US)).status_code == 201
    perp = order(IN_US, 2, instrument="WETH-PERP", price="3000.05")
    error = refused(client.post("/v1/orders", json=perp), "jurisdiction_blocked")
    assert "perpetual" in error["message"] and "US" in error["message"]
    codes = [(d["account"], d["code"]) for d in screenings(client)]
    assert codes == [
        (IN_KP, "jurisdiction_blocked"),
        (IN_US, None),
        (IN_US, "jurisdiction_blocked"),
    ]


CONDOR = {
    "client_order_id": "condor-1",
    "legs": [
        {"instrument": "WETH-20270326-2800-P", "side": "buy"},
        {"instrument": "WETH-20270326-3000-P", "side": "sell"},
        {"instrument": "WETH-20270326-3200-C", "side": "sell"},
        {"instrument": "WETH-20270326-3500-C", "side": "buy"},
    ],
    "quantity": "2",
    "price": "-45.5",
}


def test_kyc_gates_what_an_account_may_trade(client: TestClient) -> None:
    refused(client.post("/v1/orders", json=order(UNKNOWN)), "kyc_required")
    assert client.post("/v1/orders", json=order(BASIC)).status_code == 201  # 4500 of spot
    big = order(BASIC, 2, quantity="8.5")  # 25500 > 25000
    assert (
        "exceeds 25000"
        in refused(client.post("/v1/orders", json=big), "kyc_insufficient")["message"]
    )
    option = order(BASIC, 3, instrument="WETH-20270326-3000-C", price="100")
    refused(client.post("/v1/orders", json=option), "kyc_insufficient")
    refused(client.post("/v1/strategies", json={**CONDOR, "account": BASIC}), "kyc_insufficient")
    assert client.post("/v1/strategies", json={**CONDOR, "account": ALICE}).status_code == 201
    decisions = screenings(client)
    assert [d["code"] for d in decisions] == [
        "kyc_required",
        None,
        "kyc_insufficient",
        "kyc_insufficient",
        "kyc_insufficient",
        None,
    ]
    assert decisions[0]["kyc_level"] is None
    assert decisions[4]["kinds"] == ["option"] and len(decisions[4]["instruments"]) == 4


def test_reload_cancels_a_newly_listed_accounts_resting_orders_before_it_answers(
    client: TestClient, files: dict[str, Path]
) -> None:
    ask = client.post("/v1/orders", json=order(BOB, side="sell", quantity="1"))
    assert ask.status_code == 201 and ask.json()["status"] == "accepted"
    files["sanctions"].write_text(sanctions(LISTED, BOB))

    report = client.post("/v1/compliance/reload")
    assert report.status_code == 200, report.text
    assert report.json() == {
        "sanctioned_addresses": 2,
        "kyc_records": 6,
        "newly_sanctioned": [BOB.lower()],
        "cancelled_orders": [ask.json()["id"]],
    }
    cancelled = client.get(f"/v1/orders/{ask.json()['id']}").json()
    assert cancelled["status"] == "cancelled" and cancelled["status_reason"] == "compliance"
    # a taker at that price finds nothing of the listed account's to trade against
    bid = client.post("/v1/orders", json=order(ALICE, quantity="1"))
    assert bid.status_code == 201
    assert bid.json()["status"] == "accepted" and bid.json()["filled_quantity"] == "0"
    assert client.get(f"/v1/orders/{ask.json()['id']}/fills").json() == []
    refused(client.post("/v1/orders", json=order(BOB, 2, side="sell")), "address_sanctioned")
    # the cancel is in the audit log like any other, with its reason
    cancels = [r for r in records(client) if r["kind"] == "order.cancelled"]
    assert [r["entity"] for r in cancels] == [ask.json()["id"]]


def test_a_broken_file_leaves_the_lists_in_force(
    client: TestClient, files: dict[str, Path]
) -> None:
    files["sanctions"].write_text(sanctions(BOB) + "0xnot-an-address,X,y\n")
    response = client.post("/v1/compliance/reload")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "compliance_file_invalid"
    assert "sanctions.csv:4" in error["message"] and "not an address" in error["message"]
    assert client.post("/v1/orders", json=order(BOB)).status_code == 201  # not listed
    refused(client.post("/v1/orders", json=order(LISTED)), "address_sanctioned")


def test_account_status(client: TestClient) -> None:
    basic = client.get(f"/v1/compliance/accounts/{BASIC.lower()}")
    assert basic.status_code == 200
    assert basic.json() == {
        "account": BASIC,
        "owner": None,
        "sanctioned": False,
        "sanctions": [],
        "jurisdiction": "CH",
        "jurisdiction_blocked": False,
        "kyc_level": "basic",
        "may_trade": ["spot"],
        "max_order_notional": "25000",
    }
    listed = client.get(f"/v1/compliance/accounts/{LISTED}").json()
    assert listed["sanctioned"] and listed["may_trade"] == []
    assert listed["sanctions"][0]["list"] == "TEST-LIST"
    assert client.get(f"/v1/compliance/accounts/{IN_KP}").json()["jurisdiction_blocked"]
    assert client.get(f"/v1/compliance/accounts/{IN_US}").json()["may_trade"] == ["spot"]
    unknown = client.get(f"/v1/compliance/accounts/{UNKNOWN}").json()
    assert unknown["kyc_level"] is None and unknown["may_trade"] == []
    bad = client.get("/v1/compliance/accounts/0x12")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"


def test_the_devnet_default_lists_ship_a_sanctioned_sample(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'd.db'}", operator_token=OPERATOR_TOKEN
    )
    with TestClient(create_app(settings), headers=operator_headers()) as default:
        sample = "0x00000000000000000000000000000000DeaDBeef"
        refused(default.post("/v1/orders", json=order(sample)), "address_sanctioned")
        carol = default.get("/v1/compliance/accounts/0x90F79bf6EB2c4f870365E785982E1f101E93b906")
        assert carol.json()["kyc_level"] == "full" and carol.json()["jurisdiction"] == "DE"
        # the devnet is open: an account nobody listed trades at full KYC
        assert default.post("/v1/orders", json=order(UNKNOWN)).status_code == 201
