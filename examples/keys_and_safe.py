"""Cold multisig, warm trading key, on the devnet that `make up` runs.

Run in a second terminal while `make up` is running:

    .venv/bin/python examples/keys_and_safe.py

What it does, as the people involved would:

1. carol (the owner of a devnet wallet) authorises a fresh trading key on chain: WETH/USDC
   only, at most 10,000 USDC per order, for a day;
2. the key signs in with Ethereum, sells 1 WETH for carol's wallet (accepted), tries 5 WETH
   (refused: over its notional) and rests a second sell;
3. three people create a 2-of-3 Safe, which gets a MarginWallet and 2 WETH; two of them sign a
   sell through the Safe's own message scheme (EIP-1271) and one of them submits it;
4. alice buys both sells with her own signature; the batch settles on chain;
5. carol revokes the key: the gateway cancels its resting sell;
6. the auditor proves every fill, naming who signed it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from web3 import Web3

from gateway.api.schemas import OrderIn
from gateway.chain import tokens
from gateway.chain.anvil import dev_accounts
from gateway.chain.deploy import Deployment, create_wallet, wallet_contract
from gateway.chain.onchain_orders import OnchainOrders
from gateway.chain.safe import (
    SafeInfrastructure,
    create_safe,
    safe_message_hash,
    sign_safe_message,
)
from gateway.chain.transactions import Sender
from gateway.devnet.catalogue import devnet_catalogue
from gateway.devnet.scenario import Caller, Trader, WalletApp, bearer, sign_in
from gateway.domain.orders import OrderSignature
from gateway.settlement import eip712

STATE = Path(".isthmus/devnet")
WETH = 10**18
NO_LIMIT = 2**128 - 1


def show(title: str, response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    brief = {k: body.get(k) for k in ("id", "status", "filled_quantity")}
    brief.update(body.get("error") or {})
    print(f"{title}: {response.status_code} {json.dumps({k: v for k, v in brief.items() if v})}")
    return body


async def main(gateway: str, rpc: str) -> int:
    d = Deployment.load(STATE / "deployment.json")
    operator_token = (STATE / "operator-token").read_text().strip()
    w3 = Web3(Web3.HTTPProvider(rpc))
    chain_id = w3.eth.chain_id
    # fresh keys: the trading key and the Safe's three owners
    dev = [
        Account.from_key(Web3.keccak(text=f"isthmus-example-{i}-{time.time_ns()}"))
        for i in range(4)
    ]
    # the devnet's own accounts: 0 deploys (and mints test tokens), 1..3 are alice, bob, carol
    devnet = dev_accounts()
    deployer = Sender(w3, devnet[0])
    alice_acct, carol_acct = devnet[1], devnet[3]
    alice_key = Web3.to_hex(alice_acct.key)
    alice = Trader(
        "alice", alice_acct.address, alice_key, create_wallet(deployer, d, alice_acct.address)
    )
    carol_wallet = create_wallet(deployer, d, carol_acct.address)
    onchain = OnchainOrders(devnet_catalogue(), {"WETH": d.weth, "USDC": d.usdc})
    app = WalletApp(onchain, chain_id)
    deadline = int(time.time()) + 3600
    nonce = int(time.time())

    # 1. carol authorises a trading key on her own wallet (she pays the gas: her key)
    key = dev[0]
    carol = Sender(w3, carol_acct)
    wallet = wallet_contract(w3, carol_wallet)
    spot_id = eip712.spot_instrument_id(d.weth, d.usdc)
    carol.transact(
        wallet.functions.authorise_key(
            key.address, int(time.time()) + 86_400, False, 10_000 * 10**6, [spot_id]
        )
    )
    print("carol authorised", key.address, "->", wallet.functions.trading_key(key.address).call())

    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        operator = Caller(http, bearer(operator_token))
        # 2. the key signs in and trades for carol's wallet
        as_key = Trader("carol-key", key.address, Web3.to_hex(key.key), carol_wallet)
        key_session = await sign_in(http, as_key, chain_id)
        sells = []
        for n, (qty, price) in enumerate((("1", "2900"), ("5", "2900"), ("0.5", "3900"))):
            body = {
                "account": carol_wallet,
                "client_order_id": f"key-sell-{nonce}-{n}",
                "instrument": "WETH/USDC",
                "side": "sell",
                "quantity": qty,
                "price": "2900",
            }
            app.sign(as_key, body, nonce + n, deadline)
            sells.append(
                show(f"key sells {qty} WETH at {price}", await key_session.post("/v1/orders", body))
            )

        # 3. a 2-of-3 Safe owns a wallet; two owners sign a sell
        infra = d.safe
        assert isinstance(infra, SafeInfrastructure)
        owners = dev[1:4]
        safe = create_safe(deployer, infra, [o.address for o in owners], 2, salt_nonce=nonce)
        safe_wallet = create_wallet(deployer, d, safe)
        tokens.mint(deployer, d.weth, safe_wallet, 2 * WETH)
        body = {
            "account": safe_wallet,
            "client_order_id": f"safe-sell-{nonce}",
            "instrument": "WETH/USDC",
            "side": "sell",
            "quantity": "1",
            "price": "2900",
        }
        spec = OrderIn.model_validate(body).to_spec()
        digest = eip712.order_digest(
            onchain.order(spec, OrderSignature(nonce, deadline, b"")), chain_id, safe_wallet
        )
        signature = sign_safe_message(
            [o.key for o in owners[:2]], safe_message_hash(chain_id, safe, digest)
        )
        body["signature"] = {
            "nonce": str(nonce),
            "deadline": deadline,
            "signature": "0x" + signature.hex(),
        }
        owner_session = await sign_in(
            http,
            Trader("safe-owner", owners[0].address, Web3.to_hex(owners[0].key), safe_wallet),
            chain_id,
        )
        show("2-of-3 Safe sells 1 WETH", await owner_session.post("/v1/orders", body))

        # 4. alice buys both with her own signature
        alice_session = await sign_in(http, alice, chain_id)
        body = {
            "account": alice.wallet,
            "client_order_id": f"alice-buy-{nonce}",
            "instrument": "WETH/USDC",
            "side": "buy",
            "quantity": "2",
            "price": "2900",
        }
        app.sign(alice, body, nonce, deadline)
        bought = show("alice buys 2 WETH", await alice_session.post("/v1/orders", body))
        for _ in range(60):
            order = (await operator.get(f"/v1/orders/{bought['id']}")).json()
            if order.get("settlement") == "settled":
                break
            await asyncio.sleep(1)  # a person polling, not a test
        fills = (await operator.get(f"/v1/orders/{bought['id']}/fills")).json()
        print("alice's order:", order.get("status"), "settlement:", order.get("settlement"))
        for fill in fills if isinstance(fills, list) else fills.get("fills", []):
            print(
                "  fill",
                fill.get("quantity"),
                "@",
                fill.get("price"),
                fill.get("venue"),
                fill.get("settlement"),
            )

        # 5. carol revokes the key; its resting sell is cancelled
        carol.transact(wallet.functions.revoke_key(key.address))
        resting = sells[2].get("id")
        for _ in range(30):
            order = (await operator.get(f"/v1/orders/{resting}")).json()
            if order.get("status") == "cancelled":
                break
            await asyncio.sleep(1)
        print(
            "the key's resting sell after revocation:",
            order.get("status"),
            order.get("cancel_reason", ""),
        )

        # 6. the auditor
        report = (await operator.get("/v1/audit/verify")).json()
        signed = {(f["signed_by"], f["ok"]) for f in report.get("fills", [])}
        print("audit ok:", report.get("ok"), "signers:", sorted(signed))
    return 0


if __name__ == "__main__":
    gateway_url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    rpc_url = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8545"
    sys.exit(asyncio.run(main(gateway_url, rpc_url)))
