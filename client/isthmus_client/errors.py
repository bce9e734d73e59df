"""Typed exceptions: one class per stable error code the gateway answers with, grouped by
what the caller can do about it (`Rejected`: fix the order; `Conflict`: re-read; `RateLimited`:
wait `retry_after`). `ApiError.from_response` picks the class by the body's code; a code this
client does not know yet still raises the class of its HTTP status."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

__all__ = [
    "ApiError",
    "ChainError",
    "IsthmusError",
    "SigningRefused",
    "TransportError",
    "error_class",
]


class IsthmusError(Exception):
    """Everything this client raises."""


class TransportError(IsthmusError):
    """The gateway could not be reached (after the safe retries)."""


class SigningRefused(IsthmusError):
    """The client refused to sign: what the gateway asked to sign differs from the payload
    built locally from the order's own fields."""

    def __init__(self, message: str, differences: list[str] | None = None) -> None:
        super().__init__(message)
        self.differences = differences or []


class ChainError(IsthmusError):
    """A wallet transaction reverted or could not be sent; `reason` says why in words."""

    def __init__(self, reason: str, *, revert: str | None = None, tx_hash: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.revert = revert  # the contract's own revert string, if any
        self.tx_hash = tx_hash


class ApiError(IsthmusError):
    """An answer of the gateway with an error body `{"error": {"code", "message", "field"}}`."""

    code: ClassVar[str] = "error"
    status_default: ClassVar[int] = 0

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" ({field})" if field else ""))
        self.status = status
        self.error_code = code
        self.message = message
        self.field = field
        self.body = body
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
            error = body["error"]
            code, message, field = str(error["code"]), str(error["message"]), error.get("field")
        except (ValueError, KeyError, TypeError):
            body = response.text
            code, message, field = f"http_{response.status_code}", response.text[:200], None
        retry = response.headers.get("retry-after")
        return error_class(code, response.status_code)(
            response.status_code,
            code,
            message,
            field,
            body=body,
            retry_after=float(retry) if retry and retry.replace(".", "", 1).isdigit() else None,
        )

    @classmethod
    def from_error(cls, status: int, error: dict[str, Any]) -> ApiError:
        """From an error object of a batch item or a stream response."""
        code = str(error.get("code", "error"))
        return error_class(code, status)(
            status, code, str(error.get("message", "")), error.get("field"), body=error
        )


class BadRequest(ApiError):
    status_default = 400


class Unauthorized(ApiError):
    status_default = 401


class Forbidden(ApiError):
    status_default = 403


class NotFound(ApiError):
    status_default = 404


class MethodNotAllowed(ApiError):
    status_default = 405
    code = "method_not_allowed"


class Conflict(ApiError):
    status_default = 409


class PayloadTooLarge(ApiError):
    status_default = 413


class Rejected(ApiError):
    """422: the request is well formed but the gateway will not do it (validation, risk,
    liquidity, signature)."""

    status_default = 422


class VenueError(ApiError):
    status_default = 502


class RateLimited(ApiError):
    status_default = 429


class ServerError(ApiError):
    status_default = 500


class MalformedJson(BadRequest):
    code = "malformed_json"


class ValidationError(BadRequest):
    code = "validation_error"


class InvalidCursor(BadRequest):
    code = "invalid_cursor"


class BadRequestError(BadRequest):
    code = "bad_request"


class Unauthenticated(Unauthorized):
    code = "unauthenticated"


class UnauthorizedError(Unauthorized):
    code = "unauthorized"


class BadSignature(Unauthorized):
    code = "bad_signature"


class StaleRequest(Unauthorized):
    code = "stale_request"


class ReplayedRequest(Unauthorized):
    code = "replayed_request"


class SiweBadNonce(Unauthorized):
    code = "siwe_bad_nonce"


class SiweBadSignature(Unauthorized):
    code = "siwe_bad_signature"


class SiweEarly(Unauthorized):
    code = "siwe_early"


class SiweExpired(Unauthorized):
    code = "siwe_expired"


class SiweWrongChain(Unauthorized):
    code = "siwe_wrong_chain"


class SiweWrongDomain(Unauthorized):
    code = "siwe_wrong_domain"


class InvalidSiweMessage(Unauthorized):
    code = "invalid_siwe_message"


class SignInRefused(Unauthorized):
    code = "sign_in_refused"


class ForbiddenError(Forbidden):
    code = "forbidden"


class SignatureRequired(Forbidden):
    code = "signature_required"


class ComplianceRefused(Forbidden):
    code = "compliance_refused"


class InstrumentNotAllowed(Forbidden):
    code = "instrument_not_allowed"


class KillSwitchEngaged(Forbidden):
    code = "kill_switch_engaged"


class KeyExpired(Forbidden):
    code = "key_expired"


class KeyMaxNotional(Forbidden):
    code = "key_max_notional"


class KeyRefused(Forbidden):
    code = "key_refused"


class KeyRevoked(Forbidden):
    code = "key_revoked"


class KeyScope(Forbidden):
    code = "key_scope"


class InvalidAccounts(Forbidden):
    code = "invalid_accounts"


class AccountsRequired(Forbidden):
    code = "accounts_required"


class NotFoundError(NotFound):
    code = "not_found"


class OrderNotFound(NotFound):
    code = "order_not_found"


class AlgoNotFound(NotFound):
    code = "algo_not_found"


class BatchNotFound(NotFound):
    code = "batch_not_found"


class LeggingNotFound(NotFound):
    code = "legging_not_found"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"


class VenueOrderNotFound(NotFound):
    code = "venue_order_not_found"


class ConflictError(Conflict):
    code = "conflict"


class DuplicateClientOrderId(Conflict):
    code = "duplicate_client_order_id"


class VersionConflict(Conflict):
    code = "version_conflict"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class TcaUnavailable(Conflict):
    code = "tca_unavailable"


class RateLimitedError(RateLimited):
    code = "rate_limited"


class OrderRateExceeded(RateLimited):
    code = "order_rate_exceeded"


class InvalidOrder(Rejected):
    code = "invalid_order"


class InvalidPrice(Rejected):
    code = "invalid_price"


class InvalidPriceTick(Rejected):
    code = "invalid_price_tick"


class InvalidQuantity(Rejected):
    code = "invalid_quantity"


class InvalidQuantityLot(Rejected):
    code = "invalid_quantity_lot"


class QuantityBelowMinimum(Rejected):
    code = "quantity_below_minimum"


class PriceOutsideBand(Rejected):
    code = "price_outside_band"


class UnknownInstrument(Rejected):
    code = "unknown_instrument"


class InstrumentNotOnChain(Rejected):
    code = "instrument_not_on_chain"


class InvalidSignature(Rejected):
    code = "invalid_signature"


class InsufficientLiquidity(Rejected):
    code = "insufficient_liquidity"


class InsufficientMargin(Rejected):
    code = "insufficient_margin"


class NoReferencePrice(Rejected):
    code = "no_reference_price"


class NoInternalBook(Rejected):
    code = "no_internal_book"


class NothingToAmend(Rejected):
    code = "nothing_to_amend"


class SelfTrade(Rejected):
    code = "self_trade"


class SignedOrderNotAmendable(Rejected):
    """A signed order keeps the price and quantity its signature covers: cancel it and sign
    a new order."""

    code = "signed_order_not_amendable"


class SmartRouteNeedsIoc(Rejected):
    code = "smart_route_needs_ioc"


class BatchDirectOnly(Rejected):
    code = "batch_direct_only"


class PreTradeRejected(Rejected):
    code = "pre_trade_rejected"


class OpenNotionalLimit(Rejected):
    code = "open_notional_limit"


class OpenOrdersLimit(Rejected):
    code = "open_orders_limit"


class OrderNotionalLimit(Rejected):
    code = "order_notional_limit"


class PositionLimit(Rejected):
    code = "position_limit"


class BookRejected(Rejected):
    code = "book_rejected"


class InvalidRouteRequest(Rejected):
    code = "invalid_route_request"


class InvalidAlgoSpec(Rejected):
    code = "invalid_algo_spec"


class AlgoKindUnsupported(Rejected):
    code = "algo_kind_unsupported"


class AlgoEventError(Rejected):
    code = "algo_event_error"


class InvalidLeggingSpec(Rejected):
    code = "invalid_legging_spec"


class LeggingEventError(Rejected):
    code = "legging_event_error"


class InvalidCountdown(Rejected):
    code = "invalid_countdown"


class ComplianceFileInvalid(Rejected):
    code = "compliance_file_invalid"


class ComplianceNotReady(Rejected):
    code = "compliance_not_ready"


class ApiKeysUnavailable(Rejected):
    code = "api_keys_unavailable"


class NoChain(Rejected):
    code = "no_chain"


class DomainError(Rejected):
    code = "domain_error"


class UnknownOp(Rejected):
    code = "unknown_op"


class VenueErrorError(VenueError):
    code = "venue_error"


class VenueAuthentication(VenueError):
    code = "venue_authentication"


class VenueInsufficientFunds(VenueError):
    code = "venue_insufficient_funds"


class VenueRejected(VenueError):
    code = "venue_rejected"


class VenueUnavailable(VenueError):
    code = "venue_unavailable"


class NotAcceptable(BadRequest):
    code = "not_acceptable"


class UnsupportedMediaType(BadRequest):
    code = "unsupported_media_type"


class Unavailable(ServerError):
    """The gateway is starting or a part it needs is down: retry later."""

    code = "unavailable"


class FailingOver(Unavailable):
    """503 from a replica: the roles are moving to another replica; nothing was written.
    Retry in a second (an order with the same `client_order_id` is not placed twice)."""

    code = "no_primary"


class PrimaryUnavailable(FailingOver):
    """503: the replica holding the book did not answer the replica you asked."""

    code = "primary_unavailable"


class PrimaryStarting(FailingOver):
    """503: the replica that took the roles is still rebuilding them."""

    code = "primary_starting"


class StaleLease(FailingOver):
    """503: the replica that took the request lost its lease meanwhile; nothing was written."""

    code = "stale_lease"


class NotHolder(FailingOver):
    """503: the replica that took the request does not hold the roles; nothing was written."""

    code = "not_holder"


class EntryOnPrimary(BadRequest):
    """421 on the stream: this request (cancel-on-disconnect) is served on the stream of the
    replica holding the book; `primary` in the answer says where."""

    code = "entry_on_primary"


class AuditUnavailable(ServerError):
    code = "audit_unavailable"


class WebAppNotBuilt(ServerError):
    """503 at /app: this gateway's web app was never built (`make web`)."""

    code = "web_app_not_built"


class PayloadTooLargeError(PayloadTooLarge):
    code = "payload_too_large"


class InternalError(ServerError):
    code = "internal_error"


class SlowConsumer(ServerError):
    code = "slow_consumer"


def _subclasses(cls: type[ApiError]) -> list[type[ApiError]]:
    found: list[type[ApiError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


_STATUS_CLASSES: dict[int, type[ApiError]] = {
    c.status_default: c
    for c in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PayloadTooLarge,
        Rejected,
        RateLimited,
        ServerError,
    )
}
# the category classes declare no code of their own; every class below them does
CODES: dict[str, type[ApiError]] = {
    c.code: c for c in _subclasses(ApiError) if "code" in c.__dict__ and c is not MethodNotAllowed
}
CODES["method_not_allowed"] = MethodNotAllowed


def error_class(code: str, status: int) -> type[ApiError]:
    """The exception class for an error code (or, for an unknown code, its status)."""
    if code in CODES:
        return CODES[code]
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    return ServerError if status >= 500 else ApiError
