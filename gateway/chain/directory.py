"""What a client needs to reach the chain on its own: the chain id, the Settlement and
WalletFactory contracts, the listed tokens with their decimals and, where the operator
publishes them, an RPC URL and a block explorer. Clients check what matters against the
chain itself (an instrument's id is registered on this Settlement, a wallet's settlement is
this one)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from gateway.chain import tokens as erc20
from gateway.chain.artifacts import compile_contract
from gateway.chain.transactions import bind


@dataclass
class ChainDirectory:
    w3: Web3
    settlement: str
    tokens: dict[str, str]
    public_rpc_url: str | None = None
    explorer_url: str | None = None
    _described: dict[str, Any] | None = field(default=None, init=False)

    def _read(self) -> dict[str, Any]:
        settlement = bind(self.w3, compile_contract("Settlement"), self.settlement)
        tokens = {
            symbol: {
                "address": Web3.to_checksum_address(address),
                "decimals": int(erc20.token(self.w3, address).functions.decimals().call()),
            }
            for symbol, address in sorted(self.tokens.items())
        }
        return {
            "chain_id": int(self.w3.eth.chain_id),
            "settlement": Web3.to_checksum_address(self.settlement),
            "wallet_factory": Web3.to_checksum_address(settlement.functions.factory().call()),
            "tokens": tokens,
            "rpc_url": self.public_rpc_url,
            "explorer_url": self.explorer_url,
        }

    async def describe(self) -> dict[str, Any]:
        """Read once (nothing here changes while the gateway runs), then answered from memory."""
        if self._described is None:
            self._described = await asyncio.to_thread(self._read)
        return self._described
