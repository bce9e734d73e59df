"""Domain errors carry a stable machine-readable code; the API maps them to HTTP."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the domain was broken. `code` is stable and documented in the API."""

    code = "domain_error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class InvalidOrder(DomainError):
    code = "invalid_order"


class UnknownInstrument(DomainError):
    code = "unknown_instrument"


class IllegalTransition(DomainError):
    code = "illegal_transition"
