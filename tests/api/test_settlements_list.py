"""GET /v1/settlements: the recent batches newest first, with their status, gas, transaction,
block, how many fills they hold, and whether a reorg that undid them has healed; filtered by
status, paged by cursor, with counts of pending and confirmed batches.

The batches are written through the settlement repository the service itself uses (this API
gateway has no chain), over fills made by real matches on the internal book; a reorg is what
the service records for one: the batch turns `reorged`, its fills pending again, and a
`settlement.reorged` audit record names both."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection

from gateway.api.app import create_app
from gateway.config import Settings
from gateway.domain.lifecycle import SettlementStatus
from gateway.runtime import Runtime
from gateway.store import audit_log
from gateway.store import order_repository as orders_repo
from gateway.store import settlement_repository as store
from tests.api.access_clients import api_key
from tests.conftest import ManualClock
from tests.operator_access import OPERATOR_TOKEN, operator_headers

A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TX = "0x" + "ab" * 32
BLOCK_HASH = "0x" + "cd" * 32


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'batches.db'}", operator_token=OPERATOR_TOKEN
    )
    rt = Runtime.build(settings, clock=ManualClock(NOW))
    # no default credentials: each request says who sends it
    with TestClient(create_app(settings, runtime=rt)) as test_client:
        yield test_client


def runtime(client: TestClient) -> Runtime:
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def trade(client: TestClient, n: int) -> list[str]:
    """A match on the internal book: its two fills' ids."""
    for account, side, tif in ((A, "sell", "gtc"), (B, "buy", "ioc")):
        body = {
            "account": account,
            "client_order_id": f"{side}-{n}",
            "instrument": "WETH/USDC",
            "side": side,
            "quantity": "1",
            "price": "3000",
            "time_in_force": tif,
        }
        response = client.post("/v1/orders", json=body, headers=operator_headers())
        assert response.status_code == 201, response.text
    taker = response.json()
    assert taker["status"] == "filled"
    with runtime(client).read_engine.connect() as connection:
        (fill,) = orders_repo.fills_for_order(connection, taker["id"])
        rows = connection.execute(
            store.FILLS.select().where(store.FILLS.c.trade_id == fill.trade_id)
        )
        ids = sorted(r.id for r in rows)
    assert len(ids) == 2
    return ids


def write(client: TestClient, *steps: Any) -> None:
    with runtime(client).write_engine.begin() as connection:
        for step in steps:
            step(connection)


def settled(fill_ids: list[str], block: int) -> Any:
    def step(connection: Connection) -> None:
        connection.execute(
            store.FILLS.update()
            .where(store.FILLS.c.id.in_(fill_ids))
            .values(settlement=SettlementStatus.SETTLED.value, tx_hash=TX, block_number=block)
        )

    return step


def confirmed(batch_id: str, block: int, gas: int) -> Any:
    return lambda c: store.batch_finished(
        c,
        batch_id,
        store.CONFIRMED,
        NOW,
        tx_hash=TX,
        block_number=block,
        block_hash=BLOCK_HASH,
        gas_used=gas,
    )


def reorged(batch_id: str, fill_ids: list[str], after_block: int) -> Any:
    """What `SettlementService._undo_after` writes."""

    def step(connection: Connection) -> None:
        connection.execute(
            store.FILLS.update()
            .where(store.FILLS.c.id.in_(fill_ids))
            .values(settlement=SettlementStatus.PENDING.value, tx_hash=None, block_number=None)
        )
        store.batch_finished(
            connection, batch_id, "reorged", NOW, reason=f"reorg after block {after_block}"
        )
        facts = {"after_block": after_block, "fills": fill_ids, "batches": [batch_id]}
        audit_log.append(
            connection, [audit_log.AuditEntry("settlement.reorged", str(after_block), facts)], NOW
        )

    return step


@pytest.fixture
def batches(client: TestClient) -> dict[str, list[str]]:
    """bat_1 confirmed after a reorg healed, bat_2 sent, bat_3 abandoned (its fills given
    back), bat_4 undone by a reorg and not yet healed: oldest to newest."""
    fills = {n: trade(client, n) for n in (1, 2, 3, 4)}
    write(
        client,
        lambda c: store.open_batch(c, "bat_1", 101, fills[1], NOW),
        lambda c: store.batch_sent(c, "bat_1", TX, 7, NOW),
        confirmed("bat_1", 40, 210_000),
        settled(fills[1], 40),
        reorged("bat_1", fills[1], 39),
        confirmed("bat_1", 41, 211_000),  # the transaction was mined again
        settled(fills[1], 41),
        lambda c: store.open_batch(c, "bat_2", 102, fills[2], NOW),
        lambda c: store.batch_sent(c, "bat_2", TX, 8, NOW),
        lambda c: store.open_batch(c, "bat_3", 103, fills[3], NOW),
        lambda c: store.release_fills(c, fills[3]),
        lambda c: store.batch_finished(c, "bat_3", "abandoned", NOW, reason="not on chain"),
        lambda c: store.open_batch(c, "bat_4", 104, fills[4], NOW),
        confirmed("bat_4", 42, 190_000),
        settled(fills[4], 42),
        reorged("bat_4", fills[4], 41),
    )
    return {f"bat_{n}": ids for n, ids in fills.items()}


def page(client: TestClient, query: str = "") -> dict[str, Any]:
    response = client.get(f"/v1/settlements{query}", headers=operator_headers())
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_batches_newest_first_with_gas_transaction_fills_and_reorgs(
    client: TestClient, batches: dict[str, list[str]]
) -> None:
    answer = page(client)
    items = {b["id"]: b for b in answer["items"]}
    assert [b["id"] for b in answer["items"]] == ["bat_4", "bat_3", "bat_2", "bat_1"]
    assert answer["next_cursor"] is None

    healed = items["bat_1"]
    assert healed["status"] == "confirmed" and healed["chain_batch_id"] == "101"
    assert (healed["tx_hash"], healed["block_number"], healed["block_hash"]) == (TX, 41, BLOCK_HASH)
    assert healed["gas_used"] == 211_000 and healed["operator_nonce"] == 7
    assert healed["fills"] == 2 and healed["reorgs"] == 1 and healed["reorg_healed"] is True

    sent = items["bat_2"]
    assert (sent["status"], sent["tx_hash"], sent["block_number"], sent["gas_used"]) == (
        "sent",
        TX,
        None,
        None,
    )
    assert sent["fills"] == 2 and sent["reorgs"] == 0 and sent["reorg_healed"] is False

    abandoned = items["bat_3"]
    assert abandoned["status"] == "abandoned" and abandoned["reason"] == "not on chain"
    assert abandoned["fills"] == 0  # given back to the outbox

    undone = items["bat_4"]
    assert undone["status"] == "reorged" and undone["reason"] == "reorg after block 41"
    assert undone["fills"] == 2 and undone["reorgs"] == 1 and undone["reorg_healed"] is False

    assert answer["counts"] == {
        "pending": 2,  # sent and reorged: both may still settle
        "confirmed": 1,
        "reverted": 0,
        "abandoned": 1,
        "building": 0,
        "sent": 1,
        "reorged": 1,
    }


def test_a_reorged_batch_heals_once_its_fills_settle_again(
    client: TestClient, batches: dict[str, list[str]]
) -> None:
    write(client, confirmed("bat_4", 43, 190_500), settled(batches["bat_4"], 43))
    undone = page(client, "?status=confirmed")["items"][0]
    assert undone["id"] == "bat_4" and undone["block_number"] == 43
    assert undone["reorgs"] == 1 and undone["reorg_healed"] is True


def test_filter_by_status_or_pending(client: TestClient, batches: dict[str, list[str]]) -> None:
    assert [b["id"] for b in page(client, "?status=pending")["items"]] == ["bat_4", "bat_2"]
    assert [b["id"] for b in page(client, "?status=confirmed")["items"]] == ["bat_1"]
    assert [b["id"] for b in page(client, "?status=sent")["items"]] == ["bat_2"]
    assert page(client, "?status=reverted")["items"] == []
    # the counts are of every batch, whatever the filter
    assert page(client, "?status=reverted")["counts"]["confirmed"] == 1


def test_pages_by_cursor_to_the_oldest(client: TestClient, batches: dict[str, list[str]]) -> None:
    seen, query = [], "?limit=3"
    first = page(client, query)
    seen += [b["id"] for b in first["items"]]
    assert first["next_cursor"] is not None
    second = page(client, f"?limit=3&cursor={first['next_cursor']}")
    seen += [b["id"] for b in second["items"]]
    assert second["next_cursor"] is None
    assert seen == ["bat_4", "bat_3", "bat_2", "bat_1"]
    pending = page(client, "?status=pending&limit=1")
    assert [b["id"] for b in pending["items"]] == ["bat_4"]
    rest = page(client, f"?status=pending&limit=1&cursor={pending['next_cursor']}")
    assert [b["id"] for b in rest["items"]] == ["bat_2"] and rest["next_cursor"] is None


def test_bad_parameters_are_refused_with_a_code(client: TestClient) -> None:
    for query, code, field in (
        ("?cursor=bm9wZQ", "invalid_cursor", "cursor"),
        ("?cursor=" + "%21" * 3, "invalid_cursor", "cursor"),
        ("?limit=0", "validation_error", "query.limit"),
        ("?limit=201", "validation_error", "query.limit"),
        ("?status=settled", "validation_error", "query.status"),
    ):
        response = client.get(f"/v1/settlements{query}", headers=operator_headers())
        assert response.status_code == 422, (query, response.text)
        assert response.json()["error"]["code"] == code, query
        assert response.json()["error"]["field"] == field, query


def test_an_empty_gateway_has_no_batches(client: TestClient) -> None:
    answer = page(client)
    assert answer["items"] == [] and answer["next_cursor"] is None
    assert answer["counts"]["pending"] == 0 and answer["counts"]["confirmed"] == 0


def test_the_auditor_sees_every_batch_and_a_protocol_key_none(
    client: TestClient, batches: dict[str, list[str]]
) -> None:
    clock: ManualClock = runtime(client).clock  # type: ignore[assignment]
    auditor = api_key(client, clock, role="auditor", scopes=("read",))
    assert [b["id"] for b in auditor.request("GET", "/v1/settlements").json()["items"]][
        -1
    ] == "bat_1"
    protocol = api_key(client, clock, scopes=("read",))
    refused = protocol.request("GET", "/v1/settlements")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
