"""Checking that an order was signed by someone who may sign for the wallet it trades for.

The account of an order is a `MarginWallet` address; the EIP-712 domain is that wallet on
this chain, so a signature is valid for one wallet only. The wallet accepts (and so this
accepts, before anything is stored, so that an order that could never settle is never
accepted):

- 65 bytes: an ECDSA signature, by the wallet's `owner()` EOA, or by one of its trading keys
  that is active and whose scope allows the order (`gateway.domain.trading_keys`);
- any other length (up to 520 bytes): a contract owner's signature (e.g. a 2-of-3 Safe's
  130 bytes), which the owner must accept through EIP-1271 `isValidSignature` now.

So a contract owner's 65-byte signature is ECDSA, never EIP-1271: a Safe with threshold 1
signs through a trading key. The rule by length is the one the settlement batch encoder uses.

The owner is read once per wallet and cached (it is immutable); nonces, key records,
allow-lists and EIP-1271 answers are read on every order, so a spent nonce, a revoked key, a
changed allow-list or a Safe's new owners count at once. A signature past its deadline is
refused, as the wallet would.

Those reads are the cost of a signed order. The nonce, key and allow-list reads of one order,
or of a whole batch of orders, go to the node in one JSON-RPC batch from the event loop
(`gateway.chain.rpc_calls`): a signed batch of 50 asks the chain once, not 50 times.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from web3 import Web3
from web3.exceptions import Web3Exception

from gateway.chain import signatures as chain
from gateway.chain.onchain_orders import OnchainOrders
from gateway.chain.rpc_calls import Call, EthCalls, RpcUnavailable
from gateway.domain.clock import Clock
from gateway.domain.errors import DomainError
from gateway.domain.orders import OrderSignature, OrderSpec
from gateway.domain.trading_keys import (
    TradingKey,
    check_key_active,
    check_key_scope,
    order_notional,
    strategy_notional,
)
from gateway.settlement import eip712

T = TypeVar("T")
log = logging.getLogger("gateway.signatures")


class InvalidSignature(DomainError):
    code = "invalid_signature"


class SpentNonce(InvalidSignature):
    """The signature is fine but the wallet would refuse its nonce now (used or cancelled)."""


class SignatureRequired(DomainError):
    code = "signature_required"


@dataclass(slots=True)
class _Check:
    """One order on its way through `verify_many`: what was worked out locally."""

    spec: OrderSpec
    signed: OrderSignature
    item: eip712.Order | eip712.Strategy
    digest: bytes
    owner: str
    signer: str | None = None  # an ECDSA signature's signer (lower case), once recovered
    unreadable: InvalidSignature | None = None


class OrderSignatures:
    def __init__(
        self, w3: Web3, orders: OnchainOrders, clock: Clock, *, chain_id: int | None = None
    ) -> None:
        self._w3 = w3
        self._clock = clock
        self.onchain = orders
        self._chain_id = chain_id
        self._owners: dict[str, str] = {}
        # the per-order questions, many in one round trip (None: a provider that is not HTTP)
        self.chain_calls = EthCalls.for_web3(w3)
        self._batch_failing = False
        # wallet -> whether its owner is a contract; the wallet fixes this when it is built
        self._contract_owners: dict[str, bool] = {}

    async def aclose(self) -> None:
        if self.chain_calls is not None:
            await self.chain_calls.aclose()

    @property
    def w3(self) -> Web3:
        """The chain the signatures are checked against (the revocation follower reads it)."""
        return self._w3

    async def _chain(self, read: Callable[[], T]) -> T:
        return await asyncio.to_thread(read)

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(await self._chain(lambda: self._w3.eth.chain_id))
        return self._chain_id

    # --- who may sign for a wallet (also what access control asks) ----------------------

    async def owner(self, wallet: str) -> str:
        key = wallet.lower()
        if key not in self._owners:
            try:
                owner = await self._chain(lambda: chain.wallet_owner(self._w3, wallet))
            except Exception as error:
                raise InvalidSignature(
                    f"{wallet} is not a MarginWallet on this chain ({error})", field="account"
                ) from error
            self._owners[key] = owner
        return self._owners[key]

    async def owner_is_contract(self, wallet: str) -> bool:
        key = wallet.lower()
        if key not in self._contract_owners:
            owner = await self.owner(wallet)
            self._contract_owners[key] = await self._chain(
                lambda: chain.is_contract(self._w3, owner)
            )
        return self._contract_owners[key]

    async def trading_key(self, wallet: str, key: str) -> TradingKey:
        """The key's record now (never cached: a revocation counts at once)."""
        return await self._chain(lambda: chain.trading_key(self._w3, wallet, key))

    async def is_safe_owner(self, wallet: str, address: str) -> bool:
        """Whether the wallet's owner is a contract (a Safe) that lists `address` as one of
        its owners now (Safe owners change: never cached)."""
        if not await self.owner_is_contract(wallet):
            return False
        owner = await self.owner(wallet)
        return await self._chain(lambda: chain.is_safe_owner(self._w3, owner, address))

    # --- order intake -------------------------------------------------------------------

    async def verify(self, spec: OrderSpec) -> None:
        """Raise unless the wallet would accept this order's signature: `InvalidSignature`
        (422), or a `TradingKeyRefused` (403) for a trading key out of its scope."""
        [outcome] = await self.verify_many([spec])
        if outcome is not None:
            raise outcome

    async def verify_many(self, specs: Sequence[OrderSpec]) -> list[DomainError | None]:
        """`verify` for each of `specs`, its refusal in its place (None: accepted).

        What is local (deadline, digest, the signer's recovery) is done first; then the
        chain's answers for all of them (nonces, key records, key allow-lists) are read in
        one JSON-RPC batch; an answer that is not what a wallet answers is read again on its
        own, as a single order's would be, and a batch the node did not answer is asked call
        by call through web3: chain errors are what those reads make of them (an owner that
        cannot be read is refused as not a wallet; the other reads raise)."""
        checks: list[_Check | DomainError] = []
        for spec in specs:
            try:
                checks.append(await self._prepare(spec))
            except DomainError as error:
                checks.append(error)
        answers = await self._read([check for check in checks if isinstance(check, _Check)])
        outcomes: list[DomainError | None] = []
        for check in checks:
            if isinstance(check, DomainError):
                outcomes.append(check)
                continue
            try:
                await self._finish(check, answers)
            except DomainError as error:
                outcomes.append(error)
            else:
                outcomes.append(None)
        return outcomes

    async def _prepare(self, spec: OrderSpec) -> _Check:
        signed = spec.signed
        if signed is None:
            raise SignatureRequired(
                "this gateway settles on chain: sign the order", field="signature"
            )
        if signed.deadline <= int(self._clock.now().timestamp()):
            raise InvalidSignature(
                "the signature's deadline has passed", field="signature.deadline"
            )
        item = self._signed_item(spec, signed)
        digest = _digest(item, await self.chain_id(), spec.account)
        owner = await self.owner(spec.account)
        check = _Check(spec, signed, item, digest, owner)
        if not chain.is_contract_length(signed.signature):
            try:
                check.signer = eip712.recover_digest_address(digest, signed.signature)
            except (ValueError, eip712.SignatureError) as error:
                # refused after the nonce, as the wallet orders its checks
                check.unreadable = InvalidSignature(
                    f"unreadable signature: {error}", field="signature"
                )
        return check

    def _questions(self, check: _Check) -> list[Call]:
        wallet = check.spec.account.lower()
        calls = [chain.min_nonce_call(wallet), chain.nonce_used_call(wallet, check.signed.nonce)]
        if check.signer is not None and check.signer != check.owner.lower():
            calls.append(chain.trading_key_call(wallet, check.signer))
            instruments, _ = self._scope(check.spec, check.item)
            calls += [chain.key_allowed_call(wallet, check.signer, i) for i in instruments]
        return calls

    async def _read(self, checks: list[_Check]) -> dict[Call, bytes | None]:
        """The answers to every check's questions, in one round trip ({}: ask one by one)."""
        if self.chain_calls is None or not checks:
            return {}
        calls = list(dict.fromkeys(call for check in checks for call in self._questions(check)))
        try:
            answers = await self.chain_calls.call(calls)
        except RpcUnavailable as error:
            if not self._batch_failing:  # said once, until a batch is answered again
                log.warning("batched chain reads failed, reading one at a time: %s", error)
            self._batch_failing = True
            return {}  # each read again through web3, which raises what the node does
        self._batch_failing = False
        return dict(zip(calls, answers, strict=True))

    async def _finish(self, check: _Check, answers: dict[Call, bytes | None]) -> None:
        spec, signed, owner = check.spec, check.signed, check.owner
        wallet = spec.account.lower()
        minimum = chain.words(answers.get(chain.min_nonce_call(wallet)), 1)
        used = chain.words(answers.get(chain.nonce_used_call(wallet, signed.nonce)), 1)
        # what settlement would meet later (`wallet: nonce used`), refused before it is stored
        if minimum is None or used is None:
            refusal = await self._chain(
                lambda: chain.nonce_refusal(self._w3, spec.account, signed.nonce)
            )
        else:
            refusal = chain.nonce_refusal_of(signed.nonce, minimum[0], bool(used[0]))
        if refusal is not None:
            raise SpentNonce(
                f"nonce {signed.nonce} of {spec.account} is {refusal}: sign with a fresh nonce",
                field="signature.nonce",
            )
        if chain.is_contract_length(signed.signature):
            await self._verify_contract_signature(
                spec.account, owner, check.digest, signed.signature
            )
            return
        if check.unreadable is not None:
            raise check.unreadable
        assert check.signer is not None, "an ECDSA signature is recovered or unreadable"
        if check.signer == owner.lower():
            return
        signer = Web3.to_checksum_address(check.signer)
        await self._verify_key(spec, check.item, signer, owner, answers)

    async def digest(self, spec: OrderSpec, signed: OrderSignature) -> bytes:
        """The EIP-712 digest the wallet verifies `signed` against (its domain: the order's
        wallet on this chain)."""
        return _digest(self._signed_item(spec, signed), await self.chain_id(), spec.account)

    def _signed_item(
        self, spec: OrderSpec, signed: OrderSignature
    ) -> eip712.Order | eip712.Strategy:
        if spec.is_strategy:
            return self.onchain.strategy(spec, signed)
        return self.onchain.order(spec, signed)

    async def _verify_contract_signature(
        self, wallet: str, owner: str, digest: bytes, signature: bytes
    ) -> None:
        if not 0 < len(signature) <= chain.MAX_CONTRACT_SIGNATURE_LENGTH:
            raise InvalidSignature(
                f"a contract owner's signature is 1 to {chain.MAX_CONTRACT_SIGNATURE_LENGTH} "
                f"bytes, not {len(signature)}",
                field="signature",
            )
        if not await self.owner_is_contract(wallet):
            raise InvalidSignature(
                f"a signature of {len(signature)} bytes is a contract owner's (EIP-1271), but "
                f"the owner of {wallet} is an EOA: sign with its key (65 bytes)",
                field="signature",
            )
        accepted = await self._chain(
            lambda: chain.contract_accepts(self._w3, owner, digest, signature)
        )
        if not accepted:
            raise InvalidSignature(
                f"the wallet's owner {owner} (a contract) does not accept this signature for "
                "this order (EIP-1271 isValidSignature); a Safe needs its threshold of owners",
                field="signature",
            )

    async def _verify_key(
        self,
        spec: OrderSpec,
        item: eip712.Order | eip712.Strategy,
        signer: str,
        owner: str,
        answers: dict[Call, bytes | None],
    ) -> None:
        wallet = spec.account
        record = chain.trading_key_of(answers.get(chain.trading_key_call(wallet.lower(), signer)))
        if record is None:
            record = await self.trading_key(wallet, signer)
        if not record.exists and not await self._was_revoked(wallet, signer):
            raise InvalidSignature(
                "the signature is neither the wallet owner's nor a trading key's for this "
                f"order (signed by {signer}, owner {owner})",
                field="signature",
            )
        check_key_active(signer, record)
        instruments, notional = self._scope(spec, item)
        allowed: dict[bytes, bool] = {}
        if not record.all_instruments:
            for instrument in instruments:
                call = chain.key_allowed_call(wallet.lower(), signer, instrument)
                read = chain.words(answers.get(call), 1)
                allowed[instrument] = (
                    bool(read[0])
                    if read is not None
                    else await self._key_allowed(wallet, signer, instrument)
                )
        check_key_scope(signer, record, allowed, notional)

    async def _key_allowed(self, wallet: str, key: str, instrument: bytes) -> bool:
        return await self._chain(
            lambda: chain.key_instrument_allowed(self._w3, wallet, key, instrument)
        )

    async def _was_revoked(self, wallet: str, key: str) -> bool:
        try:
            return await self._chain(lambda: chain.key_was_revoked(self._w3, wallet, key))
        except (Web3Exception, ValueError):
            # a node that refuses the log query: the signer is then refused as not a key
            return False

    def _scope(
        self, spec: OrderSpec, item: eip712.Order | eip712.Strategy
    ) -> tuple[list[bytes], int]:
        """The instrument ids the order trades and its notional, as the wallet computes it
        (quote units; 10**base_decimals is the unit of the legs' common base)."""
        catalogue = self.onchain.catalogue
        if isinstance(item, eip712.Strategy):
            base = catalogue.get(spec.legs[0].instrument).base.decimals
            ids = list(dict.fromkeys(leg.instrument for leg in item.legs))
            return ids, strategy_notional(item.amount, item.limit_net_price, base)
        assert spec.instrument is not None  # a signed order is on one instrument
        base = catalogue.get(spec.instrument).base.decimals
        return [item.instrument], order_notional(item.amount, item.limit_price, base)


def _digest(item: eip712.Order | eip712.Strategy, chain_id: int, wallet: str) -> bytes:
    if isinstance(item, eip712.Strategy):
        return eip712.strategy_digest(item, chain_id, wallet)
    return eip712.order_digest(item, chain_id, wallet)
