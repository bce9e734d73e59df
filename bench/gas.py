"""Gas of on-chain settlement from real anvil receipts, against a plain ERC-20 transfer pair
measured in the same run.

* ``gas_per_trade``: ``Settlement.settle_pairs`` (the gateway's call for a batch of paired
  trades) with 1, 8 and 32 matched WETH/USDC spot trades
  between distinct MarginWallets (each trade = a signed buy and a signed sell, fully filled),
  the wallets' first trade (buyers funded only with USDC, sellers only with WETH: each
  receives a token it was never funded with; the factory seeded every wallet with 1 base unit
  of WETH and USDC, so those balance slots are non-zero, not fresh); ``gas_per_trade_repeat``:
  the same wallets trading back (warm). Per trade = receipt ``gasUsed`` / trades (the 21,000
  intrinsic gas included).
* ``unseeded``: the same first / repeat batches in the same run with the factory's seed list
  emptied (wallets hold nothing but their funding: the first trade writes two fresh balance
  slots per trade, the trade back clears two slots and earns their refunds).
* ``wallet_creation``: gas of ``create_wallet_for`` (receipt) with the seeding (1 unit of WETH
  and of USDC to the new wallet) and without it (empty seed list): where the first-trade
  saving went.
* ``iron_condor_4_legs``: one batch in which a 4-leg iron condor strategy (signed by one
  owner) is matched against the mirrored condor of another: 8 option legs, 2 signatures.
* ``baseline``: the floor a trade could cost without any checks: two plain ERC-20 transfers
  (base one way, quote the other), each its own transaction, to recipients holding none of
  the token yet (``cold``) and again (``warm``).
* ``netted``: the same trades laid out every buy before every sell, so that the batch is not
  paired and settles through ``Settlement.settle`` and its hub (the path of batches with swaps,
  strategies or options), at the sizes above 1; ``paired_vs_netted_repeat`` is the ratio.
* ``sizes``: deployed runtime bytes of MarginWallet (a wallet the factory made),
  Settlement, PriceOracle and WalletFactory against EIP-170's 24,576-byte limit, and the size
  of the MarginWallet blueprint (ERC-5202 preamble + initcode: a contract too, so the same
  limit applies).
* ``trading_key``: the same spot trades as ``gas_per_trade`` (first trade and trade back) in
  two fresh sets of wallets in one run: every order owner-signed, and every seller's order
  signed by a trading key the seller authorised with an instrument allow-list and a maximum
  notional. The difference per key-signed order is held to at most +5,000 gas.
* ``eip1271_safe``: one trade whose buyer wallet is owned by a 2-of-3 Safe 1.4.1 (its
  owners' signatures travel in ``Batch.signatures`` and the wallet asks the Safe through
  EIP-1271), against the same trade with an EOA-owned buyer in the same run.

* ``breakdown_32``: where a trade's gas goes in the 32-trade batch (first trade and trade
  back), from ``debug_traceTransaction`` (callTracer): each call frame's own gas (what it used
  minus its children; a CALL's cold-account charge counts in the caller) summed per
  contract role and function, per trade; plus the intrinsic gas and the calldata gas.
  ``events`` is the log gas inside those frames (``Traded`` from the Settlement, ``Transfer``
  from the tokens); ``settle_net_of_refunds`` is the Settlement's own code, its cold calls
  into each wallet and its events, after the EIP-2200 refunds of the transaction.
* ``l1_data_fee``: the same 32-trade batch (first and back) on a second anvil started with
  ``--optimism``, per trade, against the plain transfer pair on the same node: the receipts'
  ``l1Fee`` / ``l1GasUsed`` when the node reports them; anvil 1.7.1 does not, so the bench
  computes them with the OP-stack Ecotone formula from each signed transaction (``source``
  says which), and gives the signed size and its zlib size (what Fjord's FastLZ estimate
  tracks).

Prints JSON. Usage: ``python bench/gas.py [--sizes 1,8,32] [--key-trades 8] [--no-l1]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402
from eth_account.signers.local import LocalAccount  # noqa: E402
from eth_utils import keccak  # noqa: E402
from web3 import Web3  # noqa: E402
from web3.types import Wei  # noqa: E402

from gateway.chain import settlement_abi as abi  # noqa: E402
from gateway.chain import tokens  # noqa: E402
from gateway.chain.anvil import Anvil, AnvilConfig, rpc_call  # noqa: E402
from gateway.chain.artifacts import compile_contract  # noqa: E402
from gateway.chain.deploy import (  # noqa: E402
    Deployment,
    create_wallet,
    deploy_all,
    factory_contract,
    register_option,
    settlement_contract,
    wallet_contract,
)
from gateway.chain.safe import create_safe, safe_message_hash, sign_safe_message  # noqa: E402
from gateway.chain.transactions import Sender, connect  # noqa: E402
from gateway.settlement import eip712  # noqa: E402
from gateway.settlement.batch_builder import settle_function  # noqa: E402
from gateway.settlement.eip712 import Leg, Order, Strategy  # noqa: E402

PRICE = 3_000 * 10**6  # USDC per WETH
AMOUNT = 10**18  # 1 WETH per trade
USDC_FUNDING = 100_000 * 10**6
WETH_FUNDING = 10 * 10**18
EIP170_LIMIT = 24_576  # bytes of deployed code (EIP-170)
EIP3860_LIMIT = 49_152  # bytes of initcode (EIP-3860)
KEY_EXTRA_GAS_LIMIT = 5_000  # the requirement: per key-signed order vs owner-signed
KEY_MAX_NOTIONAL = 1_000_000 * 10**6  # the bench key's limit per order, in USDC units


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
    w3: Web3,
    d: Deployment,
    pairs: list[tuple[Trader, Trader]],
    nonce: int,
    batch_id: int,
    signers: dict[str, LocalAccount] | None = None,
    netted: bool = False,
) -> abi.BatchBuilder:
    """One trade per pair; ``signers`` (wallet -> key) signs for a wallet instead of its
    owner (a trading key). The two sides of each trade are neighbours, so the batch settles
    paired (wallet to wallet); ``netted`` lays out every buy before every sell instead, so
    that (from two trades up) the same trades settle through the Settlement's hub."""
    chain_id = w3.eth.chain_id
    spot = abi.Instrument.spot(d.weth, d.usdc)
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 3600
    quote = abi.quote_amount(AMOUNT, PRICE, 18)
    signers = signers or {}
    builder = abi.BatchBuilder(batch_id)
    buys: list[tuple[str, Order, bytes]] = []
    sells: list[tuple[str, Order, bytes]] = []
    for buyer, seller in pairs:
        buy = Order(spot.id, True, AMOUNT, PRICE, nonce, deadline)
        sell = Order(spot.id, False, AMOUNT, PRICE, nonce, deadline)
        buy_key = signers.get(buyer.wallet, buyer.owner).key
        sell_key = signers.get(seller.wallet, seller.owner).key
        buys.append((buyer.wallet, buy, eip712.sign_order(buy, buy_key, chain_id, buyer.wallet)))
        sells.append(
            (seller.wallet, sell, eip712.sign_order(sell, sell_key, chain_id, seller.wallet))
        )
    sides = buys + sells if netted else [x for pair in zip(buys, sells, strict=True) for x in pair]
    for wallet, order, sig in sides:
        builder.add_order(wallet, spot, order, sig, AMOUNT, quote)
    return builder


def settle_receipt(operator: Sender, d: Deployment, batch: abi.BatchBuilder) -> Any:
    """Settle the batch as the gateway does: ``settle_pairs`` when it is paired trades laid
    out as pairs, else ``settle``."""
    return operator.transact(settle_function(settlement_contract(operator.w3, d), batch))


def settle(operator: Sender, d: Deployment, batch: abi.BatchBuilder) -> int:
    return int(settle_receipt(operator, d, batch)["gasUsed"])


def tx_hash_hex(receipt: Any) -> str:
    h = receipt["transactionHash"]
    text = h.hex() if isinstance(h, bytes | bytearray) else str(h)
    return text if text.startswith("0x") else "0x" + text


def calldata_gas(data: bytes) -> int:
    """EIP-2028: 16 gas per non-zero calldata byte, 4 per zero byte."""
    return sum(16 if b else 4 for b in data)


def selector_names(*abis: list[dict[str, Any]]) -> dict[str, str]:
    """4-byte selector (0x-hex) -> function name, from ABIs."""
    out: dict[str, str] = {}
    for entries in abis:
        for item in entries:
            if item.get("type") != "function":
                continue
            types = ",".join(_abi_type(i) for i in item.get("inputs", []))
            out["0x" + keccak(text=f"{item['name']}({types})")[:4].hex()] = item["name"]
    return out


def _abi_type(param: dict[str, Any]) -> str:
    t = str(param["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + t[5:]
    return t


def breakdown(
    rpc_url: str, receipt: Any, trades: int, roles: dict[str, str], names: dict[str, str]
) -> dict[str, Any]:
    """Per-trade gas of one settle transaction by (role, function), from the callTracer."""
    trace = rpc_call(
        rpc_url,
        "debug_traceTransaction",
        [tx_hash_hex(receipt), {"tracer": "callTracer", "tracerConfig": {"withLog": True}}],
        timeout=300,
    )
    own: dict[str, int] = {}
    calls: dict[str, int] = {}
    events: dict[str, int] = {}

    def walk(frame: dict[str, Any], top: bool) -> None:
        used = int(frame.get("gasUsed", "0x0"), 16)
        children = frame.get("calls", [])
        child_gas = sum(int(c.get("gasUsed", "0x0"), 16) for c in children)
        role = roles.get(str(frame.get("to", "")).lower(), "other")
        selector = str(frame.get("input", "0x"))[:10]
        if role == "ecrecover":
            label = "ecrecover (precompile)"
        else:
            label = f"{role}.{names.get(selector, selector)}"
        if top:
            label = "settle_net_of_refunds"
        own[label] = own.get(label, 0) + used - child_gas
        calls[label] = calls.get(label, 0) + 1
        for log in frame.get("logs", []):
            data_bytes = (len(log.get("data", "0x")) - 2) // 2
            gas = 375 + 375 * len(log.get("topics", [])) + 8 * data_bytes
            key = f"{role} log{len(log.get('topics', [])) - 1}"
            events[key] = events.get(key, 0) + gas
        for child in children:
            walk(child, False)

    walk(trace, True)
    calldata = calldata_gas(bytes.fromhex(str(trace["input"])[2:]))
    own["settle_net_of_refunds"] -= 21_000 + calldata
    own["intrinsic_21000"] = 21_000
    own["calldata"] = calldata
    per_trade = {k: round(v / trades) for k, v in sorted(own.items(), key=lambda kv: -kv[1])}
    return {
        "gas_used": int(receipt["gasUsed"]),
        "per_trade": per_trade,
        "calls_per_trade": {k: round(calls[k] / trades, 2) for k in per_trade if k in calls},
        "events_per_trade": {k: round(v / trades) for k, v in events.items()},
    }


def trace_roles(d: Deployment, traders: list[Trader]) -> dict[str, str]:
    roles = {d.settlement.lower(): "Settlement", d.weth.lower(): "WETH", d.usdc.lower(): "USDC"}
    roles["0x0000000000000000000000000000000000000001"] = "ecrecover"
    for t in traders:
        roles[t.wallet.lower()] = "wallet"
    return roles


def measure_breakdown(rpc_url: str, operator: Sender, d: Deployment, n: int) -> dict[str, Any]:
    """The ``n``-trade batch (first, then back) traced per item."""
    buyers = open_traders(operator, d, f"trace{n}/buy", n, usdc=USDC_FUNDING, weth=0)
    sellers = open_traders(operator, d, f"trace{n}/sell", n, usdc=0, weth=WETH_FUNDING)
    pairs = list(zip(buyers, sellers, strict=True))
    first = settle_receipt(operator, d, spot_batch(operator.w3, d, pairs, 1, 7000 + n))
    back = [(s, b) for b, s in pairs]
    again = settle_receipt(operator, d, spot_batch(operator.w3, d, back, 2, 8000 + n))
    roles = trace_roles(d, buyers + sellers)
    names = selector_names(
        compile_contract("MarginWallet").abi,
        compile_contract("Settlement").abi,
        compile_contract("TestUSDC").abi,
    )
    return {
        "trades": n,
        "first": breakdown(rpc_url, first, n, roles, names),
        "repeat": breakdown(rpc_url, again, n, roles, names),
    }


# OP-stack Ecotone L1 fee parameters used when the node does not fill the receipt fields
# (anvil 1.7.1 with --optimism does not): OP mainnet's scalars, and an L1 at 10 gwei base fee
# with blobs at 1 wei. l1Fee = txDataGas * (16 * base_scalar * l1_base_fee
# + blob_scalar * blob_base_fee) / 16e6, with txDataGas = 16 per non-zero and 4 per zero byte
# of the signed transaction (Ecotone's l1GasUsed).
L1_BASE_FEE_WEI = 10 * 10**9
L1_BLOB_BASE_FEE_WEI = 1
L1_BASE_FEE_SCALAR = 5_227
L1_BLOB_BASE_FEE_SCALAR = 1_014_213


def l1_fields(rpc_url: str, receipt: Any) -> dict[str, int]:
    """The OP-stack fee of a transaction: the receipt's ``l1Fee`` / ``l1GasUsed`` when the node
    reports them, else computed with Ecotone's formula from the signed transaction's bytes."""
    tx_hash = tx_hash_hex(receipt)
    raw = rpc_call(rpc_url, "eth_getTransactionReceipt", [tx_hash], timeout=30)
    signed = bytes.fromhex(
        str(rpc_call(rpc_url, "eth_getRawTransactionByHash", [tx_hash], timeout=30))[2:]
    )
    out = {
        "gasUsed": int(raw["gasUsed"], 16),
        "signed_tx_bytes": len(signed),
        "signed_tx_zlib_bytes": len(zlib.compress(signed, 9)),
    }
    if raw.get("l1Fee") is not None:
        out["l1Fee"] = int(raw["l1Fee"], 16)
        out["l1GasUsed"] = int(raw.get("l1GasUsed") or "0x0", 16)
        out["from_receipt"] = 1
        return out
    data_gas = calldata_gas(signed)
    scaled = 16 * L1_BASE_FEE_SCALAR * L1_BASE_FEE_WEI
    scaled += L1_BLOB_BASE_FEE_SCALAR * L1_BLOB_BASE_FEE_WEI
    out["l1GasUsed"] = data_gas
    out["l1Fee"] = data_gas * scaled // (16 * 10**6)
    out["from_receipt"] = 0
    return out


def measure_l1_fee(anvil_bin: str | None, n: int) -> dict[str, Any]:
    """``n`` trades (first, then back) on an anvil started with ``--optimism``."""
    with Anvil(AnvilConfig(binary=anvil_bin, extra_args=("--optimism",))) as node:
        w3 = connect(node.rpc_url)
        dev = node.dev_accounts()
        operator = Sender(w3, dev[0])
        d = deploy_all(operator)
        tokens.mint(operator, d.weth, dev[1].address, 10 * AMOUNT)
        tokens.mint(operator, d.usdc, dev[2].address, 10 * PRICE)
        weth, usdc = tokens.token(w3, d.weth), tokens.token(w3, d.usdc)
        quote = abi.quote_amount(AMOUNT, PRICE, 18)
        t1 = Sender(w3, dev[1]).transact(weth.functions.transfer(dev[2].address, AMOUNT))
        t2 = Sender(w3, dev[2]).transact(usdc.functions.transfer(dev[1].address, quote))
        pair = [l1_fields(node.rpc_url, t1), l1_fields(node.rpc_url, t2)]
        buyers = open_traders(operator, d, f"l1{n}/buy", n, usdc=USDC_FUNDING, weth=0)
        sellers = open_traders(operator, d, f"l1{n}/sell", n, usdc=0, weth=WETH_FUNDING)
        pairs = list(zip(buyers, sellers, strict=True))
        first = settle_receipt(operator, d, spot_batch(w3, d, pairs, 1, 9000 + n))
        back = [(s, b) for b, s in pairs]
        again = settle_receipt(operator, d, spot_batch(w3, d, back, 2, 9500 + n))
        batches = {
            "first": l1_fields(node.rpc_url, first),
            "repeat": l1_fields(node.rpc_url, again),
        }
        client = rpc_call(node.rpc_url, "web3_clientVersion")
    pair_fee = sum(p["l1Fee"] for p in pair)
    pair_l1_gas = sum(p["l1GasUsed"] for p in pair)
    source = (
        "receipt"
        if all(f["from_receipt"] for f in [*pair, *batches.values()])
        else (
            "computed: the node's receipts carry no l1Fee; Ecotone formula over the signed tx, "
            f"l1 base fee {L1_BASE_FEE_WEI} wei, blob base fee {L1_BLOB_BASE_FEE_WEI} wei, scalars "
            f"{L1_BASE_FEE_SCALAR} / {L1_BLOB_BASE_FEE_SCALAR} (OP mainnet)"
        )
    )
    result: dict[str, Any] = {"trades": n, "client": client, "source": source}
    for label, fields in batches.items():
        result[label] = {
            "l1_fee_wei_per_trade": fields["l1Fee"] // n,
            "l1_gas_used_per_trade": fields["l1GasUsed"] // n,
            "signed_tx_bytes_per_trade": fields["signed_tx_bytes"] // n,
            "signed_tx_zlib_bytes_per_trade": fields["signed_tx_zlib_bytes"] // n,
            "l2_gas_per_trade": fields["gasUsed"] // n,
            "ratio_l1_fee_vs_transfer_pair": round(fields["l1Fee"] / n / pair_fee, 3)
            if pair_fee
            else None,
        }
    result["baseline_erc20_transfer_pair"] = {
        "l1_fee_wei": pair_fee,
        "l1_gas_used": pair_l1_gas,
        "signed_tx_bytes": sum(p["signed_tx_bytes"] for p in pair),
    }
    return result


def measure_spot(
    operator: Sender, d: Deployment, sizes: list[int], label: str = "", netted: bool = False
) -> dict[str, Any]:
    cold: dict[str, int] = {}
    repeat: dict[str, int] = {}
    totals: dict[str, dict[str, int]] = {}
    for n in sizes:
        # buyers hold only USDC and sellers only WETH, so the first trade credits each wallet
        # a token it never held (like the cold transfer pair); the trade back is warm
        buyers = open_traders(operator, d, f"{label}spot{n}/buy", n, usdc=USDC_FUNDING, weth=0)
        sellers = open_traders(operator, d, f"{label}spot{n}/sell", n, usdc=0, weth=WETH_FUNDING)
        pairs = list(zip(buyers, sellers, strict=True))
        first = settle(operator, d, spot_batch(operator.w3, d, pairs, 1, 1000 + n, netted=netted))
        # trade back the other way so balances stay funded; same wallets, new nonce
        back = [(s, b) for b, s in pairs]
        again = settle(operator, d, spot_batch(operator.w3, d, back, 2, 2000 + n, netted=netted))
        cold[str(n)] = first // n
        repeat[str(n)] = again // n
        totals[str(n)] = {"first": first, "repeat": again}
    return {"gas_per_trade": cold, "gas_per_trade_repeat": repeat, "batch_gas": totals}


def set_seeding(operator: Sender, d: Deployment, on: bool) -> None:
    """List WETH and USDC as the factory's seed tokens, or empty the list."""
    seed = [d.weth, d.usdc] if on else []
    operator.transact(factory_contract(operator.w3, d).functions.set_seed_tokens(seed))


def measure_wallet_creation(operator: Sender, d: Deployment) -> dict[str, Any]:
    """Receipt gas of ``create_wallet_for`` with and without the seeding (two wallets each)."""
    factory = factory_contract(operator.w3, d)
    gas: dict[str, int] = {}
    for label, on in (("unseeded", False), ("seeded", True)):
        set_seeding(operator, d, on)
        used = []
        for i in range(2):
            owner = owner_account(f"create/{label}/{i}").address
            receipt = operator.transact(factory.functions.create_wallet_for(owner))
            used.append(int(receipt["gasUsed"]))
        gas[label] = max(used)
    set_seeding(operator, d, True)
    return {
        "gas_seeded": gas["seeded"],
        "gas_unseeded": gas["unseeded"],
        "extra_gas_seeding": gas["seeded"] - gas["unseeded"],
        "seed_tokens": 2,
    }


def measure_unseeded(operator: Sender, d: Deployment, sizes: list[int]) -> dict[str, Any]:
    """``measure_spot`` with the factory's seed list emptied (wallets start with nothing)."""
    set_seeding(operator, d, False)
    try:
        spot = measure_spot(operator, d, sizes, label="unseeded/")
    finally:
        set_seeding(operator, d, True)
    return {
        "gas_per_trade": spot["gas_per_trade"],
        "gas_per_trade_repeat": spot["gas_per_trade_repeat"],
    }


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
    return settle(operator, d, builder)


def contract_sizes(operator: Sender, d: Deployment) -> dict[str, Any]:
    """Deployed runtime sizes (bytes) and the EIP-170 limit they must stay under."""
    w3 = operator.w3
    wallet = create_wallet(operator, d, owner_account("sizes").address)
    deployed = {
        "MarginWallet": wallet,
        "Settlement": d.settlement,
        "PriceOracle": d.oracle,
        "WalletFactory": d.wallet_factory,
        "MarginWallet_blueprint": d.wallet_blueprint,
    }
    sizes: dict[str, Any] = {name: len(w3.eth.get_code(a)) for name, a in deployed.items()}
    blueprint = compile_contract("MarginWallet").blueprint_bytecode
    sizes["MarginWallet_initcode"] = len(compile_contract("MarginWallet").bytecode)
    sizes["MarginWallet_blueprint_initcode"] = len(blueprint or b"")
    sizes["eip170_limit"] = EIP170_LIMIT
    sizes["eip3860_initcode_limit"] = EIP3860_LIMIT
    sizes["all_within_eip170"] = all(sizes[name] <= EIP170_LIMIT for name in deployed)
    return sizes


def fund_gas(operator: Sender, address: str) -> None:
    """Give an owner ETH for its own transactions (authorising a key)."""
    operator.send({"to": Web3.to_checksum_address(address), "value": Wei(10**17)})


def measure_trading_key(operator: Sender, d: Deployment, n: int) -> dict[str, Any]:
    """Owner-signed vs key-signed sellers, ``n`` trades each, fresh wallets for both."""
    w3 = operator.w3
    spot_id = abi.Instrument.spot(d.weth, d.usdc).id
    expiry = int(w3.eth.get_block("latest")["timestamp"]) + 30 * 86400
    batches: dict[str, dict[str, int]] = {}
    for path in ("owner", "key"):
        buyers = open_traders(operator, d, f"{path}{n}/buy", n, usdc=USDC_FUNDING, weth=0)
        sellers = open_traders(operator, d, f"{path}{n}/sell", n, usdc=0, weth=WETH_FUNDING)
        signers: dict[str, LocalAccount] = {}
        if path == "key":
            for seller in sellers:
                key = owner_account(f"key/{seller.owner.address}")
                fund_gas(operator, seller.owner.address)
                Sender(w3, seller.owner).transact(
                    wallet_contract(w3, seller.wallet).functions.authorise_key(
                        key.address, expiry, False, KEY_MAX_NOTIONAL, [spot_id]
                    )
                )
                signers[seller.wallet] = key
        pairs = list(zip(buyers, sellers, strict=True))
        first = settle(operator, d, spot_batch(w3, d, pairs, 1, 4000 + n, signers))
        back = [(s, b) for b, s in pairs]
        again = settle(operator, d, spot_batch(w3, d, back, 2, 5000 + n, signers))
        batches[path] = {"first": first, "repeat": again}
    extra_first = (batches["key"]["first"] - batches["owner"]["first"]) // n
    extra_repeat = (batches["key"]["repeat"] - batches["owner"]["repeat"]) // n
    return {
        "trades": n,
        "key_signed_orders": n,
        "gas_per_trade_owner": batches["owner"]["first"] // n,
        "gas_per_trade_key": batches["key"]["first"] // n,
        "gas_per_trade_repeat_owner": batches["owner"]["repeat"] // n,
        "gas_per_trade_repeat_key": batches["key"]["repeat"] // n,
        "extra_gas_per_key_order": extra_first,
        "extra_gas_per_key_order_repeat": extra_repeat,
        "limit_extra_gas_per_key_order": KEY_EXTRA_GAS_LIMIT,
        "within_limit": max(extra_first, extra_repeat) <= KEY_EXTRA_GAS_LIMIT,
        "batch_gas": batches,
    }


def measure_safe(operator: Sender, d: Deployment) -> dict[str, Any]:
    """One trade with a 2-of-3 Safe's wallet as buyer vs the same with an EOA owner."""
    w3 = operator.w3
    infra = d.safe
    assert infra is not None, "deploy_all deploys the Safe 1.4.1 contracts"
    chain_id = w3.eth.chain_id
    owners = [owner_account(f"safe/{i}") for i in range(3)]
    safe = create_safe(operator, infra, [o.address for o in owners], threshold=2)
    safe_wallet = create_wallet(operator, d, safe)
    tokens.mint(operator, d.usdc, safe_wallet, USDC_FUNDING)
    [eoa_buyer] = open_traders(operator, d, "safe/eoa-buy", 1, usdc=USDC_FUNDING, weth=0)
    sellers = open_traders(operator, d, "safe/sell", 2, usdc=0, weth=WETH_FUNDING)
    spot = abi.Instrument.spot(d.weth, d.usdc)
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 3600
    quote = abi.quote_amount(AMOUNT, PRICE, 18)
    gas: dict[str, int] = {}
    signature_bytes = 0
    for label, wallet, seller in (
        ("owner", eoa_buyer.wallet, sellers[0]),
        ("safe", safe_wallet, sellers[1]),
    ):
        buy = Order(spot.id, True, AMOUNT, PRICE, 1, deadline)
        sell = Order(spot.id, False, AMOUNT, PRICE, 1, deadline)
        digest = eip712.order_digest(buy, chain_id, wallet)
        if label == "safe":
            buy_sig = sign_safe_message(
                [o.key for o in owners[:2]], safe_message_hash(chain_id, safe, digest)
            )
            signature_bytes = len(buy_sig)
        else:
            buy_sig = eip712.sign_digest(digest, eoa_buyer.owner.key)
        sell_sig = eip712.sign_order(sell, seller.owner.key, chain_id, seller.wallet)
        batch = (
            abi.BatchBuilder(6000 + len(gas))
            .add_order(wallet, spot, buy, buy_sig, AMOUNT, quote)
            .add_order(seller.wallet, spot, sell, sell_sig, AMOUNT, quote)
        )
        gas[label] = settle(operator, d, batch)
    return {
        "threshold": "2-of-3",
        "signature_bytes": signature_bytes,
        "gas_trade_owner": gas["owner"],
        "gas_trade_safe": gas["safe"],
        "extra_gas": gas["safe"] - gas["owner"],
    }


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
    parser.add_argument("--key-trades", type=int, default=8, help="trades per trading-key batch")
    parser.add_argument("--trace-trades", type=int, default=32, help="trades in the traced batch")
    parser.add_argument("--no-l1", action="store_true", help="skip the --optimism L1 fee run")
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
        netted = measure_spot(operator, d, [n for n in sizes if n > 1], "netted/", netted=True)
        unseeded = measure_unseeded(operator, d, sizes)
        creation = measure_wallet_creation(operator, d)
        condor = measure_iron_condor(operator, d)
        sizes_bytes = contract_sizes(operator, d)
        key_path = measure_trading_key(operator, d, args.key_trades)
        safe_path = measure_safe(operator, d)
        traced = measure_breakdown(node.rpc_url, operator, d, args.trace_trades)
        client = rpc_call(node.rpc_url, "web3_clientVersion")
    l1 = None if args.no_l1 else measure_l1_fee(args.anvil_bin, args.trace_trades)

    pair_cold = baseline["erc20_transfer_pair_cold"]
    pair_warm = baseline["erc20_transfer_pair_warm"]
    result = {
        **spot,
        "netted": {
            "gas_per_trade": netted["gas_per_trade"],
            "gas_per_trade_repeat": netted["gas_per_trade_repeat"],
        },
        "paired_vs_netted_repeat": {
            n: round(spot["gas_per_trade_repeat"][n] / g, 3)
            for n, g in netted["gas_per_trade_repeat"].items()
        },
        "unseeded": unseeded,
        "wallet_creation": creation,
        "iron_condor_4_legs": condor,
        "baseline": baseline,
        "ratio_vs_transfer_pair": {
            n: round(g / pair_cold, 3) for n, g in spot["gas_per_trade"].items()
        },
        "ratio_repeat_vs_warm_transfer_pair": {
            n: round(g / pair_warm, 3) for n, g in spot["gas_per_trade_repeat"].items()
        },
        "sizes": sizes_bytes,
        "trading_key": key_path,
        "eip1271_safe": safe_path,
        f"breakdown_{args.trace_trades}": traced,
        "l1_data_fee": l1,
        "notes": {
            "trade": "1 WETH for 3,000 USDC, two EIP-712 signed orders, fully filled",
            "per_trade": "receipt gasUsed / trades, 21,000 intrinsic gas included",
            "netted": "the same trades with every buy before every sell: settled through the "
            "Settlement's hub (four transfers and a finish per wallet) instead of paired",
            "unseeded": "factory seed list emptied: first / repeat per trade, same sizes",
            "wallet_creation": "create_wallet_for receipt gas; seeded = 1 unit of WETH and "
            "USDC from the factory's reserve to the new wallet",
            "iron_condor_4_legs": "one batch: a 4-leg condor vs its mirror (8 legs, 2 signatures)",
            "sizes": "bytes of deployed code; blueprint = ERC-5202 preamble + initcode",
            "trading_key": "sellers' orders signed by a key with a 1-instrument allow-list and "
            "a max notional; extra = (key batch - owner batch) / key-signed orders",
            "eip1271_safe": "buyer wallet owned by a 2-of-3 Safe 1.4.1 (EIP-1271 through its "
            "CompatibilityFallbackHandler) vs an EOA-owned buyer, one trade each",
            "breakdown": "callTracer: each frame's own gas per trade by role.function; "
            "settle_net_of_refunds = Settlement code + cold calls into wallets + its events "
            "- refunds",
            "l1_data_fee": "second anvil with --optimism; l1Fee / l1GasUsed from the receipts",
        },
        "client": client,
        "seconds": round(time.monotonic() - started, 2),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
