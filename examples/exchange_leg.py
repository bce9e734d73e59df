"""A signed order's exchange fill reaches the wallet, on the devnet that `make up` runs.

Run in a second terminal while `make up` is running (best after it has been quiet a while):

    .venv/bin/python examples/exchange_leg.py [--quantity 8] [--limit 2750]

What it does, as the people involved would:

1. the gateway's book is read: the pool and the internal book must be live however quiet the
   market has been, Binance too;
2. alice rests a signed bid for 1 WETH on the internal book, above the market;
3. carol signs a smart sell (8 WETH at 2,750 or better): it takes alice's bid, the pool and
   Binance's bids, whatever is cheapest at the margin;
4. every part settles on chain in one transaction: carol's wallet pays exactly her fills'
   WETH and gets their USDC; the inventory wallet takes the Binance part on chain;
5. the operator sees the inventory against its Binance hedge; the auditor proves every fill.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from decimal import Decimal
from pathlib import Path

from isthmus_client import AsyncIsthmus, NonceStore, OperatorToken, Signer
from web3 import Web3

from gateway.chain import tokens
from gateway.chain.anvil import dev_accounts
from gateway.chain.deploy import Deployment, factory_contract

STATE = Path(".isthmus/devnet")


def wallet_of(w3: Web3, d: Deployment, owner: str) -> str:
    wallet: str = factory_contract(w3, d).functions.wallet_of(owner).call()
    return wallet


async def main(gateway: str, rpc: str, quantity: str, limit: str) -> int:
    d = Deployment.load(STATE / "deployment.json")
    operator_token = (STATE / "operator-token").read_text().strip()
    w3 = Web3(Web3.HTTPProvider(rpc))
    devnet = dev_accounts()
    alice_acct, carol_acct, inventory_owner = devnet[1], devnet[3], devnet[8]
    # the traders' wallet apps: each key signs in and signs its orders locally (EIP-712)
    alice = Signer(alice_acct, wallet_of(w3, d, alice_acct.address))
    carol = Signer(carol_acct, wallet_of(w3, d, carol_acct.address))
    assert alice.wallet is not None and carol.wallet is not None
    inventory = wallet_of(w3, d, inventory_owner.address)
    deadline = int(time.time()) + 3600
    nonce = int(time.time())  # fresh each run: a nonce is single use per wallet

    def balances(wallet: str) -> tuple[int, int]:
        return tokens.balance_of(w3, d.weth, wallet), tokens.balance_of(w3, d.usdc, wallet)

    def client(credential: OperatorToken | Signer) -> AsyncIsthmus:
        return AsyncIsthmus(gateway, credential, nonces=NonceStore(None), timeout=60)

    async with (
        client(OperatorToken(operator_token)) as operator,
        client(alice) as alice_app,
        client(carol) as carol_app,
    ):
        book = await operator.book("WETH/USDC")
        print("live venues:", book["live_venues"], "stale:", book["stale_venues"])

        bid_price = str((Decimal(book["bids"][0]["price"]) + 10).quantize(Decimal(1)))
        bid = await alice_app.place_order(
            "WETH/USDC",
            "buy",
            "1",
            price=bid_price,
            client_order_id=f"alice-bid-{nonce}",
            nonce=nonce,
            deadline=deadline,
        )
        print(f"alice rests a signed bid 1 @ {bid_price}:", bid.status)

        before, inventory_before = balances(carol.wallet), balances(inventory)
        sell = await carol_app.place_order(
            "WETH/USDC",
            "sell",
            quantity,
            price=limit,
            time_in_force="ioc",
            route="smart",
            client_order_id=f"carol-smart-{nonce}",
            nonce=nonce,
            deadline=deadline,
        )
        print(
            f"carol's signed smart sell {quantity} @ {limit}:",
            sell.status,
            "filled",
            sell.filled_quantity,
        )
        settled = "settled"
        try:
            fills = await operator.wait_settled(sell.id, timeout=60)
        except Exception as error:  # a fill failed, or the chain took too long
            print("settlement:", error)
            settled = "not settled"
            fills = await operator.fills(sell.id)
        print("settlement:", settled)
        for fill in fills:
            print(
                f"  {fill.quantity:>8} @ {fill.price:<12} {fill.venue:<9} "
                f"{fill.settlement} {(fill.tx_hash or '')[:12]}"
            )
        order = await operator.get_order(sell.id)
        after, inventory_after = balances(carol.wallet), balances(inventory)
        sold = Decimal(before[0] - after[0]) / 10**18
        got = Decimal(after[1] - before[1]) / 10**6
        print(f"carol's wallet: -{sold} WETH, +{got} USDC (her fills: {order.filled_quantity})")
        print(
            "inventory wallet:",
            f"{Decimal(inventory_after[0] - inventory_before[0]) / 10**18:+} WETH,",
            f"{Decimal(inventory_after[1] - inventory_before[1]) / 10**6:+} USDC",
        )

        risk = await operator.risk_book()
        for line in (risk.get("inventory") or {}).get("lines", []):
            print(
                "inventory book:",
                line["instrument"],
                "wallet",
                line["wallet_position"],
                "hedges",
                line["hedge_position"],
                "net",
                line["net_position"],
                "P&L",
                line["pnl"],
            )
        report = await operator.audit_verify()
        print("audit ok:", report.get("ok"), "problems:", report.get("problems", [])[:3])
        return 0 if report.get("ok") and settled == "settled" else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--rpc", default="http://127.0.0.1:8545")
    parser.add_argument("--quantity", default="8")
    parser.add_argument("--limit", default="2750")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.gateway, args.rpc, args.quantity, args.limit)))
