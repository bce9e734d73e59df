"""Many `eth_call`s in one JSON-RPC batch, sent from the event loop.

Intake asks the chain a few questions for every signed order (is its nonce spent, is its
trading key active and scoped for it). Through web3 each question was a worker-thread hop
and a request with web3's formatting around it: 4 to 5 ms an order on the devnet, and a
batch of 50 signed orders asked them one order after another (~7 ms each). Here all the
questions of one request, or of a whole batch of orders, go in one HTTP request on a
kept-alive connection, without leaving the loop.

An answer is the call's return data, or `None` where the node answered that call with an
error (a revert, no such function): the caller decides what a refusal means. A node that
cannot be reached, or answers something that is not a JSON-RPC batch answer, raises
`RpcUnavailable`, so an outage is never taken for a refusal.
"""

from __future__ import annotations

import asyncio
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, Final

import aiohttp
import orjson
from web3 import Web3

Call = tuple[str, bytes]  # (contract address, calldata)
_HEADERS: Final = {"Content-Type": "application/json"}


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), as
    web3's `requests` would use: None when there is none or the host bypasses it."""
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class RpcUnavailable(ConnectionError):
    """The node did not answer the batch (unreachable, timed out, or not a batch answer)."""


class EthCalls:
    # a node refuses a batch past its own limit (geth: 1,000 calls): larger ones go in
    # chunks of this many, sent at once
    CHUNK: Final = 500

    def __init__(
        self, url: str, *, timeout: float = 30.0, headers: dict[str, str] | None = None
    ) -> None:
        self.url = url
        self._timeout = timeout
        self._headers = {**(headers or {}), **_HEADERS}
        self._proxy = proxy_for(url)
        # a session belongs to the loop it was made on (its connections do): one per loop
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self.round_trips = 0  # batches the node answered

    @classmethod
    def for_web3(cls, w3: Web3) -> EthCalls | None:
        """Calls to the node `w3` speaks to over HTTP, with its timeout and headers (None
        for any other provider)."""
        url = getattr(w3.provider, "endpoint_uri", None)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return None
        kwargs: dict[str, Any] = getattr(w3.provider, "get_request_kwargs", lambda: {})()
        timeout = kwargs.get("timeout")
        headers = kwargs.get("headers")
        return cls(
            url,
            timeout=float(timeout) if isinstance(timeout, int | float) else 30.0,
            headers=dict(headers) if isinstance(headers, dict) else None,
        )

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            # a loop that ended took its connections with it: forget its session
            self._sessions = {k: v for k, v in self._sessions.items() if not k.is_closed()}
            # aiohttp, not httpx: 0.33 against 0.98 ms a round trip to the devnet's anvil
            # (not trust_env: it reads the environment's proxies again for every request,
            # +0.48 ms; they are read once, in __init__)
            session = self._sessions[loop] = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        return session

    async def call(self, calls: Sequence[Call], block: str = "latest") -> list[bytes | None]:
        """Each call's return data at `block` (None: the node refused that call)."""
        if len(calls) > self.CHUNK:
            chunks = [calls[i : i + self.CHUNK] for i in range(0, len(calls), self.CHUNK)]
            answers = await asyncio.gather(*(self._batch(chunk, block) for chunk in chunks))
            return [answer for chunk in answers for answer in chunk]
        return await self._batch(calls, block) if calls else []

    async def _batch(self, calls: Sequence[Call], block: str) -> list[bytes | None]:
        body = [
            {
                "jsonrpc": "2.0",
                "id": index,
                "method": "eth_call",
                "params": [{"to": to, "data": "0x" + data.hex()}, block],
            }
            for index, (to, data) in enumerate(calls)
        ]
        try:
            async with self._session().post(
                self.url,
                data=orjson.dumps(body),
                headers=self._headers,
                proxy=self._proxy,
                raise_for_status=True,
            ) as response:
                answers = orjson.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as error:
            raise RpcUnavailable(f"the node at {self.url} did not answer: {error}") from error
        if not isinstance(answers, list):  # a node without batches answers one error object
            raise RpcUnavailable(f"the node at {self.url} did not answer a batch: {answers!r}")
        results: dict[int, bytes | None] = {}
        for answer in answers:
            index = answer.get("id") if isinstance(answer, dict) else None
            if not isinstance(index, int) or not 0 <= index < len(calls):
                raise RpcUnavailable(f"the node at {self.url} answered an unknown id: {answer!r}")
            result = answer.get("result")
            results[index] = (
                bytes.fromhex(result[2:])
                if isinstance(result, str) and result.startswith("0x") and len(result) % 2 == 0
                else None
            )
        if len(results) != len(calls):
            raise RpcUnavailable(f"the node at {self.url} left calls of the batch unanswered")
        self.round_trips += 1
        return [results[index] for index in range(len(calls))]

    async def aclose(self) -> None:
        """Close the session of the running loop (those of ended loops are forgotten)."""
        sessions, self._sessions = self._sessions, {}
        session = sessions.get(asyncio.get_running_loop())
        if session is not None:
            await session.close()
