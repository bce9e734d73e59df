"""Web3 connection and a small locally-signing transaction sender.

Transactions are signed in-process with the sender's key (so the same code works against anvil
and a real RPC node); the sender keeps its own nonce counter so that a deploy script does not
re-query the node between transactions.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress, HexStr
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxParams, TxReceipt, Wei

from gateway.chain.artifacts import ContractArtifact


class TransactionError(RuntimeError):
    """A transaction reverted or could not be sent."""

    def __init__(self, message: str, receipt: TxReceipt | None = None) -> None:
        super().__init__(message)
        self.receipt = receipt


def connect(rpc_url: str, *, timeout: float = 30.0) -> Web3:
    """A ``Web3`` over HTTP; raises if the node does not answer."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    if not w3.is_connected():
        raise ConnectionError(f"no JSON-RPC node answers at {rpc_url}")
    return w3


# Estimated in one block, mined in a later one: a Uniswap v2 pair's first swap in a new
# block second also writes its two price accumulators (two fresh storage slots, ~45k gas)
# that the estimate did not see. The headroom covers that; unused gas is not charged.
GAS_HEADROOM = 60_000


@dataclass
class Sender:
    """Signs and sends transactions from one account; waits for each receipt.

    ``gas_multiplier`` pads web3's estimate (estimates can be tight for calls that touch many
    storage slots); reverts raise :class:`TransactionError` with the receipt attached.
    """

    w3: Web3
    account: LocalAccount
    gas_multiplier: float = 1.2
    receipt_timeout: float = 120.0
    _nonce: int | None = field(default=None, init=False, repr=False)

    @property
    def address(self) -> ChecksumAddress:
        return self.account.address

    def next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = self.w3.eth.get_transaction_count(self.address, "pending")
        nonce = self._nonce
        self._nonce += 1
        return nonce

    def reset_nonce(self) -> None:
        self._nonce = None

    def _fill(self, tx: TxParams) -> TxParams:
        filled: dict[str, Any] = dict(tx)
        filled.setdefault("from", self.address)
        filled.setdefault("chainId", self.w3.eth.chain_id)
        if "gasPrice" not in filled and "maxFeePerGas" not in filled:
            base = self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0
            tip = self.w3.eth.max_priority_fee
            filled["maxPriorityFeePerGas"] = tip
            filled["maxFeePerGas"] = Wei(2 * base + tip)
        if "gas" not in filled:
            estimate = self.w3.eth.estimate_gas(cast(TxParams, filled))
            filled["gas"] = int(estimate * self.gas_multiplier) + GAS_HEADROOM
        filled["nonce"] = self.next_nonce()
        return cast(TxParams, filled)

    def submit(self, tx: TxParams) -> HexBytes:
        """Fill (gas, fees, nonce), sign and send; returns the transaction hash at once."""
        try:
            filled = self._fill(tx)
        except Exception:
            self.reset_nonce()
            raise
        signed = self.account.sign_transaction(cast(dict[str, Any], filled))
        return self.w3.eth.send_raw_transaction(signed.raw_transaction)

    def send(self, tx: TxParams) -> TxReceipt:
        """Submit and wait for the receipt; raises :class:`TransactionError` on revert."""
        return self.wait(self.submit(tx))

    def wait(self, tx_hash: HexBytes | HexStr) -> TxReceipt:
        receipt = self.w3.eth.wait_for_transaction_receipt(
            tx_hash, timeout=self.receipt_timeout, poll_latency=0.05
        )
        if receipt["status"] != 1:
            raise TransactionError(
                f"transaction {Web3.to_hex(receipt['transactionHash'])} reverted", receipt
            )
        return receipt

    def transact(
        self, fn: ContractFunction, *, value: int = 0, gas: int | None = None
    ) -> TxReceipt:
        """Send a contract call; raises on revert (with the revert reason from estimation)."""
        # a placeholder gas stops build_transaction from estimating; _fill estimates once
        params: dict[str, Any] = {"from": self.address, "value": Wei(value), "gas": gas or 1}
        tx = fn.build_transaction(cast(TxParams, params))
        tx.pop("nonce", None)
        if gas is None:
            tx.pop("gas", None)
        return self.send(tx)

    def deploy_code(self, initcode: bytes, *, gas: int | None = None) -> ChecksumAddress:
        """Deploy raw init code; returns the new contract's address."""
        tx: dict[str, Any] = {"data": Web3.to_hex(initcode)}
        if gas is not None:
            tx["gas"] = gas
        receipt = self.send(cast(TxParams, tx))
        address = receipt["contractAddress"]
        if address is None:
            raise TransactionError("deployment produced no contract address", receipt)
        return Web3.to_checksum_address(address)

    def deploy(self, artifact: ContractArtifact, *args: Any) -> Contract:
        """Deploy ``artifact`` with constructor ``args``; returns the bound contract."""
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx = factory.constructor(*args).build_transaction(
            cast(TxParams, {"from": self.address, "gas": 1})
        )
        tx.pop("nonce", None)
        tx.pop("to", None)
        tx.pop("gas", None)
        receipt = self.send(tx)
        address = receipt["contractAddress"]
        if address is None:
            raise TransactionError(f"deploying {artifact.name} produced no address", receipt)
        return self.w3.eth.contract(address=address, abi=artifact.abi)

    def deploy_blueprint(self, artifact: ContractArtifact) -> ChecksumAddress:
        """Deploy ``artifact`` as an ERC-5202 blueprint (for ``create_from_blueprint``)."""
        if artifact.blueprint_bytecode is None:
            raise TransactionError(f"{artifact.name} has no blueprint bytecode")
        return self.deploy_code(artifact.blueprint_bytecode)


# web3 builds a contract class from the ABI on every `w3.eth.contract(abi=...)`: most of
# the cost of reading one wallet's state, read for every wallet every second. One class per
# connection and artifact, made once.
_factories: weakref.WeakKeyDictionary[Web3, dict[tuple[str, str], type[Contract]]] = (
    weakref.WeakKeyDictionary()
)


def bind(w3: Web3, artifact: ContractArtifact, address: str) -> Contract:
    """A web3 contract object for ``artifact`` at ``address``."""
    address = Web3.to_checksum_address(address)
    if not artifact.key:  # made by hand, not from a compiled tree: nothing names its ABI
        return w3.eth.contract(address=address, abi=artifact.abi)
    per_connection = _factories.setdefault(w3, {})
    factory = per_connection.get((artifact.name, artifact.key))
    if factory is None:
        factory = w3.eth.contract(abi=artifact.abi)
        per_connection[(artifact.name, artifact.key)] = factory
    return factory(address=address)


def event_logs(contract: Contract, event: str, receipt: TxReceipt) -> list[Any]:
    """Decoded ``event`` logs emitted by ``contract`` itself in ``receipt`` (logs of other
    contracts and other events are skipped silently)."""
    from web3.logs import DISCARD

    decoded = contract.events[event]().process_receipt(receipt, errors=DISCARD)
    return [log for log in decoded if log["address"] == contract.address]
