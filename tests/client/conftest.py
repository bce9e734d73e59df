"""One devnet gateway per test session and worker (it takes a while to come up), shared by the
client tests, which each make their own wallets, keys and orders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.devnet_gateway import DevnetGateway


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetGateway]:
    gateway = DevnetGateway(Path(tmp_path_factory.mktemp("devnet")))
    gateway.start()
    yield gateway
    gateway.stop()
