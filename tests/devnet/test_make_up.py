"""`isthmus up` with no config: the whole devnet comes up, serves, and Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.sync.client import connect

from tests.postgres_cluster import free_port
from tests.process_output import wait_for_marker

pytestmark = [pytest.mark.chain, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def start(tmp_path: Path, port: int) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        "ISTHMUS_DATABASE_URL": f"sqlite:///{tmp_path / 'devnet.db'}",
        "COLUMNS": "200",
        "ISTHMUS_FIX_PORT": str(free_port()),  # beside another devnet on this machine
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "up", "--port", str(port)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    try:
        output = wait_for_marker(process.stdout, b"Uvicorn running on", 180)
    except (TimeoutError, RuntimeError):
        process.kill()
        raise
    return process, output.decode(errors="replace")


def accepts_connections(port: int) -> bool:
    """Something still listens (a bind test would also fail on TIME_WAIT leftovers)."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def stop(process: subprocess.Popen[bytes], how: signal.Signals) -> str:
    process.send_signal(how)
    out, _ = process.communicate(timeout=60)
    return out.decode(errors="replace")


def first_book_with(
    port: int, venues: set[str], headers: dict[str, str], timeout: float = 60
) -> dict[str, Any]:
    """Wait on the book stream (no polling) until all `venues` quote WETH/USDC live."""
    with connect(
        f"ws://127.0.0.1:{port}/v1/stream", open_timeout=10, additional_headers=headers
    ) as socket:
        socket.recv(timeout=10)
        socket.send(json.dumps({"op": "subscribe", "accounts": [], "books": ["WETH/USDC"]}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("type") == "book" and venues <= set(message["book"]["live_venues"]):
                book: dict[str, Any] = message["book"]
                return book


def test_devnet_comes_up_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    for attempt in range(2):  # a second `make up` works too
        process, banner = start(tmp_path, port)
        try:
            assert "Settlement" in banner and "trader alice" in banner
            # the devnet made an operator token (owner-only) and said where it is
            token_file = tmp_path / ".isthmus/devnet/operator-token"
            assert "operator-token" in banner and token_file.stat().st_mode & 0o777 == 0o600
            operator = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
            # every service's URL in the banner but the gateway's own (its API, its web app)
            elsewhere = [
                word
                for word in banner.split()
                if word.startswith("http://127.0.0.1:") and urlsplit(word).port != port
            ]
            assert f"http://127.0.0.1:{port}/app/" in banner.split()
            rpc = elsewhere[0]
            streamed = first_book_with(port, {"uniswap", "binance"}, operator)
            assert streamed["asks"] and streamed["bids"]
            sources = {v["venue"] for level in streamed["asks"] for v in level["venues"]}
            assert {"uniswap", "binance"} <= sources
            services = [urlsplit(word).port for word in elsewhere]
            book = httpx.get(
                f"http://127.0.0.1:{port}/v1/book/WETH/USDC", headers=operator, timeout=10
            ).json()
            assert "uniswap" in book["live_venues"]
            deployment = (tmp_path / ".isthmus/devnet/deployment.json").read_text()
            assert '"settlement"' in deployment
            # the demo wallet's risk, read from the chain through the Settlement
            words = banner.split()
            wallet = words[words.index("wallet") + 1]
            risk = httpx.get(
                f"http://127.0.0.1:{port}/v1/accounts/{wallet}/risk", headers=operator, timeout=30
            )
            assert risk.status_code == 200, risk.text
            onchain = risk.json()["margin"]["onchain"]
            assert (onchain["required"], onchain["available"], onchain["ok"]) == ("0", "0", True)
            assert risk.json()["market"]["spots"]["WETH"]  # a live mid from the venues
            # a large buy routed smart costs less than the whole order on any one venue
            quoted = httpx.post(
                f"http://127.0.0.1:{port}/v1/quote",
                json={"instrument": "WETH/USDC", "side": "buy", "quantity": "40"},
                headers=operator,
                timeout=30,
            )
            assert quoted.status_code == 200, quoted.text
            smart, single = quoted.json()["route"], quoted.json()["best_single_venue"]
            assert {leg["venue"] for leg in smart["legs"]} >= {"uniswap", "binance"}
            if single["unfilled"] == "0":
                assert Decimal(smart["quote_amount"]) < Decimal(single["quote_amount"])
            else:  # no single venue holds 40 WETH: the split fills more
                assert Decimal(smart["filled"]) > Decimal(single["filled"])
            smart_order = httpx.post(
                f"http://127.0.0.1:{port}/v1/orders",
                json={
                    "account": wallet,
                    "client_order_id": "smart-1",
                    "instrument": "WETH/USDC",
                    "side": "buy",
                    "quantity": "30",
                    "price": "3250",
                    "time_in_force": "ioc",
                    "route": "smart",
                },
                headers=operator,
                timeout=60,
            )
            # executed across the exchange and the pool (from the operator's inventory)
            # 201 on the second start too: a new chain starts with a new database (the
            # previous one is kept aside), not with orders of wallets that no longer exist
            assert smart_order.status_code == 201, smart_order.text
            executed = smart_order.json()
            assert executed["filled_quantity"] == "30" and executed["status"] == "filled"
            assert Decimal(executed["average_price"]) <= Decimal(3250)
            # its costs: the pool's leg paid gas (from the swap's receipt), the exchange a fee
            tca = httpx.get(
                f"http://127.0.0.1:{port}/v1/orders/{executed['id']}/tca",
                headers=operator,
                timeout=30,
            ).json()
            by_venue = {v["venue"]: v for v in tca["venues"]}
            assert Decimal(by_venue["uniswap"]["gas"]) > 0 and by_venue["uniswap"]["fees"] == "0"
            assert Decimal(by_venue["binance"]["fees"]) > 0
            assert Decimal(tca["implementation_shortfall"]["gas"]) == Decimal(
                by_venue["uniswap"]["gas"]
            )
        finally:
            # Ctrl-C first, then what docker stop and supervisors send
            tail = stop(process, signal.SIGINT if attempt == 0 else signal.SIGTERM)
        assert process.returncode == 0, tail
        assert "devnet stopped" in tail
        if attempt == 1:
            assert "previous devnet's database is kept as" in banner
            assert (tmp_path / "devnet.previous-devnet.db").exists()
        anvil_port = int(rpc.rsplit(":", 1)[1])
        assert not accepts_connections(anvil_port), f"anvil still running after attempt {attempt}"
        alive = [p for p in services if accepts_connections(p)]
        assert not alive, f"still serving after Ctrl-C: {alive}"
