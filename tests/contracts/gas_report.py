"""A quick boa ESTIMATE of settlement batch gas (boa under-charges storage writes across calls;
the real numbers come from anvil receipts: bench/gas.py). Receipt-like estimate:
21,000 + calldata (EIP-2028/7623 floor ignored) + execution - refund (capped at 1/5).

Run: .venv/bin/python -m tests.contracts.gas_report
"""

from __future__ import annotations

import boa

from tests.contracts.conftest import USDC, WETH, batch, build_world, order_item

PRICE = 3000 * USDC


def receipt_gas(contract, calldata: bytes) -> int:
    comp = contract._computation
    used = comp.get_gas_used()
    refund = comp.get_gas_refund()
    data = sum(4 if b == 0 else 16 for b in calldata)
    total = 21_000 + data + used
    return total - min(refund, total // 5)


def measure(n_trades: int, shape: str) -> dict:
    world = build_world()
    traders = []
    if shape == "distinct":
        for i in range(n_trades):
            buyer = world.new_trader(1000 + 2 * i, usdc=1_000_000 * USDC)
            seller = world.new_trader(1001 + 2 * i, weth=100 * WETH)
            traders.append((buyer, seller))
    else:  # one market maker against n takers
        mm = world.new_trader(999, usdc=10_000_000 * USDC, weth=1_000 * WETH)
        for i in range(n_trades):
            traders.append((world.new_trader(1000 + i, usdc=1_000_000 * USDC), mm))

    # warm-up batch so every wallet has used a nonce word and holds both tokens
    def build(batch_id: int):
        items = []
        for buyer, seller in traders:
            ob = buyer.order(world.spot, True, WETH, PRICE)
            os_ = seller.order(world.spot, False, WETH, PRICE)
            items += [
                order_item(buyer, world.spot, ob, WETH, PRICE),
                order_item(seller, world.spot, os_, WETH, PRICE),
            ]
        return batch(items, batch_id=batch_id)

    world.settle(build(1))
    b = build(2)
    with boa.env.prank(world.operator):
        world.settlement.settle(b)
    calldata = world.settlement.settle.prepare_calldata(b)
    gas = receipt_gas(world.settlement, calldata)
    return {
        "shape": shape,
        "trades": n_trades,
        "gas": gas,
        "per_trade": gas // n_trades,
        "calldata_bytes": len(calldata),
    }


if __name__ == "__main__":
    for shape in ("distinct", "maker"):
        print(measure(32, shape))
