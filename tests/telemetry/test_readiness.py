"""GET /v1/ready, for orchestrators: 200 while the database answers, the chain answers (when
the gateway has one) and, for a replica, its lease loop runs; 503 with each check otherwise.
GET /v1/health stays liveness."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from web3 import Web3

from gateway.api import instruments
from gateway.api.app import create_app
from gateway.chain.anvil import Anvil
from gateway.chain.directory import ChainDirectory
from gateway.config import Settings
from gateway.runtime import Runtime
from tests.chain.conftest import anvil_node, w3  # noqa: F401
from tests.conftest import ManualClock
from tests.operator_access import OPERATOR_TOKEN
from tests.postgres_cluster import PostgresCluster, free_port

SETTLEMENT = "0x" + "11" * 20


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ready.db'}", operator_token=OPERATOR_TOKEN
    )
    rt = Runtime.build(settings, clock=ManualClock())
    with TestClient(create_app(settings, runtime=rt)) as test_client:  # no credentials
        yield test_client


def runtime(client: TestClient) -> Runtime:
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def checks(response: Any) -> dict[str, dict[str, Any]]:
    body = response.json()
    assert set(body) == {"status", "checks"}
    assert [c["name"] for c in body["checks"]] == ["database", "chain", "leases"]
    return {c["name"]: c for c in body["checks"]}


def test_ready_when_the_database_answers_and_nothing_else_is_configured(
    client: TestClient,
) -> None:
    response = client.get("/v1/ready")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"
    assert checks(response) == {
        "database": {"name": "database", "status": "ok", "detail": "sqlite"},
        "chain": {"name": "chain", "status": "skipped", "detail": "no chain is configured"},
        "leases": {"name": "leases", "status": "skipped", "detail": "not a replica"},
    }
    assert client.get("/v1/health").status_code == 200  # liveness unchanged


def test_not_ready_while_the_database_does_not_answer(client: TestClient, tmp_path: Path) -> None:
    rt = runtime(client)
    engine = rt.read_engine
    rt.read_engine = create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'gone.db'}")
    try:
        response = client.get("/v1/ready")
    finally:
        rt.read_engine.dispose()
        rt.read_engine = engine
    assert response.status_code == 503, response.text
    assert response.json()["status"] == "not_ready"
    database = checks(response)["database"]
    assert database["status"] == "failed" and database["detail"] == "OperationalError"
    assert "no-such-dir" not in response.text  # the kind of failure, never its message
    assert client.get("/v1/ready").status_code == 200  # answering again: ready again


def test_not_ready_while_the_chain_refuses_connections(client: TestClient) -> None:
    rt = runtime(client)
    nowhere = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{free_port()}"))
    rt.chain_directory = ChainDirectory(nowhere, SETTLEMENT, {})
    response = client.get("/v1/ready")
    assert response.status_code == 503, response.text
    chain = checks(response)["chain"]
    assert chain["status"] == "failed" and chain["detail"]
    assert checks(response)["database"]["status"] == "ok"


def test_not_ready_when_the_chain_does_not_answer_in_time(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that takes the connection and never answers: the check gives up after its
    short timeout instead of holding the orchestrator's probe."""
    monkeypatch.setattr(instruments, "READY_TIMEOUT_SECONDS", 0.2)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # connections wait in the backlog, never accepted
    try:
        port = silent.getsockname()[1]
        hung = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}", request_kwargs={"timeout": 30}))
        runtime(client).chain_directory = ChainDirectory(hung, SETTLEMENT, {})
        response = client.get("/v1/ready")
    finally:
        silent.close()  # the waiting request is reset: its thread ends
    assert response.status_code == 503, response.text
    assert checks(response)["chain"] == {
        "name": "chain",
        "status": "failed",
        "detail": "no answer within 0.2 s",
    }


@pytest.mark.chain
def test_ready_with_a_chain_that_answers(
    client: TestClient,
    w3: Web3,  # noqa: F811
    anvil_node: Anvil,  # noqa: F811
) -> None:
    runtime(client).chain_directory = ChainDirectory(w3, SETTLEMENT, {})
    response = client.get("/v1/ready")
    assert response.status_code == 200, response.text
    chain = checks(response)["chain"]
    assert chain["status"] == "ok" and chain["detail"].startswith("block ")


def test_not_ready_before_the_gateway_started(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")
    client = TestClient(create_app(settings))  # no lifespan: no runtime yet
    response = client.get("/v1/ready")
    assert response.status_code == 503, response.text
    assert {c["status"] for c in checks(response).values()} == {"failed"}


@pytest.mark.postgres
def test_a_replica_is_ready_while_its_lease_loop_runs(postgres: PostgresCluster) -> None:
    settings = Settings(
        database_url=postgres.new_database(),
        operator_token=OPERATOR_TOKEN,
        replica=True,
        replica_id="replica-1",
        replica_url="http://127.0.0.1:8000",
    )
    rt = Runtime.build(settings)
    with TestClient(create_app(settings, runtime=rt)) as client:
        leases: Any = getattr(rt, "leases", None)
        assert leases is not None
        # the loop took the free lease and the replica rebuilt its roles
        client.portal.call(asyncio.wait_for, leases.active.wait(), 30)
        response = client.get("/v1/ready")
        assert response.status_code == 200, response.text
        assert checks(response)["leases"] == {
            "name": "leases",
            "status": "ok",
            "detail": "the lease loop runs (holds its role)",
        }

        [loop] = [task for task in rt.background if task.get_name() == "lease"]

        async def stop_the_loop() -> None:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)

        client.portal.call(stop_the_loop)
        response = client.get("/v1/ready")
        assert response.status_code == 503, response.text
        assert checks(response)["leases"]["status"] == "failed"
        assert checks(response)["database"]["status"] == "ok"
