"""Gas of on-chain settlement from real anvil receipts, against a plain ERC-20 transfer pair
measured in the same run.

* ``gas_per_trade``: ``Settlement.settle`` with 1, 8 and 32 matched WETH/USDC spot trades
  between distinct MarginWallets (each trade = a signed buy and a signed sell, fully filled),
  the wallets' first trade (buyers held only USDC, sellers only WETH: each receives a token it
  never held, and its nonce bitmap word is fresh); ``gas_per_trade_repeat``: the same wallets
  trading back (warm). Per trade = receipt ``gasUsed`` / trades (the 21,000 intrinsic gas included).
* ``iron_condor_4_legs``: one batch in which a 4-leg iron condor strategy (signed by one
  owner) is matched against the mirrored condor of another: 8 option legs, 2 signatures.
* ``baseline``: the floor a trade could cost without any checks: two plain ERC-20 transfers
  (base one way, quote the other), each its own transaction, to recipients holding none of
  the token yet (``cold``) and again (``warm``).

Prints JSON. Usage: ``python bench/gas.py [--sizes 1,8,32]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402
from eth_account.signers.local import LocalAccount  # noqa: E402
from eth_utils import keccak  # noqa: E402
from web3 import Web3  # noqa: E402

from gateway.chain import settlement_abi as abi  # noqa: E402
from gateway.chain import tokens  # noqa: E402
from gateway.chain.anvil import Anvil, AnvilConfig, rpc_call  # noqa: E402
from gateway.chain.deploy import (  # noqa: E402
    Deployment,
    create_wallet,
    deploy_all,
    register_option,
    settlement_contract,
)
from gateway.chain.transactions import Sender, connect  # noqa: E402
from gateway.settlement import eip712  # noqa: E402
from gateway.settlement.eip712 import Leg, Order, Strategy  # noqa: E402

PRICE = 3_000 * 10**6  # USDC per WETH
AMOUNT = 10**18  # 1 WETH per trade
USDC_FUNDING = 100_000 * 10**6
WETH_FUNDING = 10 * 10**18


@dataclass(frozen=True)
class Trader:
    owner: LocalAccount
    wallet: str


def owner_account(label: str) -> LocalAccount:
    """A deterministic owner key (never funded with ETH: owners only sign)."""
    key: LocalAccount = Account.from_key(keccak(text=f"isthmus-bench/{label}"))
    return key


def open_traders(
    operator: Sender, d: Deployment, label: str, count: int, *, usdc: int, weth: int
) -> list[Trader]:
    """``count`` fresh wallets funded with only the given amounts (0: none of that token)."""
    traders = []
    for i in range(count):
        owner = owner_account(f"{label}/{i}")
        wallet = create_wallet(operator, d, owner.address)
        if usdc:
            tokens.mint(operator, d.usdc, wallet, usdc)
        if weth:
            tokens.mint(operator, d.weth, wallet, weth)
        traders.append(Trader(owner, wallet))
    return traders


def spot_batch(
    w3: Web3, d: Deployment, pairs: list[tuple[Trader, Trader]], nonce: int, batch_id: int
) -> tuple[Any, ...]:
    chain_id = w3.eth.chain_id
    spot = abi.Instrument.spot(d.weth, d.usdc)
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 3600
    quote = abi.quote_amount(AMOUNT, PRICE, 18)
    builder = abi.BatchBuilder(batch_id)
    for buyer, seller in pairs:
        buy = Order(spot.id, True, AMOUNT, PRICE, nonce, deadline)
        sell = Order(spot.id, False, AMOUNT, PRICE, nonce, deadline)
        buy_sig = eip712.sign_order(buy, buyer.owner.key, chain_id, buyer.wallet)
        sell_sig = eip712.sign_order(sell, seller.owner.key, chain_id, seller.wallet)
        builder.add_order(buyer.wallet, spot, buy, buy_sig, AMOUNT, quote)
        builder.add_order(seller.wallet, spot, sell, sell_sig, AMOUNT, quote)
    return builder.build()


def settle(operator: Sender, d: Deployment, batch: tuple[Any, ...]) -> int:
    receipt = operator.transact(settlement_contract(operator.w3, d).functions.settle(batch))
    return int(receipt["gasUsed"])


def measure_spot(operator: Sender, d: Deployment, sizes: list[int]) -> dict[str, Any]:
    cold: dict[str, int] = {}
    repeat: dict[str, int] = {}
    totals: dict[str, dict[str, int]] = {}
    for n in sizes:
        # buyers hold only USDC and sellers only WETH, so the first trade credits each wallet
        # a token it never held (like the cold transfer pair); the trade back is warm
        buyers = open_traders(operator, d, f"spot{n}/buy", n, usdc=USDC_FUNDING, weth=0)
        sellers = open_traders(operator, d, f"spot{n}/sell", n, usdc=0, weth=WETH_FUNDING)
        pairs = list(zip(buyers, sellers, strict=True))
        first = settle(operator, d, spot_batch(operator.w3, d, pairs, 1, 1000 + n))
        # trade back the other way so balances stay funded; same wallets, new nonce
        again = settle(
            operator, d, spot_batch(operator.w3, d, [(s, b) for b, s in pairs], 2, 2000 + n)
        )
        cold[str(n)] = first // n
        repeat[str(n)] = again // n
        totals[str(n)] = {"first": first, "repeat": again}
    return {"gas_per_trade": cold, "gas_per_trade_repeat": repeat, "batch_gas": totals}


def measure_iron_condor(operator: Sender, d: Deployment) -> int:
    w3 = operator.w3
    chain_id = w3.eth.chain_id
    expiry = int(w3.eth.get_block("latest")["timestamp"]) + 30 * 86400
    strikes = [2_500 * 10**6, 2_800 * 10**6, 3_200 * 10**6, 3_500 * 10**6]
    # short iron condor: +put 2500, -put 2800, -call 3200, +call 3500
    shape = [(strikes[0], False, True), (strikes[1], False, False)]
    shape += [(strikes[2], True, False), (strikes[3], True, True)]
    premiums = [20 * 10**6, 60 * 10**6, 70 * 10**6, 25 * 10**6]  # USDC per WETH
    instruments = []
    for strike, is_call, _ in shape:
        register_option(operator, d, strike, expiry, is_call)
        instruments.append(abi.Instrument.option(d.weth, d.usdc, strike, expiry, is_call))
    short_side, long_side = open_traders(operator, d, "condor", 2, usdc=USDC_FUNDING, weth=0)
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 3600
    quotes = [abi.quote_amount(AMOUNT, p, 18) for p in premiums]

    builder = abi.BatchBuilder(3000)
    for trader, flip in ((short_side, False), (long_side, True)):
        sides = [is_buy != flip for _, _, is_buy in shape]
        legs = tuple(Leg(ins.id, side, 1) for ins, side in zip(instruments, sides, strict=True))
        net = sum(q if leg.is_buy else -q for leg, q in zip(legs, premiums, strict=True))
        strategy = Strategy(legs, AMOUNT, net, 1, deadline)
        sig = eip712.sign_strategy(strategy, trader.owner.key, chain_id, trader.wallet)
        builder.add_strategy(trader.wallet, instruments, strategy, sig, AMOUNT, quotes)
    return settle(operator, d, builder.build())


def measure_transfer_pair(
    operator: Sender, d: Deployment, a: LocalAccount, b: LocalAccount
) -> dict[str, int]:
    """Seller ``a`` sends 1 WETH to ``b``; ``b`` sends 3,000 USDC to ``a``: two transactions."""
    w3 = operator.w3
    tokens.mint(operator, d.weth, a.address, 10 * AMOUNT)
    tokens.mint(operator, d.usdc, b.address, 10 * PRICE)
    weth, usdc = tokens.token(w3, d.weth), tokens.token(w3, d.usdc)
    seller, buyer = Sender(w3, a), Sender(w3, b)
    quote = abi.quote_amount(AMOUNT, PRICE, 18)
    result = {}
    for label in ("cold", "warm"):
        g1 = seller.transact(weth.functions.transfer(b.address, AMOUNT))["gasUsed"]
        g2 = buyer.transact(usdc.functions.transfer(a.address, quote))["gasUsed"]
        result[f"erc20_transfer_pair_{label}"] = int(g1) + int(g2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1,8,32", help="batch sizes (trades per batch)")
    parser.add_argument("--anvil-bin", default=None, help="anvil binary (default: node_modules)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]

    started = time.monotonic()
    with Anvil(AnvilConfig(binary=args.anvil_bin)) as node:
        w3 = connect(node.rpc_url)
        dev = node.dev_accounts()
        operator = Sender(w3, dev[0])
        d = deploy_all(operator)
        baseline = measure_transfer_pair(operator, d, dev[1], dev[2])
        spot = measure_spot(operator, d, sizes)
        condor = measure_iron_condor(operator, d)
        client = rpc_call(node.rpc_url, "web3_clientVersion")

    pair_cold = baseline["erc20_transfer_pair_cold"]
    pair_warm = baseline["erc20_transfer_pair_warm"]
    result = {
        **spot,
        "iron_condor_4_legs": condor,
        "baseline": baseline,
        "ratio_vs_transfer_pair": {
            n: round(g / pair_cold, 3) for n, g in spot["gas_per_trade"].items()
        },
        "ratio_repeat_vs_warm_transfer_pair": {
            n: round(g / pair_warm, 3) for n, g in spot["gas_per_trade_repeat"].items()
        },
        "notes": {
            "trade": "1 WETH for 3,000 USDC, two EIP-712 signed orders, fully filled",
            "per_trade": "receipt gasUsed / trades, 21,000 intrinsic gas included",
            "iron_condor_4_legs": "one batch: a 4-leg condor vs its mirror (8 legs, 2 signatures)",
        },
        "client": client,
        "seconds": round(time.monotonic() - started, 2),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
