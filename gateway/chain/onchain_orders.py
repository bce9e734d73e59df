"""Gateway orders as the chain sees them: instruments as `Settlement` preimages, quantities
and prices in token units, and the EIP-712 `Order`/`Strategy` an owner signs.

Units follow docs/onchain-types.md: `amount` in base units, `limit_price` in quote units per
whole base unit, a strategy's `limit_net_price` per whole unit of the legs' common base.
Spot pairs and European options exist on chain; perpetuals do not (they trade on exchanges
only), so they have no preimage and cannot be signed for settlement.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from gateway.chain.settlement_abi import Instrument as ChainInstrument
from gateway.domain.errors import InvalidOrder
from gateway.domain.instruments import (
    EuropeanOption,
    Instrument,
    InstrumentCatalogue,
    OptionRight,
    SpotPair,
)
from gateway.domain.orders import OrderSignature, OrderSpec, Side
from gateway.settlement import eip712


class NotOnChain(InvalidOrder):
    code = "instrument_not_on_chain"


def _units(value: Decimal, decimals: int, what: str) -> int:
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise InvalidOrder(f"{what} {value} is finer than the token's {decimals} decimals")
    return int(scaled)


class OnchainOrders:
    """Maps catalogue instruments to chain preimages with the tokens' addresses."""

    def __init__(self, catalogue: InstrumentCatalogue, tokens: Mapping[str, str]) -> None:
        self.catalogue = catalogue
        self.tokens = dict(tokens)

    def _token(self, symbol: str) -> str:
        try:
            return self.tokens[symbol]
        except KeyError:
            raise NotOnChain(f"no token address for {symbol}", field="instrument") from None

    def preimage(self, symbol: str) -> ChainInstrument:
        instrument = self.catalogue.get(symbol)
        base, quote = self._token(instrument.base.symbol), self._token(instrument.quote.symbol)
        if isinstance(instrument, SpotPair):
            return ChainInstrument.spot(base, quote)
        if isinstance(instrument, EuropeanOption):
            return ChainInstrument.option(
                base,
                quote,
                _units(instrument.strike, instrument.quote.decimals, "strike"),
                int(instrument.expires_at.timestamp()),
                instrument.right is OptionRight.CALL,
            )
        raise NotOnChain(f"{symbol} does not trade on chain", field="instrument")

    def amount(self, instrument: Instrument, quantity: Decimal) -> int:
        return _units(quantity, instrument.base.decimals, "quantity")

    def price(self, instrument: Instrument, price: Decimal) -> int:
        return _units(price, instrument.quote.decimals, "price")

    def order(self, spec: OrderSpec, signed: OrderSignature) -> eip712.Order:
        """The EIP-712 `Order` the owner signs for a single-instrument limit order."""
        if spec.instrument is None or spec.price is None:
            raise InvalidOrder("a signed order is a limit order on one instrument", field="type")
        instrument = self.catalogue.get(spec.instrument)
        return eip712.Order(
            self.preimage(spec.instrument).id,
            spec.side is Side.BUY,
            self.amount(instrument, spec.quantity),
            self.price(instrument, spec.price),
            signed.nonce,
            signed.deadline,
        )

    def strategy(self, spec: OrderSpec, signed: OrderSignature) -> eip712.Strategy:
        """The EIP-712 `Strategy`: legs as the client wrote them for a buy, flipped for a
        sell (the chain has no strategy side), `limit_net_price` signed the same way."""
        if not spec.legs or spec.price is None:
            raise InvalidOrder("a signed strategy has legs and a net price", field="legs")
        first = self.catalogue.get(spec.legs[0].instrument)
        flip = spec.side is Side.SELL
        legs = tuple(
            eip712.Leg(
                self.preimage(leg.instrument).id,
                (leg.side is Side.BUY) != flip,
                leg.ratio,
            )
            for leg in spec.legs
        )
        net = _units(spec.price, first.quote.decimals, "price")
        return eip712.Strategy(
            legs,
            self.amount(first, spec.quantity),
            -net if flip else net,
            signed.nonce,
            signed.deadline,
        )

    def typed_data(
        self, spec: OrderSpec, signed: OrderSignature, chain_id: int
    ) -> dict[str, object]:
        """EIP-712 typed data for `eth_signTypedData_v4` (the signature itself is ignored)."""
        item: eip712.Order | eip712.Strategy = (
            self.strategy(spec, signed) if spec.is_strategy else self.order(spec, signed)
        )
        return eip712.typed_data(item, chain_id, spec.account)

    def digest(self, spec: OrderSpec, signed: OrderSignature, chain_id: int) -> bytes:
        if spec.is_strategy:
            return eip712.strategy_digest(self.strategy(spec, signed), chain_id, spec.account)
        return eip712.order_digest(self.order(spec, signed), chain_id, spec.account)
