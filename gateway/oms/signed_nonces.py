"""A signed order may not take a nonce another order of its wallet holds.

The wallet tells a nonce spent only once a fill settles, and only when the order filled whole
in one go; an order under the same signature fills the same digest. So a second order under
a held nonce (the same signed order sent again under a new `client_order_id`, or another
order signed with that nonce) would trade on the book and fail to settle: one of the two
takers never gets the fill it was told of. Intake refuses it instead: `NonceHeld`.

A nonce is held by every stored order signed with it, whatever became of that order (a
cancelled one may have filled in part: its digest is partly spent), and by every order on its
way to the store. Which nonces are stored is kept as a set of hashes, loaded at start: a new
nonce (nearly every one) is decided without a read; a hash seen there means "read to be
sure". The claims of orders on their way are taken synchronously on the event loop, before
any await, so two concurrent orders cannot both take one nonce.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy import Engine

from gateway.domain.orders import OrderSpec
from gateway.oms.order_signatures import SpentNonce
from gateway.store import order_repository as repo

NonceKey = tuple[str, int]  # (account, nonce)


class NonceHeld(SpentNonce):
    """Another order of the wallet was signed with this nonce."""


class SignedNonces:
    def __init__(self, read_engine: Engine) -> None:
        self._read_engine = read_engine
        self._stored: set[int] | None = None  # None: not loaded, read every time
        self._claims: dict[NonceKey, str] = {}  # on their way: key -> client_order_id
        self._highest: dict[str, int] = {}  # per account, the highest stored nonce

    async def load(self) -> int:
        """Load the hashes of the stored nonces (at start, before orders are taken)."""

        def read() -> tuple[set[int], dict[str, int]]:
            stored: set[int] = set()
            highest: dict[str, int] = {}
            with self._read_engine.connect() as connection:
                for key in repo.signed_nonce_keys(connection):
                    stored.add(hash(key))
                    account, nonce = key
                    if nonce > highest.get(account, -1):
                        highest[account] = nonce
            return stored, highest

        stored, self._highest = await asyncio.to_thread(read)
        self._stored = stored
        return len(stored)

    def next_free(self, account: str) -> int:
        """A nonce above every one the account's orders hold (stored or on their way): 0
        when none (it is not below the wallet's own `min_nonce`, which the caller asks)."""
        taken = [self._highest.get(account, -1)]
        taken += [nonce for (owner, nonce) in self._claims if owner == account]
        return max(taken) + 1

    async def claim(
        self, specs: Sequence[OrderSpec], *, retries: bool = True
    ) -> tuple[list[NonceHeld | None], list[NonceKey]]:
        """Take the nonce of each signed spec: its refusal in its place (None: it may go on),
        and the keys claimed, to give to `release` once the orders were stored or refused.

        A spec whose nonce another order holds (stored, or on its way) is refused; unsigned
        specs pass. With `retries`, an order holding it under the spec's own
        `client_order_id` is its retry, not another order (the order service answers it
        with the stored order, or a conflict); a mass quote's new levels have new client ids.
        One read for all the nonces the hash set does not rule out."""
        refusals: list[NonceHeld | None] = [None] * len(specs)
        claimed: list[NonceKey] = []
        maybe: list[int] = []
        for index, spec in enumerate(specs):
            if spec.signed is None:
                continue
            key = (spec.account, spec.signed.nonce)
            holder = self._claims.get(key)
            if holder is not None:
                if not retries or holder != spec.client_order_id:
                    refusals[index] = _held(key, f"order {holder!r} on its way")
                continue  # its own retry, sent while the first is on its way
            self._claims[key] = spec.client_order_id
            claimed.append(key)
            if self._stored is None or hash(key) in self._stored:
                maybe.append(index)
        if maybe:
            try:
                holders = await self._holders([_key(specs[i]) for i in maybe])
            except BaseException:
                self.release(claimed, ())
                raise
            for index in maybe:
                spec = specs[index]
                key = _key(spec)
                for client_id in holders.get(key, ()):
                    if not retries or client_id != spec.client_order_id:
                        refusals[index] = _held(key, f"order {client_id!r}")
                        self._claims.pop(key, None)
                        claimed.remove(key)
                        break
        return refusals, claimed

    def release(self, claimed: Sequence[NonceKey], stored: Sequence[OrderSpec]) -> None:
        """Give the claims back; the nonces of `stored` (orders now in the store) are held
        from here on."""
        for key in claimed:
            self._claims.pop(key, None)
        for spec in stored:
            if spec.signed is not None:
                account, nonce = _key(spec)
                if self._stored is not None:
                    self._stored.add(hash((account, nonce)))
                if nonce > self._highest.get(account, -1):
                    self._highest[account] = nonce

    async def _holders(self, keys: list[NonceKey]) -> dict[NonceKey, list[str]]:
        def read() -> dict[NonceKey, list[str]]:
            with self._read_engine.connect() as connection:
                return repo.nonce_holders(connection, keys)

        return await asyncio.to_thread(read)


def _key(spec: OrderSpec) -> NonceKey:
    assert spec.signed is not None
    return spec.account, spec.signed.nonce


def _held(key: NonceKey, holder: str) -> NonceHeld:
    return NonceHeld(
        f"nonce {key[1]} of {key[0]} signed {holder}: a signature's nonce is used once, "
        "sign the order with a new nonce",
        field="signature.nonce",
    )
