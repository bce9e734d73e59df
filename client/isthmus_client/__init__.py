"""isthmus-client: trade through an Isthmus gateway from your own key.

- `AsyncIsthmus` / `Isthmus` (sync): the HTTP API, orders and strategies signed locally;
- `Signer`, `ApiKey`, `OperatorToken`: who you are (keys never leave this process);
- `OrderStream`: the WebSocket, re-subscribed after reconnects, gaps reported;
- `WalletOps`: your MarginWallet on chain (create, deposit, withdraw, limits, keys, cancels,
  the expiry escape hatch);
- `audit.verify`: every settled fill checked against the chain, from an RPC URL alone.
"""

from isthmus_client import errors, strategies
from isthmus_client.client import AsyncIsthmus
from isthmus_client.credentials import ApiKey, OperatorToken, Signer
from isthmus_client.errors import ApiError, ChainError, IsthmusError, SigningRefused
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
from isthmus_client.signing import Instrument, Token
from isthmus_client.stream import BookUpdate, FillEvent, OrderEvent, OrderStream, StreamGap
from isthmus_client.sync import Isthmus
from isthmus_client.wallet import WalletOps

__all__ = [
    "ApiError",
    "ApiKey",
    "ApiKeyInfo",
    "AsyncIsthmus",
    "BatchItem",
    "BookUpdate",
    "ChainError",
    "ChainInfo",
    "Fill",
    "FillEvent",
    "Instrument",
    "Isthmus",
    "IsthmusError",
    "Leg",
    "NonceStore",
    "OperatorToken",
    "Order",
    "OrderEvent",
    "OrderStream",
    "SettlementBatch",
    "Signer",
    "SigningRefused",
    "StreamGap",
    "Token",
    "WalletOps",
    "errors",
    "strategies",
]
__version__ = "0.1.0"
