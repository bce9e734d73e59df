"""The published Uniswap v2 contracts (``@uniswap/v2-core`` / ``v2-periphery`` builds):
deploy the factory (and router), create a pair and seed it with liquidity."""

from __future__ import annotations

from dataclasses import dataclass

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract
from web3.types import BlockIdentifier

from gateway.chain.artifacts import uniswap_v2_core, uniswap_v2_periphery
from gateway.chain.transactions import Sender, bind
from gateway.domain import amm

ERC20_ABI = [
    {
        "type": "function",
        "name": "transfer",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "to", "type": "address"}, {"name": "amount", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "function",
        "name": "approve",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
    {
        "type": "function",
        "name": "allowance",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "event",
        "name": "Transfer",
        "anonymous": False,
        "inputs": [
            {"name": "from", "type": "address", "indexed": True},
            {"name": "to", "type": "address", "indexed": True},
            {"name": "value", "type": "uint256", "indexed": False},
        ],
    },
]


@dataclass(frozen=True, slots=True)
class UniswapV2:
    factory: ChecksumAddress
    router: ChecksumAddress | None


@dataclass(frozen=True, slots=True)
class Reserves:
    """Reserves of a pair, keyed by token address (the pair stores them as token0/token1)."""

    token0: ChecksumAddress
    token1: ChecksumAddress
    reserve0: int
    reserve1: int

    def of(self, token: str) -> int:
        address = Web3.to_checksum_address(token)
        if address == self.token0:
            return self.reserve0
        if address == self.token1:
            return self.reserve1
        raise KeyError(f"{token} is not in the pair")


def deploy_uniswap_v2(
    sender: Sender, *, weth: str | None = None, fee_to_setter: str | None = None
) -> UniswapV2:
    """Deploy ``UniswapV2Factory``; and ``UniswapV2Router02`` too when ``weth`` is given
    (the published router hard-codes the published pair's init-code hash, which matches)."""
    factory = sender.deploy(uniswap_v2_core("UniswapV2Factory"), fee_to_setter or sender.address)
    router_address: ChecksumAddress | None = None
    if weth is not None:
        router = sender.deploy(
            uniswap_v2_periphery("UniswapV2Router02"),
            factory.address,
            Web3.to_checksum_address(weth),
        )
        router_address = router.address
    return UniswapV2(factory=factory.address, router=router_address)


def factory_contract(w3: Web3, address: str) -> Contract:
    return bind(w3, uniswap_v2_core("UniswapV2Factory"), address)


def pair_contract(w3: Web3, address: str) -> Contract:
    return bind(w3, uniswap_v2_core("UniswapV2Pair"), address)


def get_or_create_pair(sender: Sender, factory: str, token_a: str, token_b: str) -> ChecksumAddress:
    contract = factory_contract(sender.w3, factory)
    a, b = Web3.to_checksum_address(token_a), Web3.to_checksum_address(token_b)
    pair = contract.functions.getPair(a, b).call()
    if int(pair, 16) == 0:
        sender.transact(contract.functions.createPair(a, b))
        pair = contract.functions.getPair(a, b).call()
    return Web3.to_checksum_address(pair)


def add_liquidity(
    sender: Sender, pair: str, token_a: str, amount_a: int, token_b: str, amount_b: int
) -> int:
    """Move both amounts from the sender into ``pair`` and mint LP tokens to the sender.

    Returns the LP tokens minted. Works without a router: ``transfer`` + ``pair.mint``.
    """
    w3 = sender.w3
    pair_c = pair_contract(w3, pair)
    lp_before: int = pair_c.functions.balanceOf(sender.address).call()
    for token, amount in ((token_a, amount_a), (token_b, amount_b)):
        erc20 = w3.eth.contract(address=Web3.to_checksum_address(token), abi=ERC20_ABI)
        sender.transact(erc20.functions.transfer(pair_c.address, amount))
    sender.transact(pair_c.functions.mint(sender.address))
    lp_after: int = pair_c.functions.balanceOf(sender.address).call()
    return lp_after - lp_before


def get_reserves(w3: Web3, pair: str, block: BlockIdentifier = "latest") -> Reserves:
    pair_c = pair_contract(w3, pair)
    reserve0, reserve1, _ = pair_c.functions.getReserves().call(block_identifier=block)
    return Reserves(
        token0=Web3.to_checksum_address(pair_c.functions.token0().call()),
        token1=Web3.to_checksum_address(pair_c.functions.token1().call()),
        reserve0=int(reserve0),
        reserve1=int(reserve1),
    )


def amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """``UniswapV2Library.getAmountOut`` (0.3% fee), exact integer math."""
    return amm.amount_out(amount_in, reserve_in, reserve_out, fee_bps=30)
