"""A settlement desk on anvil for tests: traders with their own MarginWallets, a gateway
runtime that checks their signatures and settles on this chain (optionally with the Uniswap
pool as a venue), and helpers that sign orders and strategies as a wallet app would."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from web3 import Web3

from gateway.api.app import create_app
from gateway.chain import tokens
from gateway.chain.anvil import Anvil
from gateway.chain.deploy import DeployConfig, create_wallet, deploy_all
from gateway.chain.directory import ChainDirectory
from gateway.chain.onchain_orders import OnchainOrders
from gateway.chain.transactions import Sender
from gateway.chain.wallets import ChainWallets
from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.clock import Clock
from gateway.domain.instruments import InstrumentCatalogue
from gateway.domain.market import FeeSchedule
from gateway.oms.inventory import InventoryConfig
from gateway.oms.order_signatures import OrderSignatures
from gateway.oms.service import SystemClock
from gateway.oms.settlement_service import settlement_factory
from gateway.runtime import Runtime
from gateway.settlement import eip712
from gateway.venues.amm import Pool, UniswapV2Venue
from gateway.venues.internal import InternalVenue
from gateway.venues.protocol import Venue
from tests.operator_access import OPERATOR_TOKEN, operator_headers

USDC, WETH = 10**6, 10**18


async def wallet_app_signature(
    http: httpx.AsyncClient,
    order: dict[str, Any],
    signer: Any,
    wallet: str,
    chain_id: int,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """The `signature` of an order body as a wallet app makes it: the typed data the gateway
    gives for it, signed by `signer` (the wallet's owner or one of its trading keys)."""
    typed = await http.post(
        "/v1/orders/typed-data", json={"order": order, "nonce": str(nonce), "deadline": deadline}
    )
    message = eip712.order_from_message(typed.json()["message"])
    signature = eip712.sign_order(message, signer.key, chain_id, wallet)
    return {"nonce": str(nonce), "deadline": deadline, "signature": "0x" + signature.hex()}


class Desk:
    """Two traders with their own wallets, and a gateway that settles on this chain."""

    def __init__(self, w3: Web3, deployer: Sender, node: Anvil, database: str) -> None:
        accounts = node.dev_accounts()
        self.settler = accounts[6]
        self.d = deploy_all(deployer, DeployConfig(operators=(self.settler.address,)))
        self.w3 = w3
        self.seller, self.buyer, self.third = accounts[3], accounts[4], accounts[5]
        self.seller_wallet = create_wallet(deployer, self.d, self.seller.address)
        self.buyer_wallet = create_wallet(deployer, self.d, self.buyer.address)
        self.third_wallet = create_wallet(deployer, self.d, self.third.address)
        tokens.mint(deployer, self.d.weth, self.seller_wallet, 5 * WETH)
        tokens.mint(deployer, self.d.usdc, self.buyer_wallet, 20_000 * USDC)
        self.database = database
        self.rpc_url = node.rpc_url
        self.nonce = 0
        self.inventory: InventoryConfig | None = None

    def open_inventory(self, deployer: Sender, owner: LocalAccount, weth: int, usdc: int) -> str:
        """The operator's inventory MarginWallet, owned by `owner`, funded on chain."""
        wallet = create_wallet(deployer, self.d, owner.address)
        tokens.mint(deployer, self.d.weth, wallet, weth)
        tokens.mint(deployer, self.d.usdc, wallet, usdc)
        self.inventory = InventoryConfig(
            wallet,
            Web3.to_hex(owner.key),
            OnchainOrders(devnet_catalogue(), {"WETH": self.d.weth, "USDC": self.d.usdc}),
            int(self.w3.eth.chain_id),
            spread_bps=Decimal(5),
        )
        return wallet

    def runtime(
        self,
        *,
        require_signed: bool = True,
        pool: bool = False,
        venues: tuple[Venue, ...] = (),
        catalogue: InstrumentCatalogue | None = None,
        clock: Clock | None = None,
        tokens: dict[str, str] | None = None,
        **settings: Any,
    ) -> Runtime:
        """A gateway on this chain; `pool`: the WETH/USDC Uniswap pair is a venue too;
        `venues`: more (e.g. a simulated exchange); with `open_inventory` called before,
        signed orders' exchange fills settle against the inventory wallet."""
        catalogue = catalogue or devnet_catalogue()
        clock = clock or SystemClock()
        token_map = tokens or {"WETH": self.d.weth, "USDC": self.d.usdc}
        onchain = OnchainOrders(catalogue, token_map)
        if self.inventory is not None:  # the same instruments and tokens as the gateway's
            self.inventory = replace(self.inventory, onchain=onchain)
        venues_list: list[Venue] = [
            InternalVenue(catalogue, clock, FeeSchedule(Decimal(0), Decimal(0)))
        ]
        if pool:
            assert self.d.uniswap_router is not None
            venues_list.append(
                UniswapV2Venue(
                    "uniswap",
                    self.w3,
                    self.d.uniswap_router,
                    [Pool("WETH/USDC", self.d.weth_usdc_pair, self.d.weth, self.d.usdc, 18, 6)],
                    catalogue,
                    clock,
                    poll_interval=0.01,
                )
            )
        venues_all = [*venues_list, *venues]
        runtime = Runtime.build(
            Settings(
                database_url=self.database,
                require_signed_orders=require_signed,
                operator_token=OPERATOR_TOKEN,
                **settings,
            ),
            catalogue=catalogue,
            clock=clock,
            venues=venues_all,
            wallets=ChainWallets(self.w3, self.d.settlement) if self.inventory else None,
            signatures=OrderSignatures(self.w3, onchain, clock),
            settlement=settlement_factory(
                self.rpc_url, Web3.to_hex(self.settler.key), self.d.settlement, onchain
            ),
            inventory=self.inventory,
        )
        # `GET /v1/chain`, as a gateway with a chain serves it: what clients sign for
        runtime.chain_directory = ChainDirectory(
            self.w3, self.d.settlement, token_map, public_rpc_url=self.rpc_url
        )
        return runtime

    def balances(self, wallet: str) -> tuple[int, int]:
        return (
            tokens.balance_of(self.w3, self.d.weth, wallet),
            tokens.balance_of(self.w3, self.d.usdc, wallet),
        )

    async def order(
        self,
        http: httpx.AsyncClient,
        trader: Any,
        wallet: str,
        side: str,
        qty: str,
        price: str,
        **extra: Any,
    ) -> dict[str, Any]:
        self.nonce += 1
        body: dict[str, Any] = {
            "account": wallet,
            "client_order_id": f"o{self.nonce}",
            "instrument": "WETH/USDC",
            "side": side,
            "quantity": qty,
            "price": price,
            **extra,
        }
        deadline = int(self.w3.eth.get_block("latest")["timestamp"]) + 3600
        body["signature"] = await wallet_app_signature(
            http, body, trader, wallet, self.w3.eth.chain_id, self.nonce, deadline
        )
        response = await http.post("/v1/orders", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def strategy(
        self,
        http: httpx.AsyncClient,
        trader: Any,
        wallet: str,
        side: str,
        price: str,
        legs: list[dict[str, Any]],
        quantity: str = "1",
        **extra: Any,
    ) -> dict[str, Any]:
        """Sign a multi-leg strategy with the owner's key and submit it."""
        self.nonce += 1
        body: dict[str, Any] = {
            "account": wallet,
            "client_order_id": f"s{self.nonce}",
            "side": side,
            "quantity": quantity,
            "price": price,
            "legs": legs,
            **extra,
        }
        deadline = int(self.w3.eth.get_block("latest")["timestamp"]) + 3600
        typed = (
            await http.post(
                "/v1/orders/typed-data",
                json={"strategy": body, "nonce": str(self.nonce), "deadline": deadline},
            )
        ).json()
        signed = eip712.strategy_from_message(typed["message"])
        signature = eip712.sign_strategy(signed, trader.key, self.w3.eth.chain_id, wallet)
        body["signature"] = {
            "nonce": str(self.nonce),
            "deadline": deadline,
            "signature": "0x" + signature.hex(),
        }
        response = await http.post("/v1/strategies", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())


async def serve(rt: Runtime, *, as_operator: bool = True) -> httpx.AsyncClient:
    """Start the runtime with no background loops (the test drives settlement) and an HTTP
    client on its API, authenticated as the operator unless `as_operator` is False."""
    return httpx.AsyncClient(
        transport=await serve_transport(rt),
        base_url="http://gw",
        headers=operator_headers() if as_operator else None,
    )


async def serve_transport(rt: Runtime) -> httpx.ASGITransport:
    """Start the runtime with no background loops (the test drives settlement); its API as
    an in-process transport, for any HTTP client (e.g. `isthmus_client`'s)."""
    await rt.start(
        expiry_interval=None,
        monitor=False,
        algos=False,
        reconcile_interval=None,
        settle_interval=None,
    )
    app = create_app(runtime=rt)
    app.state.runtime = rt
    return httpx.ASGITransport(app=app)
