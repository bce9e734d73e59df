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
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from eth_account import Account
from isthmus_client import ApiError, AsyncIsthmus, NonceStore, OperatorToken, Order, Signer
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
from gateway.domain.orders import OrderSignature
from gateway.settlement import eip712

STATE = Path(".isthmus/devnet")
WETH = 10**18
NO_LIMIT = 2**128 - 1


async def show(title: str, placing: Awaitable[Order]) -> Order | None:
    """Place an order and say what the gateway answered (its refusal's code, if it refused)."""
    try:
        order = await placing
    except ApiError as error:
        print(f"{title}: {error.status} {error.error_code}: {error.message}")
        return None
    print(f"{title}: {order.id} {order.status} filled {order.filled_quantity}")
    return order


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
    alice = Signer(alice_acct, create_wallet(deployer, d, alice_acct.address))
    carol_wallet = create_wallet(deployer, d, carol_acct.address)
    onchain = OnchainOrders(devnet_catalogue(), {"WETH": d.weth, "USDC": d.usdc})
    deadline = int(time.time()) + 3600
    nonce = int(time.time())

    def client(credential: OperatorToken | Signer) -> AsyncIsthmus:
        # the nonces are given with each order below: nothing kept on disk
        return AsyncIsthmus(gateway, credential, nonces=NonceStore(None), timeout=30)

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

    async with client(OperatorToken(operator_token)) as operator:
        # 2. the key signs in and trades for carol's wallet: it signs, it never withdraws
        sells: list[Order | None] = []
        async with client(Signer(key, carol_wallet)) as as_key:
            for n, (qty, price) in enumerate((("1", "2900"), ("5", "2900"), ("0.5", "3200"))):
                placing = as_key.place_order(
                    "WETH/USDC",
                    "sell",
                    qty,
                    price=price,
                    client_order_id=f"key-sell-{nonce}-{n}",
                    nonce=nonce + n,
                    deadline=deadline,
                )
                sells.append(await show(f"key sells {qty} WETH at {price}", placing))

        # 3. a 2-of-3 Safe owns a wallet; two owners sign a sell (EIP-1271: the client signs
        #    with one key, so the Safe's signature is made here and the body sent as signed)
        infra = d.safe
        assert isinstance(infra, SafeInfrastructure)
        owners = dev[1:4]
        safe = create_safe(deployer, infra, [o.address for o in owners], 2, salt_nonce=nonce)
        safe_wallet = create_wallet(deployer, d, safe)
        tokens.mint(deployer, d.weth, safe_wallet, 2 * WETH)
        body: dict[str, Any] = {
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
        async with client(Signer(owners[0], safe_wallet)) as safe_owner:
            await show("2-of-3 Safe sells 1 WETH", safe_owner.submit(body))

        # 4. alice buys both with her own signature
        async with client(alice) as alice_app:
            bought = await show(
                "alice buys 2 WETH",
                alice_app.place_order(
                    "WETH/USDC",
                    "buy",
                    "2",
                    price="2900",
                    client_order_id=f"alice-buy-{nonce}",
                    nonce=nonce,
                    deadline=deadline,
                ),
            )
        assert bought is not None
        fills = await operator.wait_settled(bought.id, timeout=60)
        order = await operator.get_order(bought.id)
        print("alice's order:", order.status, "settlement:", order.settlement)
        for fill in fills:
            print("  fill", fill.quantity, "@", fill.price, fill.venue, fill.settlement)

        # 5. carol revokes the key; its resting sell is cancelled
        carol.transact(wallet.functions.revoke_key(key.address))
        resting = sells[2]
        assert resting is not None
        for _ in range(30):
            revoked = await operator.get_order(resting.id)
            if revoked.status == "cancelled":
                break
            await asyncio.sleep(1)  # a person waiting for the gateway, not a test
        print(
            "the key's resting sell after revocation:",
            revoked.status,
            revoked.status_reason or "",
        )

        # 6. the auditor
        report = await operator.audit_verify()
        signed = {(f["signed_by"], f["ok"]) for f in report.get("fills", [])}
        print("audit ok:", report.get("ok"), "signers:", sorted(signed))
    return 0


if __name__ == "__main__":
    gateway_url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    rpc_url = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8545"
    sys.exit(asyncio.run(main(gateway_url, rpc_url)))
