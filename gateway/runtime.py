"""The composition root: what one running gateway holds (engines, the writer, the services,
the event fan-out), built from the configuration. Every entry point (api, fix, cli) starts
from it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Engine

from gateway.chain.directory import ChainDirectory
from gateway.compliance.files import DEVNET_KYC, DEVNET_RULES, DEVNET_SANCTIONS
from gateway.compliance.provider import FileKycProvider
from gateway.compliance.screening import ComplianceScreen, ComplianceSources
from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.clock import Clock
from gateway.domain.errors import DomainError
from gateway.domain.instruments import InstrumentCatalogue
from gateway.domain.market import FeeSchedule
from gateway.domain.orders import OrderSpec
from gateway.oms.algo_runner import AlgoRunner
from gateway.oms.dead_man_switch import DeadMansSwitch
from gateway.oms.event_follower import EventFollower
from gateway.oms.events import OrderEvents
from gateway.oms.execution_analysis import TransactionCostAnalysis
from gateway.oms.group_commit import GroupCommitter
from gateway.oms.internal_book import InternalBook
from gateway.oms.inventory import InventoryConfig, OperatorInventory
from gateway.oms.key_revocations import KeyRevocationFollower
from gateway.oms.legging_runner import LeggingRunner
from gateway.oms.order_signatures import OrderSignatures, SignatureRequired, SpentNonce
from gateway.oms.risk_controls import RiskControlService
from gateway.oms.risk_monitor import HedgeRouter, RiskMonitor
from gateway.oms.risk_view import RiskView, WalletMarginProjection, WalletSource
from gateway.oms.role_lease import RoleLease
from gateway.oms.route_sources import RouteSources
from gateway.oms.service import OrderService, SystemClock
from gateway.oms.settlement_service import SettlementService
from gateway.oms.smart_execution import SmartExecutor
from gateway.oms.venue_children import VenueChildren
from gateway.oms.webhook import WebhookSender
from gateway.risk.account_risk import RiskSettings
from gateway.risk.exposure import ExposureLedger
from gateway.risk.market_view import MarketView, PriceHistory, VolatilityDefaults
from gateway.risk.pretrade import PreTradeValidator, RiskControls
from gateway.settlement.nonce_fence import spend_next_nonce
from gateway.store import order_repository as repo
from gateway.store import stream_outbox
from gateway.store.database import create_database_engine, migrate
from gateway.venues.amm import UniswapV2Venue
from gateway.venues.ccxt_venue import CcxtVenue
from gateway.venues.config import GatewayConfig, build_venues
from gateway.venues.in_flight_swaps import InFlightSwaps
from gateway.venues.internal import InternalVenue
from gateway.venues.market_data import MarketDataHub
from gateway.venues.protocol import Venue
from gateway.venues.trade_tape import TradeTape


class HubMids:
    """Reference prices for the pre-trade checks: the consolidated mid of live venues."""

    def __init__(self, hub: MarketDataHub) -> None:
        self._hub = hub

    def mid(self, instrument: str) -> Decimal | None:
        return self._hub.book(instrument, depth=1).mid


log = logging.getLogger("gateway.runtime")
# replicas: one lease carries every single-writer role (they share the pre-trade ledger and the
# pools' in-flight swaps in memory, so they move together)
PRIMARY_ROLE = "primary"


class ReplicaRefused(Exception):
    """The configuration cannot run as a replica."""


def _own_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}"


# builds the settlement service once the runtime's writer and read engine exist
SettlementFactory = Callable[[GroupCommitter, Engine], SettlementService]


class Attached(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Runtime:
    settings: Settings
    write_engine: Engine
    read_engine: Engine
    events: OrderEvents
    writer: GroupCommitter
    orders: OrderService
    market_data: MarketDataHub
    venues: list[Venue]
    pre_trade: PreTradeValidator
    risk_controls: RiskControlService
    risk: RiskView
    monitor: RiskMonitor
    routes: RouteSources
    smart: SmartExecutor
    algos: AlgoRunner = field(init=False)  # set by `build`
    clock: Clock = field(init=False)  # set by `build`
    book: InternalBook = field(init=False)  # set by `build`
    dead_man_switch: DeadMansSwitch = field(init=False)  # set by `build`
    venue_children: VenueChildren = field(init=False)  # set by `build`
    tca: TransactionCostAnalysis = field(init=False)  # set by `build`
    signatures: OrderSignatures | None = field(init=False)  # set by `build`
    settlement: SettlementService | None = field(init=False)  # set by `build`
    legging: LeggingRunner = field(init=False)  # set by `build`
    compliance: ComplianceScreen = field(init=False)  # set by `build`, loaded by `start`
    # with a chain: cancels open orders of revoked or expired trading keys (set by `build`)
    key_revocations: KeyRevocationFollower | None = field(init=False)
    chain_directory: ChainDirectory | None = field(default=None, init=False)
    background: list[asyncio.Task[None]] = field(default_factory=list)
    ledger: ExposureLedger | None = field(default=None, init=False)  # set by `build`
    # replicas (`settings.replica`): the lease on every single-writer role and the stream
    # events followed through the database; None in one process (every role is its own)
    leases: RoleLease | None = field(default=None, init=False)
    follower: EventFollower | None = field(default=None, init=False)
    on_lease_lost: Callable[[], None] | None = field(default=None, init=False)
    _role_options: dict[str, Any] = field(default_factory=dict, init=False)
    # entry points beside the API (the FIX acceptor): started with the roles, stopped first
    attached: list[Attached] = field(default_factory=list, init=False)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        catalogue: InstrumentCatalogue | None = None,
        clock: Clock | None = None,
        venues: list[Venue] | None = None,
        wallets: WalletSource | None = None,
        signatures: OrderSignatures | None = None,
        settlement: SettlementFactory | None = None,
        inventory: InventoryConfig | None = None,
    ) -> Runtime:
        clock = clock or SystemClock()
        catalogue = catalogue or devnet_catalogue()
        write_engine = create_database_engine(settings.database_url)
        migrate(write_engine)
        read_engine = create_database_engine(settings.database_url, for_writes=False)
        events = OrderEvents(settings.stream_queue_size)
        ledger = ExposureLedger(catalogue)
        with read_engine.connect() as connection:
            ledger.load([s.order for s in repo.open_orders(connection)], repo.all_fills(connection))

        matched: list[Callable[[], None]] = []  # told when matched fills were committed

        replicated = settings.replica

        def committed(batch: list[dict[str, Any]]) -> None:
            ledger.apply_events(batch)  # before anyone is told: limits see it first
            if not replicated:  # replicas publish what they read back from the database
                events.publish_all(batch)
            if matched and any(
                e.get("type") == "fill.recorded" and e["fill"].get("trade_id") for e in batch
            ):
                for wake in matched:
                    wake()

        writer = GroupCommitter(
            write_engine,
            clock,
            batch_max=settings.commit_batch_max,
            on_committed=committed,
            event_sink=stream_outbox.append if replicated else None,
        )
        if venues is None:
            venues = [InternalVenue(catalogue, clock, FeeSchedule(Decimal(0), Decimal(0)))]
        market_data = MarketDataHub(
            venues,
            None,  # each venue says what it trades
            clock,
            stale_after=settings.venue_stale_after_seconds,
        )
        controls = RiskControls(defaults=settings.risk_limits())
        validator = PreTradeValidator(catalogue, controls, ledger, HubMids(market_data), clock.now)
        orders = OrderService(writer, read_engine, catalogue, clock, pre_trade=validator)
        market_view = MarketView(
            catalogue,
            validator.prices,
            VolatilityDefaults(default_vol=settings.risk_default_vol, rate=settings.risk_rate),
        )
        risk_view = RiskView(
            catalogue,
            ledger,
            market_view,
            PriceHistory(settings.risk_history_interval_seconds),
            clock,
            pre_trade=validator,
            wallets=wallets,
            venues=venues,
            settings=RiskSettings(
                confidence=settings.risk_confidence,
                horizon_days=settings.risk_horizon_days,
                monte_carlo_paths=settings.risk_monte_carlo_paths,
            ),
        )
        if wallets is not None:
            validator.margin = WalletMarginProjection(wallets, catalogue)
        webhook = None
        if settings.risk_webhook_url:
            webhook = WebhookSender(settings.risk_webhook_url, settings.risk_webhook_secret)
        routes = RouteSources(market_data, venues, catalogue)
        venue_children = VenueChildren(orders, read_engine, venues, catalogue)
        smart = SmartExecutor(orders, routes, venues, venue_children)
        monitor = RiskMonitor(
            risk_view,
            market_data,
            clock,
            events.publish,
            webhook=webhook,
            router=HedgeRouter(
                orders, market_data, smart, slippage_bps=settings.risk_hedge_slippage_bps
            ),
            interval=settings.risk_monitor_interval_seconds,
        )
        if replicated:  # its alerts reach every replica's stream through the database
            monitor.publish = writer.publish
        risk_controls = RiskControlService(
            writer, read_engine, controls, orders, hedge_policies=monitor.policies
        )
        risk_controls.load()
        built = cls(
            settings,
            write_engine,
            read_engine,
            events,
            writer,
            orders,
            market_data,
            venues,
            validator,
            risk_controls,
            risk_view,
            monitor,
            routes,
            smart,
        )
        built.clock = clock
        built.ledger = ledger
        built.signatures = signatures
        built.settlement = None if settlement is None else settlement(writer, read_engine)
        if built.settlement is not None:
            matched.append(built.settlement.wake)
            smart.settles_on_chain = True
            pools = [v for v in venues if isinstance(v, UniswapV2Venue)]
            if pools:  # signed orders' pool legs settle as swaps inside the batch
                in_flight = InFlightSwaps()
                for pool_venue in pools:
                    pool_venue.in_flight = in_flight
                built.settlement.in_flight = in_flight
                smart.pools_settle_in_batch = True
        if inventory is not None and built.settlement is not None:
            # signed orders' exchange fills trade with it on chain; it must carry them first
            orders.inventory = OperatorInventory(
                inventory, read_engine, validator=validator, wallets=wallets
            )
        built.book = InternalBook(
            writer,
            read_engine,
            catalogue,
            lambda symbol: market_data.book(symbol, depth=1).mid,
        )
        orders.book = built.book
        smart.book = built.book
        built.dead_man_switch = DeadMansSwitch(writer, read_engine, built.book, clock)
        built.compliance = ComplianceScreen(
            ComplianceSources(
                settings.sanctions_file or DEVNET_SANCTIONS,
                settings.compliance_rules_file or DEVNET_RULES,
            ),
            FileKycProvider(settings.kyc_file or DEVNET_KYC),
            catalogue,
            validator,
            owners=None if signatures is None else signatures.owner,
        )
        built.compliance.attach(built.book)
        orders.compliance = built.compliance
        for venue in venues:
            if isinstance(venue, InternalVenue):
                venue.attach(built.book)  # the hub and the router see the internal book
        tape = TradeTape(venues, clock=clock)
        built.venue_children = venue_children
        built.tca = TransactionCostAnalysis(read_engine, routes, clock, tape)
        built.legging = LeggingRunner(
            writer, read_engine, orders, smart, market_data, catalogue, clock
        )
        built.algos = AlgoRunner(
            writer, read_engine, orders, smart, market_data, catalogue, clock, tape=tape
        )
        built.key_revocations = None
        if signatures is not None:
            settled = built.settlement
            built.key_revocations = KeyRevocationFollower(
                signatures,
                read_engine,
                orders,
                built.book,
                built.legging,
                # the settlement reconciler's depth: how deep a reorg is expected to be
                confirmations=0 if settled is None else settled.reconciler.confirmations,
            )
        if replicated:
            built._replicate()
        return built

    def _replicate(self) -> None:
        """One of several replicas: every single-writer role is held through one lease."""
        if self.settings.database_url.startswith("sqlite"):
            raise ReplicaRefused(
                "replicas need PostgreSQL: SQLite is one process only (set "
                "ISTHMUS_DATABASE_URL=postgresql+psycopg://..., or run without --replica)"
            )
        replica_id = self.settings.replica_id or f"{socket.gethostname()}-{os.getpid()}"
        address = self.settings.replica_url or _own_url(self.settings.host, self.settings.port)
        self.leases = RoleLease(
            self.write_engine,
            PRIMARY_ROLE,
            replica_id,
            address,
            ttl=self.settings.lease_ttl_seconds,
            renew_every=self.settings.lease_renew_seconds,
            on_acquired=self._take_over,
            on_lost=self._lease_lost,
            pid=os.getpid(),
        )
        self.writer.fence = self.leases.fence
        # and what the store cannot refuse (orders to venues, transactions) checks it first
        self.venue_children.before_send = self.leases.ensure_fresh
        for venue in self.venues:
            if isinstance(venue, CcxtVenue):
                venue.before_write = self.leases.ensure_fresh
        if self.settlement is not None:
            self.settlement.sender.before_send = self.leases.ensure_fresh
        self.follower = EventFollower(self.write_engine, self.events, self.clock)

    def _lease_lost(self) -> None:
        if self.on_lease_lost is not None:
            self.on_lease_lost()

    async def _take_over(self, token: int) -> None:
        """This replica now holds the roles: rebuild their state from the store and the
        chain, as a restart does, then run them."""

        def read() -> tuple[list[Any], list[Any]]:
            with self.read_engine.connect() as connection:
                return [s.order for s in repo.open_orders(connection)], repo.all_fills(connection)

        open_orders, fills = await asyncio.to_thread(read)
        assert self.ledger is not None
        self.ledger.load(open_orders, fills)
        self.risk_controls.load()
        if self.settlement is not None:
            # a sender paused past its lease may still hold a signed batch: spend its nonce
            sender = self.settlement.sender
            nonce, tx_hash = await asyncio.to_thread(
                spend_next_nonce, sender.w3, sender.account, sender.chain_id
            )
            sender.resync_nonce()
            log.warning("spent the operator's nonce %s (%s) before settling", nonce, tx_hash)
        await self._start_roles(**self._role_options)
        log.warning("took over every role with lease token %s", token)

    async def start(
        self,
        *,
        expiry_interval: float | None = 1.0,
        monitor: bool = True,
        algos: bool = True,
        reconcile_interval: float | None = 5.0,
        settle_interval: float | None = 0.2,
        dead_man_switch: bool = True,
    ) -> None:
        """`algos=False`: algos are loaded and recovered but no background loop runs them
        (tests drive `self.algos.run_due` with simulated time). `reconcile_interval=None`:
        nothing is reconciled in the background, neither venue children nor trading-key
        revocations (tests call `self.key_revocations.run_once`). `dead_man_switch=False`: no
        timer fires countdowns (tests call `self.dead_man_switch.fire_due`).
        A replica starts its writer, its stream follower and its lease; the roles start when
        it takes the lease."""
        self.writer.start()
        options: dict[str, Any] = {
            "expiry_interval": expiry_interval,
            "monitor": monitor,
            "algos": algos,
            "reconcile_interval": reconcile_interval,
            "settle_interval": settle_interval,
            "dead_man_switch": dead_man_switch,
        }
        if self.leases is None:
            await self._start_roles(**options)
            return
        assert self.follower is not None
        self._role_options = options
        self.market_data.start()  # exchange and pool books for this replica's streams
        await asyncio.to_thread(self.follower.start_from_now)
        self.background.append(asyncio.create_task(self.follower.run(), name="event-follower"))
        self.background.append(asyncio.create_task(self.leases.run(), name="lease"))

    async def _start_roles(
        self,
        *,
        expiry_interval: float | None,
        monitor: bool,
        algos: bool,
        reconcile_interval: float | None,
        settle_interval: float | None,
        dead_man_switch: bool,
    ) -> None:
        """Everything only one process may run: the book, the runners, the risk monitor,
        the dead man's switch, the settlement sender and the reconcilers."""
        await self.orders.load_client_keys()  # the idempotency filter, before any order
        await self.book.load()  # the resting orders, in their time priority
        # before anything can trade with them: orders of countdowns that ran out while the
        # gateway was down, and of cancel-on-disconnect sessions that died with it
        await self.dead_man_switch.recover()
        if self.settlement is not None:
            await self.settlement.restore_in_flight()  # pool fills whose swaps are not mined
        # fills a stop left unrecorded first, then the routed orders it stranded are ended
        await self.venue_children.reconcile()
        await self.orders.cancel_stranded_immediate()
        # the lists, before any order: resting orders of accounts listed meanwhile are cancelled
        await self.compliance.reload()
        if self.leases is None:
            self.market_data.start()
        await self.algos.recover()  # after the routed orders a stop stranded were cancelled
        await self.legging.recover()
        if algos:
            self.background.append(asyncio.create_task(self.algos.run(), name="algo-runner"))
            self.background.append(asyncio.create_task(self.legging.run(), name="legging"))
        if self.monitor.webhook is not None:
            self.monitor.webhook.start()
        if dead_man_switch:
            self.background.append(
                asyncio.create_task(self.dead_man_switch.run(), name="dead-man-switch")
            )
        if expiry_interval is not None:
            self.background.append(asyncio.create_task(self._expire_loop(expiry_interval)))
        if monitor:
            self.background.append(asyncio.create_task(self.monitor.run(), name="risk-monitor"))
        if self.settlement is not None and settle_interval is not None:
            self.background.append(
                asyncio.create_task(self.settlement.run(settle_interval), name="settlement")
            )
        if reconcile_interval is not None:
            self.background.append(
                asyncio.create_task(self._reconcile_loop(reconcile_interval), name="reconciler")
            )
        if self.key_revocations is not None and reconcile_interval is not None:
            interval = self.settings.key_revocation_interval_seconds or reconcile_interval
            self.background.append(
                asyncio.create_task(self.key_revocations.run(interval), name="key-revocations")
            )
        for entry in self.attached:
            await entry.start()

    async def check_signature(self, spec: OrderSpec) -> None:
        """The owner's signature, when there is a chain to check it against; required when
        `require_signed_orders` is set."""
        [outcome] = await self.check_signatures([spec])
        if outcome is not None:
            raise outcome

    async def check_signatures(self, specs: Sequence[OrderSpec]) -> list[DomainError | None]:
        """`check_signature` for each of `specs`, its refusal in its place (None: passes),
        the chain read once for all of them."""
        outcomes: list[DomainError | None] = [None] * len(specs)
        required = self.settings.require_signed_orders
        checked = [i for i, spec in enumerate(specs) if spec.signed is not None or required]
        if not checked:
            return outcomes
        if self.signatures is None:
            if required:
                for i in checked:
                    outcomes[i] = SignatureRequired(
                        "signed orders are required but no chain is configured to check them",
                        field="signature",
                    )
            return outcomes  # stored as given; it cannot settle without a chain anyway
        verified = await self.signatures.verify_many([specs[i] for i in checked])
        for i, outcome in zip(checked, verified, strict=True):
            # a retry of an order stored earlier (its nonce since spent by its own fill) gets
            # that order back, or a conflict, from the order service: not this refusal
            if isinstance(outcome, SpentNonce) and await self.orders.is_stored(
                specs[i].account, specs[i].client_order_id
            ):
                outcome = None
            outcomes[i] = outcome
        return outcomes

    async def _reconcile_loop(self, interval: float) -> None:
        """Venue children whose outcome a venue did not give at once (a timeout)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.venue_children.reconcile()
            except Exception:
                log.exception("reconciling venue children failed")

    async def _expire_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await self.orders.expire_due()

    def attach(self, entry: Attached) -> None:
        """An entry point that calls these services: it starts when the roles start (on a
        replica, when it takes them over) and stops before anything else."""
        self.attached.append(entry)

    async def stop(self) -> None:
        for entry in reversed(self.attached):
            with contextlib.suppress(Exception):
                await entry.stop()
        if self.leases is not None:
            await self.leases.release()
        for task in self.background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.background.clear()
        if self.monitor.webhook is not None:
            await self.monitor.webhook.stop()
        await self.market_data.stop()
        for venue in self.venues:
            with contextlib.suppress(Exception):
                await venue.close()
        await self.writer.stop()
        if self.signatures is not None:
            await self.signatures.aclose()
        self.write_engine.dispose()
        self.read_engine.dispose()


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
