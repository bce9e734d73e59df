"""`AsyncIsthmus`: the whole HTTP API of an Isthmus gateway, typed, with orders signed here.

    async with AsyncIsthmus("http://127.0.0.1:8000", Signer.from_keystore(...)) as isthmus:
        order = await isthmus.place_order("WETH/USDC", "buy", "1", price="3000")

Who authenticates the requests is the `credential` (an `OperatorToken`, an `ApiKey` or a
`Signer`, which signs in with Ethereum on first use and again when its session ends); who
signs orders is the `signer` (by default the credential, when it is a `Signer`). A protocol
submitting its users' orders has an `ApiKey` as credential and the users sign elsewhere:
`submit()` takes a body they signed (`sign_order()` builds one).

Every order is signed from its own fields: the EIP-712 payload is built here from the
instrument (and the tokens' addresses), never taken from the gateway. Before signing the
first order of each shape (wallet, instruments, sides and ratios), the client asks the
gateway what it would have signed (`POST /v1/orders/typed-data`) and refuses
(`SigningRefused`) on any difference (`check_typed_data=False`: never asks); with an RPC URL
it also checks that each instrument id is registered on the Settlement contract. Retries are
safe: an order is resent byte for byte with its `client_order_id`, and the gateway answers a
repeat with the same order.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from eth_utils import to_checksum_address

from isthmus_client.credentials import ApiKey, OperatorToken, Signer
from isthmus_client.errors import (
    ApiError,
    IllegalTransition,
    InvalidSignature,
    IsthmusError,
    SigningRefused,
    TransportError,
)
from isthmus_client.models import (
    ApiKeyInfo,
    BatchItem,
    ChainInfo,
    Fill,
    Leg,
    Order,
    SettlementBatch,
)
from isthmus_client.nonces import NonceStore
from isthmus_client.signing import (
    Instrument,
    order_message,
    sign_typed_data,
    strategy_message,
    typed_data,
    typed_data_differences,
)
from isthmus_client.stream import OrderStream
from isthmus_client.wallet import WalletOps

Number = Decimal | int | str
JSON = dict[str, Any]
Levels = Sequence[tuple[Number, Number]]  # (price, quantity) per level
LegLike = Leg | tuple[str, str] | tuple[str, str, int]  # (instrument, side[, ratio])
RETRY_STATUSES = frozenset({502, 503, 504})
TERMINAL_STATUSES = frozenset({"filled", "cancelled", "rejected", "expired"})
DEFAULT_SIGNATURE_LIFETIME = 7 * 86_400  # seconds a signed order stays valid without expires_at
# a signed quote level is signed afresh when its signature has less than this left
QUOTE_RESIGN_SECONDS = 3_600


def _text(value: Number | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):  # money is never a float
        raise TypeError("give amounts as Decimal, int or str, never float")
    return format(Decimal(str(value)), "f")


def _path(*parts: str) -> str:
    return "/".join(quote(part, safe="") for part in parts)


def _body(**fields: Any) -> JSON:
    """A request body without the fields left at None."""
    return {key: value for key, value in fields.items() if value is not None}


class AsyncIsthmus:
    """The asynchronous client. Use it as an async context manager (or call `aclose()`)."""

    def __init__(
        self,
        url: str,
        credential: OperatorToken | ApiKey | Signer | None = None,
        *,
        signer: Signer | None = None,
        nonces: NonceStore | None = None,
        rpc_url: str | None = None,
        check_typed_data: bool = True,
        timeout: float = 30.0,
        retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.credential = credential
        self.signer = (
            signer
            if signer is not None
            else (credential if isinstance(credential, Signer) else None)
        )
        self.nonces = nonces if nonces is not None else NonceStore()
        self.rpc_url = rpc_url
        self.check_typed_data = check_typed_data
        self.retries = max(0, retries)
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, transport=transport)
        self._session: str | None = None
        self._session_lock = asyncio.Lock()
        self._chain: ChainInfo | None = None
        self._instruments: dict[str, Instrument] | None = None
        self._registered: dict[bytes, bool] = {}
        self._typed_data_agreed: set[tuple[Any, ...]] = set()
        # signed quote levels: (wallet, symbol, side, price) -> (quantity, signature body)
        self._quote_signatures: dict[tuple[str, str, str, str], tuple[str, JSON]] = {}
        self._nonce_wallets: set[tuple[int, str]] = set()  # the nonce store knows them

    async def __aenter__(self) -> AsyncIsthmus:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ transport

    async def auth_headers(self, method: str, path: str, body: bytes = b"") -> dict[str, str]:
        """The headers that authenticate one request (`path` with its `?query`)."""
        if isinstance(self.credential, OperatorToken | ApiKey):
            return self.credential.headers(method, path, body)
        if isinstance(self.credential, Signer):
            return {"Authorization": f"Bearer {await self._session_token()}"}
        return {}

    async def _session_token(self) -> str:
        async with self._session_lock:
            if self._session is None:
                self._session = await self._sign_in()
            return self._session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        retry: bool | None = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        """One API call; raises the typed `ApiError` for an error answer. `retry` (default:
        GET and DELETE) resends the same bytes after a dropped connection or a 502/503/504;
        the authentication headers are made anew for each attempt."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        target = f"{path}?{urlencode(query)}" if query else path
        content = b"" if body is None else _json_bytes(body)
        safe = method in ("GET", "DELETE") if retry is None else retry
        attempts = 1 + (self.retries if safe else 0)
        signed_in_again = False
        attempt = 0
        while True:
            attempt += 1
            headers = await self.auth_headers(method, target, content) if authenticated else {}
            if body is not None:
                headers["content-type"] = "application/json"
            try:
                response = await self._http.request(
                    method, target, content=content or None, headers=headers
                )
            except httpx.TransportError as error:
                if attempt < attempts:
                    await asyncio.sleep(0.2 * 2 ** (attempt - 1))
                    continue
                raise TransportError(f"{method} {target}: {error!r}") from error
            if response.status_code in RETRY_STATUSES and attempt < attempts:
                await asyncio.sleep(0.2 * 2 ** (attempt - 1))
                continue
            if (
                response.status_code == 401
                and isinstance(self.credential, Signer)
                and authenticated
                and not signed_in_again
            ):
                # the session ended (expired, signed out, the gateway lost it): sign in again
                signed_in_again = True
                self._session = None
                continue
            if response.status_code >= 400:
                raise ApiError.from_response(response)
            return response

    async def _json(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return (await self.request(method, path, body, **kw)).json()

    # ------------------------------------------------------------------ reference data

    async def health(self) -> JSON:
        result: JSON = await self._json("GET", "/v1/health")
        return result

    async def chain(self) -> ChainInfo:
        """The chain, contracts and tokens (read once, then kept)."""
        if self._chain is None:
            # public: read before any sign-in (the session's message names the chain)
            answer = await self._json("GET", "/v1/chain", authenticated=False)
            self._chain = ChainInfo.from_json(answer)
        return self._chain

    async def instruments(self) -> dict[str, Instrument]:
        """Every listed instrument by symbol (read once, then kept)."""
        if self._instruments is None:
            listed = await self._json("GET", "/v1/instruments")
            self._instruments = {i["symbol"]: Instrument.from_json(i) for i in listed}
        return self._instruments

    async def instrument(self, symbol: str) -> Instrument:
        found = (await self.instruments()).get(symbol)
        if found is None:
            self._instruments = None  # listed since? read again once
            found = (await self.instruments()).get(symbol)
        if found is None:
            raise IsthmusError(f"no instrument {symbol!r}")
        return found

    async def book(self, symbol: str) -> JSON:
        """The consolidated book (every venue's levels) of an instrument."""
        result: JSON = await self._json("GET", f"/v1/book/{symbol}")
        return result

    # ------------------------------------------------------------------ sessions

    async def _sign_in(self) -> str:
        """A new session: a fresh nonce, the EIP-4361 message, the key's signature. A dropped
        connection starts over with a new nonce (a nonce is single use)."""
        assert isinstance(self.credential, Signer)
        chain = await self.chain()
        for attempt in range(1 + self.retries):
            nonce = (await self._json("GET", "/v1/auth/siwe/nonce", authenticated=False))["nonce"]
            message = self.credential.sign_in_message(
                domain=self._http.base_url.netloc.decode(),
                uri=self.url,
                chain_id=chain.chain_id,
                nonce=nonce,
            )
            body = {"message": message, "signature": self.credential.sign_text(message)}
            try:
                session = await self._json(
                    "POST", "/v1/auth/siwe", body, retry=False, authenticated=False
                )
            except TransportError:
                if attempt == self.retries:
                    raise
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            return str(session["token"])
        raise AssertionError("unreachable")

    async def sign_in(self) -> str:
        """Sign in with Ethereum now (it happens on first use anyway); returns the session."""
        async with self._session_lock:
            self._session = await self._sign_in()
            return self._session

    async def sign_out(self) -> None:
        if self._session is not None:
            await self.request("DELETE", "/v1/auth/session")
            self._session = None

    # ------------------------------------------------------------------ signing

    def _signer_for(self, account: str | None, signer: Signer | None) -> tuple[Signer, str]:
        chosen = signer or self.signer
        if chosen is None:
            raise IsthmusError("no signer: give one to sign orders (Signer.from_keystore)")
        wallet = account or chosen.wallet
        if wallet is None:
            raise IsthmusError("which wallet? give `account` or a Signer with its wallet")
        if chosen.wallet is not None and to_checksum_address(wallet) != chosen.wallet:
            raise IsthmusError(f"this signer signs for {chosen.wallet}, not for {wallet}")
        return chosen, to_checksum_address(wallet)

    async def _nonce_floor(self, wallet: str, chain: ChainInfo) -> int:
        """Where the wallet's nonces start for this client: the gateway's next free nonce of
        the wallet (above every nonce its orders there hold, and the wallet's `min_nonce`), or
        the chain's `min_nonce` when the gateway cannot tell."""
        try:
            answer = await self._json("GET", f"/v1/accounts/{wallet}/next-nonce")
            return int(answer["next_nonce"])
        except (IsthmusError, KeyError, ValueError):
            return await asyncio.to_thread(self._min_nonce, wallet, chain)

    async def _resync_nonces(self, wallet: str) -> None:
        """The gateway refused a nonce another order holds (another process or machine of the
        same trader, or a store that forgot): hand out nonces from the gateway's next free."""
        chain = await self.chain()
        floor = await self._nonce_floor(wallet, chain)
        await asyncio.to_thread(self.nonces.skip_to, chain.chain_id, wallet, floor)

    def _min_nonce(self, wallet: str, chain: ChainInfo) -> int:
        """The wallet's on-chain floor of nonces (0 when the client cannot read the chain)."""
        rpc = self.rpc_url or chain.rpc_url
        if rpc is None:
            return 0
        from isthmus_client.contracts import margin_wallet, web3_for

        try:
            return int(margin_wallet(web3_for(rpc), wallet).functions.min_nonce().call())
        except Exception:  # no wallet there yet, or no node: nonces start at 1
            return 0

    async def _check_registered(self, instruments: Sequence[Instrument], chain: ChainInfo) -> None:
        rpc = self.rpc_url or chain.rpc_url
        if rpc is None:
            return
        from isthmus_client.contracts import settlement, web3_for

        for instrument in instruments:
            ident = instrument.onchain_id(chain.tokens)
            if ident not in self._registered:
                contract = settlement(web3_for(rpc), chain.settlement)
                self._registered[ident] = bool(
                    await asyncio.to_thread(contract.functions.registered(ident).call)
                )
            if not self._registered[ident]:
                raise SigningRefused(
                    f"{instrument.symbol}: its id 0x{ident.hex()} is not registered on the "
                    f"Settlement contract {chain.settlement}: nothing would settle it"
                )

    async def _sign(
        self,
        kind: str,
        body: JSON,
        signer: Signer,
        wallet: str,
        nonce: int | None,
        deadline: int | None,
    ) -> JSON:
        chain = await self.chain()
        if nonce is None:
            floor: int | None = None
            if (chain.chain_id, wallet) not in self._nonce_wallets:
                if not await asyncio.to_thread(self.nonces.knows, chain.chain_id, wallet):
                    floor = await self._nonce_floor(wallet, chain)
                self._nonce_wallets.add((chain.chain_id, wallet))

            def start() -> int:  # asked on the wallet's first use only
                return floor if floor is not None else self._min_nonce(wallet, chain)

            nonce = await asyncio.to_thread(self.nonces.take, chain.chain_id, wallet, start)
        if deadline is None:
            expires = body.get("expires_at")
            deadline = (
                int(datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp())
                if isinstance(expires, str)
                else int(time.time()) + DEFAULT_SIGNATURE_LIFETIME
            )
        if kind == "order":
            instrument = await self.instrument(body["instrument"])
            instruments = [instrument]
            message: Any = order_message(
                instrument,
                chain.tokens,
                side=body["side"],
                quantity=Decimal(body["quantity"]),
                price=Decimal(body["price"]),
                nonce=nonce,
                deadline=deadline,
            )
        else:
            instruments = [await self.instrument(leg["instrument"]) for leg in body["legs"]]
            message = strategy_message(
                [
                    (instrument, leg["side"], int(leg.get("ratio", 1)))
                    for instrument, leg in zip(instruments, body["legs"], strict=True)
                ],
                chain.tokens,
                side=body.get("side", "buy"),
                quantity=Decimal(body["quantity"]),
                price=Decimal(body["price"]),
                nonce=nonce,
                deadline=deadline,
            )
        local = typed_data(message, chain.chain_id, wallet)
        await self._check_registered(instruments, chain)
        # what the gateway would sign depends on the order's shape (its wallet, instruments,
        # sides and ratios, a net debit or credit), the rest being numbers both sides encode
        # alike: agreed once per
        # shape, a market maker's next orders cost no extra request. A gateway that changed
        # its encoding later would refuse the signature; nothing else could settle.
        shape = (
            kind,
            wallet,
            body.get("side", "buy"),
            body.get("instrument"),
            tuple(
                (leg["instrument"], leg["side"], int(leg.get("ratio", 1)))
                for leg in body.get("legs", ())
            ),
            str(body.get("price", "")).startswith("-"),  # a strategy's credit is signed apart
        )
        if self.check_typed_data and shape not in self._typed_data_agreed:
            remote = await self._json(
                "POST",
                "/v1/orders/typed-data",
                {kind: body, "nonce": str(nonce), "deadline": deadline},
                retry=True,
            )
            differences = typed_data_differences(local, remote)
            if differences:
                raise SigningRefused(
                    "the gateway's typed data differs from the order's own: not signed ("
                    + "; ".join(differences)
                    + ")",
                    differences,
                )
            self._typed_data_agreed.add(shape)
        signature = sign_typed_data(signer.account, local)
        return {
            **body,
            "signature": {
                "nonce": str(nonce),
                "deadline": deadline,
                "signature": "0x" + signature.hex(),
            },
        }

    def _order_body(
        self,
        account: str,
        instrument: str,
        side: str,
        quantity: Number,
        *,
        price: Number | None,
        client_order_id: str | None,
        type: str | None = None,
        route: str | None = None,
        time_in_force: str | None = None,
        post_only: bool | None = None,
        stop_price: Number | None = None,
        expires_at: datetime | None = None,
    ) -> JSON:
        return _body(
            account=to_checksum_address(account),
            client_order_id=client_order_id or _new_client_order_id(),
            instrument=instrument,
            side=side,
            quantity=_text(quantity),
            price=_text(price),
            type=type,
            route=route,
            time_in_force=time_in_force,
            post_only=post_only,
            stop_price=_text(stop_price),
            expires_at=None if expires_at is None else _iso(expires_at),
        )

    def _strategy_body(
        self,
        account: str,
        legs: Sequence[LegLike],
        side: str,
        quantity: Number,
        *,
        price: Number,
        client_order_id: str | None,
        time_in_force: str | None = None,
        expires_at: datetime | None = None,
        route: str | None = None,
        legging: Mapping[str, Any] | None = None,
    ) -> JSON:
        return _body(
            account=to_checksum_address(account),
            client_order_id=client_order_id or _new_client_order_id(),
            legs=[_leg_json(leg) for leg in legs],
            side=side,
            quantity=_text(quantity),
            price=_text(price),
            time_in_force=time_in_force,
            expires_at=None if expires_at is None else _iso(expires_at),
            route=route,
            legging=None if legging is None else dict(legging),
        )

    async def sign_order(
        self,
        instrument: str,
        side: str,
        quantity: Number,
        *,
        price: Number,
        account: str | None = None,
        client_order_id: str | None = None,
        route: str | None = None,
        time_in_force: str | None = None,
        post_only: bool | None = None,
        expires_at: datetime | None = None,
        signer: Signer | None = None,
        nonce: int | None = None,
        deadline: int | None = None,
    ) -> JSON:
        """The body of `POST /v1/orders` for a limit order, signed here (EIP-712) by `signer`
        (default: the client's) for its wallet. Give it to `submit()`, or to a protocol."""
        chosen, wallet = self._signer_for(account, signer)
        body = self._order_body(
            wallet,
            instrument,
            side,
            quantity,
            price=price,
            client_order_id=client_order_id,
            route=route,
            time_in_force=time_in_force,
            post_only=post_only,
            expires_at=expires_at,
        )
        return await self._sign("order", body, chosen, wallet, nonce, deadline)

    async def sign_strategy(
        self,
        legs: Sequence[LegLike],
        side: str,
        quantity: Number,
        *,
        price: Number,
        account: str | None = None,
        client_order_id: str | None = None,
        time_in_force: str | None = None,
        expires_at: datetime | None = None,
        route: str | None = None,
        legging: Mapping[str, Any] | None = None,
        signer: Signer | None = None,
        nonce: int | None = None,
        deadline: int | None = None,
    ) -> JSON:
        """The body of `POST /v1/strategies`, signed here: `legs` as written for a buyer
        (`isthmus_client.strategies` builds the usual ones), `price` the net per unit
        (positive pays, negative receives)."""
        chosen, wallet = self._signer_for(account, signer)
        body = self._strategy_body(
            wallet,
            legs,
            side,
            quantity,
            price=price,
            client_order_id=client_order_id,
            time_in_force=time_in_force,
            expires_at=expires_at,
            route=route,
            legging=legging,
        )
        return await self._sign("strategy", body, chosen, wallet, nonce, deadline)

    async def typed_data(self, body: Mapping[str, Any], nonce: int, deadline: int) -> JSON:
        """What the gateway says a wallet signs for this order or strategy body (for
        comparison only: the client signs its own payload)."""
        kind = "strategy" if "legs" in body else "order"
        unsigned = {k: v for k, v in body.items() if k != "signature"}
        result: JSON = await self._json(
            "POST",
            "/v1/orders/typed-data",
            {kind: unsigned, "nonce": str(nonce), "deadline": deadline},
            retry=True,
        )
        return result

    # ------------------------------------------------------------------ orders

    async def submit(self, body: Mapping[str, Any]) -> Order:
        """Send an order or strategy body as is (signed or not): `POST /v1/strategies` when
        it has legs, else `POST /v1/orders`. Retried safely (same bytes, same
        client_order_id); `Order.created` tells whether this request created it."""
        path = "/v1/strategies" if "legs" in body else "/v1/orders"
        response = await self.request("POST", path, dict(body), retry=True)
        return Order.from_json(response.json(), created=response.status_code == 201)

    async def place_order(
        self,
        instrument: str,
        side: str,
        quantity: Number,
        *,
        price: Number | None = None,
        account: str | None = None,
        client_order_id: str | None = None,
        type: str | None = None,
        route: str | None = None,
        time_in_force: str | None = None,
        post_only: bool | None = None,
        stop_price: Number | None = None,
        expires_at: datetime | None = None,
        sign: bool | None = None,
        signer: Signer | None = None,
        nonce: int | None = None,
        deadline: int | None = None,
    ) -> Order:
        """Place an order. Signed (EIP-712, here) when there is a signer and `sign` is not
        False; a signed order is a limit order (give `price`). `route="smart"` splits it
        across venues at once (`time_in_force="ioc"`)."""
        if sign is None:
            sign = (signer or self.signer) is not None
        if sign:
            if price is None or type not in (None, "limit") or stop_price is not None:
                raise IsthmusError("a signed order is a plain limit order: give its price")
            chosen, account = self._signer_for(account, signer)
        elif account is None:
            raise IsthmusError("an unsigned order needs its account")
        body = self._order_body(
            account,
            instrument,
            side,
            quantity,
            price=price,
            client_order_id=client_order_id,
            type=type,
            route=route,
            time_in_force=time_in_force,
            post_only=post_only,
            stop_price=stop_price,
            expires_at=expires_at,
        )
        if not sign:
            return await self.submit(body)
        return await self._submit_signed("order", body, chosen, account, nonce, deadline)

    async def place_strategy(
        self,
        legs: Sequence[LegLike],
        side: str,
        quantity: Number,
        *,
        price: Number,
        account: str | None = None,
        client_order_id: str | None = None,
        time_in_force: str | None = None,
        expires_at: datetime | None = None,
        route: str | None = None,
        legging: Mapping[str, Any] | None = None,
        sign: bool | None = None,
        signer: Signer | None = None,
        nonce: int | None = None,
        deadline: int | None = None,
    ) -> Order:
        """Place a multi-leg strategy: all legs fill together in their ratios, or nothing
        does (`route="legged"` executes it leg by leg on the exchanges, within `legging`)."""
        if sign is None:
            sign = (signer or self.signer) is not None
        if sign:
            chosen, account = self._signer_for(account, signer)
        elif account is None:
            raise IsthmusError("an unsigned strategy needs its account")
        body = self._strategy_body(
            account,
            legs,
            side,
            quantity,
            price=price,
            client_order_id=client_order_id,
            time_in_force=time_in_force,
            expires_at=expires_at,
            route=route,
            legging=legging,
        )
        if not sign:
            return await self.submit(body)
        return await self._submit_signed("strategy", body, chosen, account, nonce, deadline)

    async def _submit_signed(
        self,
        kind: str,
        body: JSON,
        signer: Signer,
        wallet: str,
        nonce: int | None,
        deadline: int | None,
    ) -> Order:
        """Sign and submit; a nonce the client chose that another order of the wallet holds
        (this client's nonce store is behind the gateway) is chosen again, once, from the
        gateway's next free nonce. A nonce the caller gave is never changed."""
        signed = await self._sign(kind, body, signer, wallet, nonce, deadline)
        try:
            return await self.submit(signed)
        except InvalidSignature as error:
            if nonce is not None or error.field != "signature.nonce":
                raise
        await self._resync_nonces(wallet)
        return await self.submit(await self._sign(kind, body, signer, wallet, None, deadline))

    async def place_batch(self, orders: Sequence[Mapping[str, Any]]) -> list[BatchItem]:
        """Up to 100 direct orders in one request (bodies as `sign_order()` makes them, or
        unsigned); each answered on its own, as if sent alone."""
        answer = await self._json(
            "POST", "/v1/orders/batch", {"orders": [dict(o) for o in orders]}, retry=True
        )
        return [_batch_item(index, item) for index, item in enumerate(answer["results"])]

    async def get_order(self, order_id: str) -> Order:
        return Order.from_json(await self._json("GET", f"/v1/orders/{_path(order_id)}"))

    async def list_orders(
        self,
        *,
        account: str | None = None,
        status: str | None = None,
        instrument: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[Order], str | None]:
        """One page of orders, oldest first, and the cursor of the next page (None: last)."""
        page = await self._json(
            "GET",
            "/v1/orders",
            params={
                "account": account,
                "status": status,
                "instrument": instrument,
                "limit": limit,
                "cursor": cursor,
            },
        )
        return [Order.from_json(o) for o in page["items"]], page.get("next_cursor")

    async def iter_orders(self, **filters: Any) -> AsyncIterator[Order]:
        """Every order that matches, page after page."""
        cursor: str | None = None
        while True:
            page, cursor = await self.list_orders(cursor=cursor, **filters)
            for order in page:
                yield order
            if cursor is None:
                return

    async def amend_order(
        self,
        order_id: str,
        *,
        price: Number | None = None,
        quantity: Number | None = None,
        expected_version: int | None = None,
    ) -> Order:
        """Change a resting order's price or quantity (a smaller quantity keeps its place)."""
        body = _body(
            price=_text(price), quantity=_text(quantity), expected_version=expected_version
        )
        return Order.from_json(await self._json("PATCH", f"/v1/orders/{_path(order_id)}", body))

    async def cancel_order(self, order_id: str) -> Order:
        path = f"/v1/orders/{_path(order_id)}"
        lost = False  # an attempt's answer was lost: that attempt may have cancelled it
        for attempt in range(1 + self.retries):
            if attempt:
                await asyncio.sleep(0.2 * 2 ** (attempt - 1))
            try:
                return Order.from_json(await self._json("DELETE", path, retry=False))
            except IllegalTransition:
                if lost:  # a cancel is not idempotent: the retry finds it cancelled already
                    order = await self.get_order(order_id)
                    if order.status == "cancelled":
                        return order
                raise
            except (TransportError, ApiError) as error:
                if attempt == self.retries or (
                    isinstance(error, ApiError) and error.status not in RETRY_STATUSES
                ):
                    raise
                lost = True
        raise AssertionError("unreachable")

    async def cancel_orders(
        self,
        order_ids: Sequence[str] | None = None,
        *,
        account: str | None = None,
        instrument: str | None = None,
        side: str | None = None,
    ) -> list[BatchItem]:
        """Cancel by ids (each its own answer), or every resting order of `account` (on
        `instrument`, on `side`) in one step."""
        body = _body(
            order_ids=None if order_ids is None else list(order_ids),
            account=account,
            instrument=instrument,
            side=side,
        )
        answer = await self._json("POST", "/v1/orders/cancel", body, retry=True)
        return [_batch_item(index, item) for index, item in enumerate(answer["results"])]

    async def mass_quote(
        self,
        account: str | None,
        quotes: Mapping[str, tuple[Levels, Levels]],
        *,
        sign: bool = False,
        signer: Signer | None = None,
        deadline: int | None = None,
    ) -> JSON:
        """The account's quotes on each instrument become exactly these levels:
        `{symbol: ([(bid price, quantity)...], [(ask price, quantity)...])}`; unchanged
        levels keep their place in the queue.

        `sign=True`: each level is signed here (EIP-712, by `signer` or the client's, for
        its wallet: `account` may then be None), so its fills settle on chain, and callers
        that may send only signed orders (trading keys, API keys) may quote. The gateway
        keeps a signed quote only for the very signature it rests with, so the client sends
        an unchanged level with the signature it signed it with before (while more than
        `QUOTE_RESIGN_SECONDS` of its deadline remain, and unless a `deadline` is given): it
        keeps its place in the queue, partly filled or not. A changed level, or one the
        gateway refused, is signed afresh (a new order, at the back of the queue); a kept
        signature refused because its quote traded meanwhile is signed afresh and the quote
        sent once more, in the same call."""
        chosen: Signer | None = None
        if sign:
            chosen, account = self._signer_for(account, signer)
        elif account is None:
            raise IsthmusError("an unsigned quote needs its account")
        now = int(time.time())
        reused: set[tuple[str, str, str, str]] = set()  # levels sent with a kept signature

        async def level(symbol: str, side: str, price: Number, quantity: Number) -> JSON:
            entry: JSON = {"price": _text(price), "quantity": _text(quantity)}
            if chosen is None:
                return entry
            assert account is not None
            key = (account, symbol, side, entry["price"])
            kept = self._quote_signatures.get(key)
            if (
                deadline is not None
                or kept is None
                or kept[0] != entry["quantity"]
                or kept[1]["deadline"] <= now + QUOTE_RESIGN_SECONDS
            ):
                order = self._order_body(
                    account,
                    symbol,
                    side,
                    quantity,
                    price=price,
                    client_order_id=None,
                    post_only=True,
                )
                signed = await self._sign("order", order, chosen, account, None, deadline)
                kept = (entry["quantity"], signed["signature"])
            else:
                reused.add(key)
            self._quote_signatures[key] = kept
            return {**entry, "signature": kept[1]}

        if chosen is not None:
            # remembered: this quote's levels only (what it no longer gives is withdrawn)
            given = {
                (account, symbol, side, _text(p))
                for symbol, (bids, asks) in quotes.items()
                for side, levels in (("buy", bids), ("sell", asks))
                for p, _ in levels
            }
            self._quote_signatures = {
                k: v
                for k, v in self._quote_signatures.items()
                if k in given or k[0] != account or k[1] not in quotes
            }
        for attempt in range(2):
            reused.clear()
            body = {
                "account": account,
                "quotes": [
                    {
                        "instrument": symbol,
                        "bids": [await level(symbol, "buy", p, q) for p, q in bids],
                        "asks": [await level(symbol, "sell", p, q) for p, q in asks],
                    }
                    for symbol, (bids, asks) in quotes.items()
                ],
            }
            result: JSON = await self._json("POST", "/v1/quotes", body, retry=True)
            spent = behind = False
            for answer in result.get("levels", ()):
                if answer.get("action") != "refused":
                    continue
                key = (account or "", answer["instrument"], answer["side"], answer["price"])
                self._quote_signatures.pop(key, None)  # signed afresh next time
                field = (answer.get("error") or {}).get("field")
                if field == "signature.nonce":
                    spent = True
                    behind = behind or key not in reused
            if not (spent and attempt == 0):
                return result
            # a kept signature whose quote traded meanwhile, or a fresh one whose nonce another
            # order holds (the nonce store is behind): once more, those signed afresh
            if behind:
                assert account is not None
                await self._resync_nonces(account)
        return result

    async def cancel_all_after(
        self, timeout_seconds: int, accounts: Sequence[str] | None = None
    ) -> JSON:
        """The dead man's switch: unless called again within `timeout_seconds`, every resting
        order of the accounts is cancelled (0 disarms it)."""
        body = _body(
            timeout_seconds=timeout_seconds, accounts=None if accounts is None else list(accounts)
        )
        result: JSON = await self._json("POST", "/v1/orders/cancel-all-after", body, retry=True)
        return result

    # ------------------------------------------------------------------ fills and settlement

    async def fills(self, order_id: str) -> list[Fill]:
        listed = await self._json("GET", f"/v1/orders/{_path(order_id)}/fills")
        return [Fill.from_json(f) for f in listed]

    async def settlement(self, batch_id: str) -> SettlementBatch:
        return SettlementBatch.from_json(
            await self._json("GET", f"/v1/settlements/{_path(batch_id)}")
        )

    async def wait_settled(
        self, order_id: str, *, timeout: float = 120.0, poll: float = 0.25
    ) -> list[Fill]:
        """The order's fills once the order is done (filled, cancelled, expired, rejected)
        and every fill of it is settled on chain; a failed settlement raises, and so does
        `TimeoutError` after `timeout` seconds. An order done without a fill returns []."""
        deadline = time.monotonic() + timeout
        interval = poll
        while True:
            order = await self.get_order(order_id)
            fills = await self.fills(order_id)
            failed = [f for f in fills if f.settlement == "failed"]
            if failed:
                raise IsthmusError(f"settlement failed for fills {[f.id for f in failed]}")
            if any(f.settlement == "none" for f in fills):
                raise IsthmusError(f"order {order_id} is not signed: its fills settle off chain")
            if order.status in TERMINAL_STATUSES and all(f.settlement == "settled" for f in fills):
                return fills
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"order {order_id} ({order.status}): not done and settled after {timeout}s"
                )
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, 2.0)

    # ------------------------------------------------------------------ routing and algos

    async def quote(self, instrument: str, side: str, quantity: Number) -> JSON:
        """What the smart order router would do now: the split across venues, prices, fees."""
        result: JSON = await self._json(
            "POST",
            "/v1/quote",
            {"instrument": instrument, "side": side, "quantity": _text(quantity)},
            retry=True,
        )
        return result

    async def start_algo(self, **spec: Any) -> JSON:
        """`POST /v1/algos` (twap, vwap, pov, iceberg, sniper...): the fields of its body."""
        body = {k: _text(v) if isinstance(v, Decimal) else v for k, v in spec.items()}
        result: JSON = await self._json("POST", "/v1/algos", body)
        return result

    async def algo(self, algo_id: str) -> JSON:
        result: JSON = await self._json("GET", f"/v1/algos/{_path(algo_id)}")
        return result

    async def pause_algo(self, algo_id: str) -> JSON:
        result: JSON = await self._json("POST", f"/v1/algos/{_path(algo_id)}/pause", retry=True)
        return result

    async def resume_algo(self, algo_id: str) -> JSON:
        result: JSON = await self._json("POST", f"/v1/algos/{_path(algo_id)}/resume", retry=True)
        return result

    async def cancel_algo(self, algo_id: str) -> JSON:
        result: JSON = await self._json("POST", f"/v1/algos/{_path(algo_id)}/cancel", retry=True)
        return result

    async def legging(self, order_id: str) -> JSON:
        """A legged strategy's clips and their state."""
        result: JSON = await self._json("GET", f"/v1/strategies/{_path(order_id)}/legging")
        return result

    async def tca(self, parent_id: str) -> JSON:
        """Transaction cost analysis of a smart order or algo: costs against benchmarks."""
        result: JSON = await self._json("GET", f"/v1/orders/{_path(parent_id)}/tca")
        return result

    # ------------------------------------------------------------------ risk

    async def account_risk(self, account: str) -> JSON:
        result: JSON = await self._json("GET", f"/v1/accounts/{_path(account)}/risk")
        return result

    async def what_if(
        self,
        *,
        order: Mapping[str, Any] | None = None,
        strategy: Mapping[str, Any] | None = None,
        confidence: float | None = None,
        horizon_days: int | None = None,
    ) -> JSON:
        """The account's risk as it would be with this order or strategy added."""
        body = _body(
            order=None if order is None else dict(order),
            strategy=None if strategy is None else dict(strategy),
            confidence=confidence,
            horizon_days=horizon_days,
        )
        result: JSON = await self._json("POST", "/v1/risk/what-if", body, retry=True)
        return result

    async def limits(self, account: str) -> JSON:
        result: JSON = await self._json("GET", f"/v1/risk/limits/{_path(account)}")
        return result

    async def set_limits(self, account: str, **limits: Any) -> JSON:
        """Operator: an account's pre-trade limits (the fields of `PUT /v1/risk/limits`)."""
        body = {
            k: _text(v) if isinstance(v, Decimal | int) and not isinstance(v, bool) else v
            for k, v in limits.items()
        }
        result: JSON = await self._json(
            "PUT", f"/v1/risk/limits/{_path(account)}", body, retry=True
        )
        return result

    async def reset_limits(self, account: str) -> JSON:
        result: JSON = await self._json("DELETE", f"/v1/risk/limits/{_path(account)}")
        return result

    async def kill_switches(self) -> list[JSON]:
        result: list[JSON] = await self._json("GET", "/v1/risk/kill-switches")
        return result

    async def set_kill_switch(self, scope: str, engaged: bool, reason: str | None = None) -> JSON:
        body = _body(engaged=engaged, reason=reason)
        result: JSON = await self._json(
            "PUT", f"/v1/risk/kill-switches/{_path(scope)}", body, retry=True
        )
        return result

    async def risk_book(self) -> JSON:
        """Operator: the inventory wallet's positions and P&L against its exchange hedges."""
        result: JSON = await self._json("GET", "/v1/risk/book")
        return result

    async def hedging(self, account: str) -> JSON:
        result: JSON = await self._json("GET", f"/v1/risk/hedging/{_path(account)}")
        return result

    async def set_hedging(self, account: str, **policy: Any) -> JSON:
        result: JSON = await self._json(
            "PUT", f"/v1/risk/hedging/{_path(account)}", policy, retry=True
        )
        return result

    async def stop_hedging(self, account: str) -> JSON:
        result: JSON = await self._json("DELETE", f"/v1/risk/hedging/{_path(account)}")
        return result

    # ------------------------------------------------------------------ audit and access

    async def audit_verify(self) -> JSON:
        """The gateway's own audit: every fill against the chain and the hash-chained log
        (`isthmus_client.audit.verify` checks the chain without the gateway)."""
        result: JSON = await self._json("GET", "/v1/audit/verify")
        return result

    async def audit_fills(self, **params: Any) -> JSON:
        result: JSON = await self._json("GET", "/v1/audit/fills", params=params)
        return result

    async def audit_log(self, **params: Any) -> JSON:
        result: JSON = await self._json("GET", "/v1/audit/log", params=params)
        return result

    async def fills_export(self, *, account: str | None = None, format: str = "csv") -> bytes:
        response = await self.request(
            "GET", "/v1/fills/export", params={"account": account, "format": format}
        )
        return response.content

    async def create_api_key(
        self,
        *,
        role: str = "protocol",
        scopes: Sequence[str] = ("read",),
        accounts: Sequence[str] = (),
        label: str | None = None,
    ) -> ApiKeyInfo:
        """Operator: a new API key; its `secret` is in this answer only."""
        body = _body(role=role, scopes=list(scopes), accounts=list(accounts), label=label)
        return ApiKeyInfo.from_json(await self._json("POST", "/v1/api-keys", body))

    async def api_keys(self) -> list[ApiKeyInfo]:
        return [ApiKeyInfo.from_json(k) for k in await self._json("GET", "/v1/api-keys")]

    async def revoke_api_key(self, key_id: str) -> None:
        await self.request("DELETE", f"/v1/api-keys/{_path(key_id)}")

    async def compliance_account(self, account: str) -> JSON:
        result: JSON = await self._json("GET", f"/v1/compliance/accounts/{_path(account)}")
        return result

    async def compliance_reload(self) -> JSON:
        result: JSON = await self._json("POST", "/v1/compliance/reload", retry=True)
        return result

    # ------------------------------------------------------------------ streams and wallet

    def stream(
        self,
        *,
        accounts: Sequence[str] | None = None,
        books: Sequence[str] | None = None,
        reconnect: bool = True,
    ) -> OrderStream:
        """An `OrderStream` over `/v1/stream` with this client's credential: order events
        (and books), re-subscribed after a reconnect, with the gap reported."""

        connections = 0

        async def auth(method: str, path: str, body: bytes) -> dict[str, str]:
            nonlocal connections
            connections += 1
            if connections > 1 and isinstance(self.credential, Signer):
                # a reconnect: the session may have ended (expired, a gateway restart), and
                # a refused handshake ends the stream for good: sign in anew
                await self.sign_in()
            return await self.auth_headers(method, path, body)

        return OrderStream(self.url, auth, accounts=accounts, books=books, reconnect=reconnect)

    async def wallet(
        self, *, rpc_url: str | None = None, progress: Callable[[str], None] | None = None
    ) -> WalletOps:
        """`WalletOps` for the signer's wallet on this gateway's chain (its calls wait for
        receipts: from async code, run them with `asyncio.to_thread`)."""
        if self.signer is None:
            raise IsthmusError("wallet operations are signed by a Signer: give one")
        chain = await self.chain()
        rpc = rpc_url or self.rpc_url or chain.rpc_url
        if rpc is None:
            raise IsthmusError("no RPC URL: give rpc_url (the gateway publishes none)")
        return WalletOps(rpc, self.signer, chain, progress=progress)


def _json_bytes(body: Any) -> bytes:
    import json

    return json.dumps(body, separators=(",", ":")).encode()


def _new_client_order_id() -> str:
    return "c-" + uuid.uuid4().hex[:24]


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("give an aware datetime (with its time zone)")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _leg_json(leg: LegLike) -> JSON:
    if isinstance(leg, Leg):
        return {"instrument": leg.instrument, "side": leg.side, "ratio": leg.ratio}
    ratio = leg[2] if len(leg) == 3 else 1
    return {"instrument": leg[0], "side": leg[1], "ratio": ratio}


def _batch_item(index: int, item: Mapping[str, Any]) -> BatchItem:
    status = int(item.get("status", 200))
    order = item.get("order")
    error = item.get("error")
    return BatchItem(
        index=index,
        status=status,
        order=None if order is None else Order.from_json(order, created=status == 201),
        error=None if error is None else ApiError.from_error(status, error),
        raw=dict(item),
    )
