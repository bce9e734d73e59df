"""Signed order entry on a real chain: what a wallet's signature costs a market maker.

A gateway (`isthmus up --config`, its own process) on anvil with the contracts deployed, and
one MarginWallet whose owner and trading key sign orders (EIP-712, signed beforehand: a
client's work, not the gateway's). Every signed order is checked against the chain before it
is stored: its nonce (used, cancelled), and for a trading key its record and allow-list.

Measured over HTTP in the same run, on the same gateway and database:
* ``unsigned``: the same order without a signature, one connection: the baseline;
* ``owner_signed`` and ``key_signed``: one connection, p50 and p99, and each p50's ratio to
  the unsigned p50 (what the chain check adds);
* ``batch``: signed orders in `POST /v1/orders/batch` requests of 50, one connection,
  orders/s, against signed singles at one connection in the same run (``ratio_vs_singles``:
  what a batch saves a market maker quoting many strikes).

Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.http_load import LoadResult, run_load  # noqa: E402
from gateway.chain import tokens  # noqa: E402
from gateway.chain.anvil import Anvil, AnvilConfig  # noqa: E402
from gateway.chain.deploy import create_wallet, deploy_all, wallet_contract  # noqa: E402
from gateway.chain.onchain_orders import OnchainOrders  # noqa: E402
from gateway.chain.transactions import Sender, connect  # noqa: E402
from gateway.devnet.catalogue import devnet_catalogue  # noqa: E402
from gateway.domain.orders import (  # noqa: E402
    OrderSignature,
    OrderSpec,
    OrderType,
    Side,
    TimeInForce,
)
from gateway.settlement import eip712  # noqa: E402
from tests.postgres_cluster import free_port  # noqa: E402

TOKEN = "bench-operator-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
WETH = 10**18
BATCH = 50


class Signing:
    """Signs the bench's sell orders for one wallet, each with a fresh nonce."""

    def __init__(self, onchain: OnchainOrders, chain_id: int, wallet: str, deadline: int) -> None:
        self.onchain, self.chain_id, self.wallet, self.deadline = (
            onchain,
            chain_id,
            wallet,
            deadline,
        )
        self.nonce = 0

    def body(self, key: bytes | None, cid: str, n: int) -> dict[str, Any]:
        price = Decimal(5000 + n % 500)  # resting sells, far above any bid: nothing matches
        body: dict[str, Any] = {
            "account": self.wallet,
            "client_order_id": cid,
            "instrument": "WETH/USDC",
            "side": "sell",
            "quantity": "0.01",
            "price": str(price),
        }
        if key is None:
            return body
        self.nonce += 1
        spec = OrderSpec(
            self.wallet,
            cid,
            Side.SELL,
            OrderType.LIMIT,
            Decimal("0.01"),
            TimeInForce.GTC,
            instrument="WETH/USDC",
            price=price,
        )
        blank = OrderSignature(self.nonce, self.deadline, b"")
        signature = eip712.sign_order(
            self.onchain.order(spec, blank), key, self.chain_id, self.wallet
        )
        body["signature"] = {
            "nonce": str(self.nonce),
            "deadline": self.deadline,
            "signature": "0x" + signature.hex(),
        }
        return body


def start_gateway(config: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "isthmus"), "up", "--config", str(config)]
    command += ["--port", str(port)]
    process = subprocess.Popen(
        command,
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while True:  # readiness: the benchmark, not a test, may poll
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1)
            return process
        except (OSError, urllib.error.HTTPError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the gateway did not start") from None
            time.sleep(0.1)


def load(port: int, path: str, bodies: list[bytes]) -> LoadResult:
    return asyncio.run(
        run_load(
            "127.0.0.1",
            port,
            path,
            lambda n: bodies[n],
            total=len(bodies),
            connections=1,
            headers=HEADERS,
        )
    )


def check_batch(port: int, orders: list[dict[str, Any]]) -> None:
    """A batch's items are only timed once one batch was seen to create every order (an
    answer of 200 could carry 50 refusals)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/orders/batch",
        json.dumps({"orders": orders}).encode(),
        {**HEADERS, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as answer:
        statuses = [item["status"] for item in json.load(answer)["results"]]
    if statuses != [201] * len(orders):
        raise RuntimeError(f"the signed batch was not accepted whole: {statuses}")


def summary(result: LoadResult, per_request: int = 1) -> dict[str, Any]:
    return {
        "requests": result.requests,
        "orders_per_second": round(result.throughput * per_request, 1),
        "p50_ms": round(result.percentile(50) * 1000, 3),
        "p99_ms": round(result.percentile(99) * 1000, 3),
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=400, help="orders per single measure")
    parser.add_argument("--batches", type=int, default=12)
    args = parser.parse_args()

    node = Anvil(AnvilConfig()).start()
    gateway: subprocess.Popen[bytes] | None = None
    try:
        w3 = connect(node.rpc_url)
        accounts = node.dev_accounts()
        deployer, owner, key = Sender(w3, accounts[0]), accounts[3], accounts[7]
        d = deploy_all(deployer)
        wallet = create_wallet(deployer, d, owner.address)
        tokens.mint(deployer, d.weth, wallet, 100_000 * WETH)
        now = int(w3.eth.get_block("latest")["timestamp"])
        # a market maker's quoting key: every instrument, no notional limit, for a day
        Sender(w3, owner).transact(
            wallet_contract(w3, wallet).functions.authorise_key(
                key.address, now + 86_400, True, 2**128 - 1, []
            )
        )
        onchain = OnchainOrders(devnet_catalogue(), {"WETH": d.weth, "USDC": d.usdc})
        signing = Signing(onchain, int(w3.eth.chain_id), wallet, now + 86_400)

        def bodies(tag: str, signer: bytes | None, count: int, start: int = 0) -> list[bytes]:
            return [
                json.dumps(signing.body(signer, f"{tag}-{n}", start + n)).encode()
                for n in range(count)
            ]

        with tempfile.TemporaryDirectory() as directory:
            config = Path(directory) / "gateway.toml"
            config.write_text(
                f'database_url = "sqlite:///{directory}/signed.db"\n'
                "[chain]\n"
                f'rpc_url = "{node.rpc_url}"\n'
                f'settlement = "{d.settlement}"\n'
                f'tokens = {{ WETH = "{d.weth}", USDC = "{d.usdc}" }}\n'
                '[[venues]]\nkind = "internal"\n'
            )
            port = free_port()
            gateway = start_gateway(
                config,
                port,
                {
                    "ISTHMUS_OPERATOR_TOKEN": TOKEN,
                    "ISTHMUS_LOG_LEVEL": "warning",
                    # the load generator is one account sending as fast as it can
                    "ISTHMUS_RISK_ORDERS_PER_SECOND": "1000000",
                    "ISTHMUS_RISK_ORDER_BURST": "1000000",
                    "ISTHMUS_RATE_LIMIT_PER_SECOND": "1000000",
                    "ISTHMUS_RATE_LIMIT_BURST": "1000000",
                    "ISTHMUS_RISK_MAX_OPEN_ORDERS": "1000000",
                },
            )
            orders = args.orders
            load(port, "/v1/orders", bodies("warm-u", None, 100))
            load(port, "/v1/orders", bodies("warm-s", owner.key, 100))
            unsigned = load(port, "/v1/orders", bodies("u", None, orders))
            by_owner = load(port, "/v1/orders", bodies("o", owner.key, orders))
            by_key = load(port, "/v1/orders", bodies("k", key.key, orders))
            batch_bodies = [
                json.dumps(
                    {
                        "orders": [
                            signing.body(owner.key if i % 2 else key.key, f"b{b}-{i}", i)
                            for i in range(BATCH)
                        ]
                    }
                ).encode()
                for b in range(args.batches)
            ]
            check_batch(port, [signing.body(key.key, f"check-{i}", i) for i in range(BATCH)])
            batch = load(port, "/v1/orders/batch", batch_bodies)
            singles = load(port, "/v1/orders", bodies("s", key.key, args.batches * BATCH))
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(30)
        node.stop()

    def ratio(result: LoadResult) -> float:
        return round(result.percentile(50) / unsigned.percentile(50), 2)

    batch_rate = batch.throughput * BATCH
    print(
        json.dumps(
            {
                "benchmark": "signed_orders",
                "chain": "anvil, automine; one MarginWallet, its owner and a trading key",
                "connections": 1,
                "unsigned": summary(unsigned),
                "owner_signed": {**summary(by_owner), "p50_ratio_vs_unsigned": ratio(by_owner)},
                "key_signed": {**summary(by_key), "p50_ratio_vs_unsigned": ratio(by_key)},
                "batch": {
                    "orders_per_request": BATCH,
                    **summary(batch, BATCH),
                    "signed_singles_orders_per_second": round(singles.throughput, 1),
                    "ratio_vs_singles": round(batch_rate / singles.throughput, 2),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
