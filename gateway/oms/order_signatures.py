"""Checking that an order was signed by the owner of the wallet it trades for.

The account of an order is a `MarginWallet` address; the EIP-712 domain is that wallet on
this chain, so a signature is valid for one wallet only. The signer recovered from the digest
must be the wallet's `owner()` (read from the chain once per wallet, then cached: a wallet's
owner never changes). A signature past its deadline is refused, as the wallet would refuse
it at settlement. This is the same check the wallet makes on chain, made before anything is
stored, so an order that could never settle is never accepted.
"""

from __future__ import annotations

import asyncio

from web3 import Web3

from gateway.chain.onchain_orders import OnchainOrders
from gateway.domain.clock import Clock
from gateway.domain.errors import DomainError
from gateway.domain.orders import OrderSpec
from gateway.settlement import eip712

_OWNER_ABI = [
    {
        "name": "owner",
        "type": "function",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "address"}],
    }
]


class InvalidSignature(DomainError):
    code = "invalid_signature"


class SignatureRequired(DomainError):
    code = "signature_required"


class OrderSignatures:
    def __init__(
        self, w3: Web3, orders: OnchainOrders, clock: Clock, *, chain_id: int | None = None
    ) -> None:
        self._w3 = w3
        self._clock = clock
        self.onchain = orders
        self._chain_id = chain_id
        self._owners: dict[str, str] = {}

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(await asyncio.to_thread(lambda: self._w3.eth.chain_id))
        return self._chain_id

    async def owner(self, wallet: str) -> str:
        key = wallet.lower()
        if key not in self._owners:
            contract = self._w3.eth.contract(
                address=Web3.to_checksum_address(wallet), abi=_OWNER_ABI
            )
            try:
                owner = await asyncio.to_thread(contract.functions.owner().call)
            except Exception as error:
                raise InvalidSignature(
                    f"{wallet} is not a MarginWallet on this chain ({error})", field="account"
                ) from error
            self._owners[key] = str(owner)
        return self._owners[key]

    async def verify(self, spec: OrderSpec) -> None:
        """Raise `InvalidSignature` unless the wallet's owner signed exactly this order."""
        signed = spec.signed
        if signed is None:
            raise SignatureRequired(
                "this gateway settles on chain: sign the order", field="signature"
            )
        if signed.deadline <= int(self._clock.now().timestamp()):
            raise InvalidSignature(
                "the signature's deadline has passed", field="signature.deadline"
            )
        digest = self.onchain.digest(spec, signed, await self.chain_id())
        try:
            signer = eip712.recover_digest_signer(digest, signed.signature)
        except (ValueError, eip712.SignatureError) as error:
            raise InvalidSignature(f"unreadable signature: {error}", field="signature") from error
        owner = await self.owner(spec.account)
        if signer.lower() != owner.lower():
            raise InvalidSignature(
                "the signature is not the wallet owner's for this order "
                f"(signed by {signer}, owner {owner})",
                field="signature",
            )
