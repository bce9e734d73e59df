from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.config import Settings
from tests.operator_access import OPERATOR_TOKEN, operator_headers


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        stream_queue_size=8,
        operator_token=OPERATOR_TOKEN,
    )
    with TestClient(create_app(settings), headers=operator_headers()) as test_client:
        yield test_client
