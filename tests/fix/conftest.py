"""A gateway with its FIX acceptor, in this process (the API through TestClient, the
acceptor on a free port), and desks that log on to it through QuickFIX's own initiator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.config import Settings
from gateway.fix.acceptor import FixAcceptor
from gateway.fix.dictionary import build_dictionary
from gateway.runtime import Runtime
from tests.fix.initiator import FixInitiator
from tests.market_making import make_market
from tests.operator_access import OPERATOR_TOKEN, operator_headers
from tests.postgres_cluster import free_port

ACCOUNT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # an address the desk's key trades for
OTHER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
SESSIONS = ["DESK1", "DESK2", "MM1"]


@dataclass
class FixGateway:
    client: TestClient
    runtime: Runtime
    acceptor: FixAcceptor
    directory: Path
    dictionary: Path

    @property
    def port(self) -> int:
        return self.acceptor.port

    def api_key(
        self,
        accounts: tuple[str, ...] = (ACCOUNT,),
        scopes: tuple[str, ...] = ("quote", "trade", "read", "unsigned"),
    ) -> tuple[str, str]:
        """A key that may trade `accounts` unsigned (no chain here to check signatures)."""
        created = self.client.post(
            "/v1/api-keys",
            json={"role": "protocol", "scopes": list(scopes), "accounts": list(accounts)},
            headers=operator_headers(),
        )
        assert created.status_code == 201, created.text
        return created.json()["key_id"], created.json()["secret"]

    def desk(
        self, sender: str = "DESK1", key: tuple[str, str] | None = None, **options: object
    ) -> FixInitiator:
        """An initiator for `sender` (not started), its store in its own directory."""
        key_id, secret = key or self.api_key()
        return FixInitiator(
            port=self.port,
            sender_comp_id=sender,
            key_id=key_id,
            secret=secret,
            store_dir=self.directory / f"desk-{sender}-{key_id}",
            dictionary=self.dictionary,
            **options,  # type: ignore[arg-type]
        )

    def quote(
        self, bid: str, ask: str, size: str = "5", tag: str = "mm", instrument: str = "WETH/USDC"
    ) -> None:
        """A market maker's resting orders on the internal book."""
        self.client.portal.call(  # type: ignore[union-attr]
            make_market, self.runtime, instrument, bid, ask, size, tag
        )


def fix_settings(directory: Path, **changes: object) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite:///{directory / 'fix.db'}",
        "operator_token": OPERATOR_TOKEN,
        "fix_port": free_port(),
        "fix_sessions": SESSIONS,
    }
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


@contextmanager
def fix_gateway_in(directory: Path) -> Iterator[FixGateway]:
    """A gateway with its acceptor on the database in `directory` (the same file each time:
    a second one started after the first stopped is a restart)."""
    settings = fix_settings(directory)
    runtime = Runtime.build(settings)
    acceptor = FixAcceptor(runtime, settings, directory / "acceptor")
    runtime.attach(acceptor)
    dictionary = build_dictionary(directory / "FIX44-isthmus.xml")
    with TestClient(create_app(settings, runtime=runtime)) as client:
        yield FixGateway(client, runtime, acceptor, directory, dictionary)


@pytest.fixture
def fix_gateway(tmp_path: Path) -> Iterator[FixGateway]:
    with fix_gateway_in(tmp_path) as gateway:
        yield gateway
