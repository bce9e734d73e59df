"""GET /v1/audit/...: the same report as `isthmus audit verify --db`, the audited fills, the
audit log page by page (each record re-hashes to its stored hash), and a structured 503 when
the gateway settles on no chain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.access.request_signing import sign_request
from gateway.api.app import create_app
from gateway.store.audit_log import GENESIS_HASH, record_hash
from tests.audit.conftest import OPERATOR_TOKEN, SettledWorld
from tests.audit.test_verify import fill_ids, run_verify, tamper

pytestmark = pytest.mark.chain
Scenario = Callable[[httpx.AsyncClient], Awaitable[None]]


def against(world: SettledWorld, url: str, scenario: Scenario, *, chain: bool = True) -> None:
    """Run `scenario` with a client of a gateway started the way a server starts it."""

    async def run() -> None:
        app = create_app(runtime=world.runtime(url, chain=chain))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://gw",
                headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
            ) as http,
        ):
            await scenario(http)

    asyncio.run(run())


def test_the_api_serves_the_cli_report_and_the_audited_fills(
    settled_world: SettledWorld, tmp_path: Path
) -> None:
    url = settled_world.copy_database(tmp_path)
    code, cli = run_verify(settled_world, "--db", url)
    assert code == 0
    assert {(f["signed_by"], f["ok"]) for f in cli["fills"]} == {("owner", True)}

    async def scenario(http: httpx.AsyncClient) -> None:
        response = await http.get("/v1/audit/verify")
        assert response.status_code == 200, response.text
        report = response.json()
        for key in ("ok", "chain_id", "settlement", "counts", "problems", "fills"):
            assert report[key] == cli[key], key
        assert report["store"]["matched"] == cli["store"]["matched"]
        fills = await http.get("/v1/audit/fills")
        assert fills.status_code == 200 and fills.json() == cli["fills"]

    against(settled_world, url, scenario)


def test_the_api_reports_a_tampered_fill(settled_world: SettledWorld, tmp_path: Path) -> None:
    url = settled_world.copy_database(tmp_path)
    [fill_id] = fill_ids(url, settled_world.orders["bid"].id)
    tamper(url, "UPDATE fills SET quantity = '2' WHERE id = :id", id=fill_id)

    async def scenario(http: httpx.AsyncClient) -> None:
        report = (await http.get("/v1/audit/verify")).json()
        assert report["ok"] is False
        [bad] = [f for f in report["fills"] if not f["ok"]]
        assert bad["gateway_fills"] == [fill_id] and fill_id in bad["problems"][0]

    against(settled_world, url, scenario)


def test_the_audit_log_pages_rehash_to_an_unbroken_chain(
    settled_world: SettledWorld, tmp_path: Path
) -> None:
    url = settled_world.copy_database(tmp_path)

    async def scenario(http: httpx.AsyncClient) -> None:
        records: list[dict[str, Any]] = []
        after: int | None = 0
        while after is not None:
            response = await http.get("/v1/audit/log", params={"after": after, "limit": 7})
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["items"]) <= 7
            records += page["items"]
            after = page["next_after"]
        assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
        assert len(records) > 7  # more than one page
        prev = GENESIS_HASH
        for r in records:
            assert r["prev_hash"] == prev
            created = datetime.fromisoformat(r["created_at"])
            digest = record_hash(prev, r["seq"], r["kind"], r["entity_id"], created, r["payload"])
            assert digest == r["hash"]
            prev = r["hash"]
        bad = await http.get("/v1/audit/log", params={"limit": 0})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"

    against(settled_world, url, scenario)


def test_without_a_chain_verification_is_unavailable(
    settled_world: SettledWorld, tmp_path: Path
) -> None:
    url = settled_world.copy_database(tmp_path)

    async def scenario(http: httpx.AsyncClient) -> None:
        for path in ("/v1/audit/verify", "/v1/audit/fills"):
            response = await http.get(path)
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "audit_unavailable"
        assert (await http.get("/v1/audit/log")).status_code == 200

    against(settled_world, url, scenario, chain=False)


def test_a_key_limited_to_one_account_sees_only_its_fills(
    settled_world: SettledWorld, tmp_path: Path
) -> None:
    """A protocol's read key for the buyer's wallet: the report and the export narrow to it."""
    url = settled_world.copy_database(tmp_path)
    buyer = settled_world.buyer_wallet

    async def scenario(http: httpx.AsyncClient) -> None:
        issued = await http.post(
            "/v1/api-keys", json={"role": "protocol", "scopes": ["read"], "accounts": [buyer]}
        )
        assert issued.status_code == 201, issued.text
        key = issued.json()

        async def get(path: str) -> httpx.Response:
            headers = sign_request(
                key["key_id"], key["secret"], "GET", path, now_ms=int(time.time() * 1000)
            )
            request = http.build_request("GET", path, headers=headers)
            del request.headers["Authorization"]  # not the operator: only the key speaks
            return await http.send(request)

        response = await get("/v1/audit/verify")
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["ok"] is True
        assert report["counts"]["fills"] == 4 == len(report["fills"])  # 2 spot, 2 legs
        assert {f["wallet"] for f in report["fills"]} == {buyer}
        assert {f["wallet"] for f in (await get("/v1/audit/fills")).json()} == {buyer}
        exported = (await get("/v1/fills/export")).text.splitlines()[1:]
        assert exported and all(f",{buyer}," in line for line in exported)

    against(settled_world, url, scenario)
