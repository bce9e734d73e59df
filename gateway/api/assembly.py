"""Assemble a gateway runtime from a configuration: venues, the chain's wallets, signature
checks and the settlement service, as `isthmus up` and `isthmus demo` run it."""

from __future__ import annotations

import os

from gateway.api.runtime import Runtime, SettlementFactory
from gateway.config import Settings
from gateway.domain.clock import Clock
from gateway.domain.instruments import InstrumentCatalogue
from gateway.oms.inventory import InventoryConfig
from gateway.oms.order_signatures import OrderSignatures
from gateway.venues.config import GatewayConfig, build_venues


def runtime_from_config(
    settings: Settings,
    gateway_config: GatewayConfig,
    catalogue: InstrumentCatalogue,
    clock: Clock,
) -> Runtime:
    """The runtime the configuration describes (nothing started yet)."""
    venues = build_venues(gateway_config, catalogue, clock)
    chain = gateway_config.chain
    wallets = None
    signatures: OrderSignatures | None = None
    settlement: SettlementFactory | None = None
    inventory: InventoryConfig | None = None
    if chain is not None:
        from gateway.chain.onchain_orders import OnchainOrders
        from gateway.chain.transactions import connect

        w3 = connect(chain.rpc_url)
        if chain.settlement is not None:
            from gateway.chain.wallets import ChainWallets

            wallets = ChainWallets(w3, chain.settlement)
        if chain.tokens:
            signatures = OrderSignatures(w3, OnchainOrders(catalogue, chain.tokens), clock)
        if chain.settlement is not None and chain.tokens and chain.operator_key_env is not None:
            from gateway.oms.settlement_service import settlement_factory

            settlement = settlement_factory(
                chain.rpc_url,
                os.environ[chain.operator_key_env],
                chain.settlement,
                OnchainOrders(catalogue, chain.tokens),
                confirmations=chain.settlement_confirmations,
                batch_age=chain.settlement_batch_age_ms / 1000,
                batch_trades=chain.settlement_batch_trades,
            )
        if settlement is not None and chain.inventory_wallet and chain.inventory_key_env:
            inventory = InventoryConfig(
                chain.inventory_wallet,
                os.environ[chain.inventory_key_env],
                OnchainOrders(catalogue, chain.tokens),
                int(w3.eth.chain_id),
                spread_bps=chain.inventory_spread_bps,
                nonce_base=chain.inventory_nonce_base,
            )
    runtime = Runtime.build(
        settings,
        catalogue=catalogue,
        clock=clock,
        venues=venues,
        wallets=wallets,
        signatures=signatures,
        settlement=settlement,
        inventory=inventory,
    )
    if chain is not None and chain.settlement is not None:
        from gateway.chain.directory import ChainDirectory

        runtime.chain_directory = ChainDirectory(
            w3, chain.settlement, dict(chain.tokens), chain.public_rpc_url, chain.explorer_url
        )
    return runtime
