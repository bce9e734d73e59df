"""Structured logs: JSON lines with request, order and batch ids, and never a secret.

`configure_logging(settings)` routes everything through one handler on the root logger whose
`structlog.stdlib.ProcessorFormatter` renders each record as one JSON object per line (or,
with `ISTHMUS_LOG_FORMAT=console`, for people): the standard library's records (the
`gateway.*` loggers, uvicorn's) and structlog's alike. Each line carries the time, level,
logger, the ids bound to the log context (`request_id` by the request middleware,
`order_id` once a request's order is known, `batch_id` while a settlement batch is
settled), a `trace_id`/`span_id` when tracing is on, and a stdlib record's `extra` fields.

Every line passes `RedactSecrets` last before it is rendered, so no secret is written
whoever logged it: values under secret-looking keys (`authorization`, `*token`, `*secret`,
`*signature`, `*password`, `*private_key`, `*api_key`, `cookie`) are replaced whole; in every
string, the configured secrets themselves (operator token, API key master secret, webhook
secret), bearer tokens, session tokens (`ist_…`), `token=`/`secret=`/`signature=`-style
pairs (query strings, header dumps), EIP-712/EIP-1271 signatures (0x and 130 or more hex
digits) and 32-byte hex values (private keys; API key secrets and HMAC request signatures,
which are 64 hex digits) are masked. A 32-byte hex value under a key that names a public
hash (`tx_hash`, `block_hash`, `digest`, ...) is kept: log transaction hashes that way.

Request-scoped ids: the middleware calls `open_request`/`close_request` around each request
(one context variable, holding the request's ids, set and reset: cheaper than structlog's
`bind_contextvars`, which costs a context variable per key, on the order path);
`bind_request_ids(order_id=...)` adds an id for the rest of the current request and does
nothing outside one (a background task's loop would otherwise carry an order's id into
every later line). `merge_request_ids` puts them on each line, next to what is bound with
`structlog.contextvars` (a background task binds its own ids, e.g. the settlement's
`batch_id`, with `structlog.contextvars.bound_contextvars`).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from contextvars import ContextVar, Token
from typing import IO, Any

import structlog
from pydantic import SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

from gateway.config import Settings

REDACTED = "[redacted]"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# keys whose values are secrets whatever they look like (lower case, "-" read as "_")
SECRET_KEY_ENDINGS = (
    "authorization",
    "token",
    "secret",
    "signature",
    "password",
    "private_key",
    "api_key",
    "cookie",
)
# keys whose 32-byte hex values are public hashes, not keys
PUBLIC_HASH_KEYS = frozenset(
    {"tx_hash", "tx.hash", "block_hash", "transaction_hash", "hash", "digest", "order_hash"}
)
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\bbearer\s+[^\s,;\"'\]}]+"), "Bearer " + REDACTED),
    (re.compile(r"\bist_[A-Za-z0-9_-]{16,}"), "ist_" + REDACTED),  # session tokens
    (
        # `token=…` in a query string, `'x-isthmus-signature': '…'` in a header dump, ...
        re.compile(
            r"(?i)((?:token|secret|signature|password|authorization|api[_-]?key|private[_-]?key)"
            r"[\"']?\s*[:=]\s*[\"']?)(?!\[redacted)[^\s\"'&,;}\]]+"
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"0x[0-9a-fA-F]{130,}"), "0x" + REDACTED),  # order signatures
)
_HEX32 = re.compile(r"\b(?:0x)?[0-9a-fA-F]{64}\b")  # private keys, HMAC secrets/signatures

_HANDLER_MARK = "_isthmus_log_handler"


class RedactSecrets:
    """The structlog processor that masks secrets (see the module's docstring)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # longest first, so a secret containing another is masked whole
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return {key: self._value(key, value) for key, value in event_dict.items()}

    def _value(self, key: object, value: Any) -> Any:
        name = str(key).lower().replace("-", "_")
        if name.endswith(SECRET_KEY_ENDINGS) and value is not None:
            return REDACTED
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {k: self._value(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._value(key, v) for v in value]
        return self.text(str(value), keep_hashes=name in PUBLIC_HASH_KEYS)

    def text(self, text: str, *, keep_hashes: bool = False) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern, replacement in _SECRET_PATTERNS:
            text = pattern.sub(replacement, text)
        if not keep_hashes:
            text = _HEX32.sub(REDACTED, text)
        return text


def configured_secrets(settings: Settings) -> list[str]:
    """The secrets the settings hold (their values are masked wherever they appear)."""
    found = []
    for name, value in settings:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, str) and any(w in name for w in ("secret", "token", "password")):
            found.append(value)
    return found


def add_trace_context(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """The current span's trace and span ids, when tracing is on."""
    from gateway.telemetry import tracing

    if tracing.enabled():
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
            event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


# a record's own attributes; any other is an `extra` field (except what formatters and
# uvicorn add: the formatted message, its time, uvicorn's coloured copy of the message)
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
}


def add_extra_fields(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """A standard library record's `extra` fields."""
    record = event_dict.get("_record")
    if record is not None:
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                event_dict.setdefault(key, value)
    return event_dict


def configure_logging(
    settings: Settings, *, stream: IO[str] | None = None, level: int | str | None = None
) -> logging.Handler:
    """Send every log record, stdlib's and structlog's, through one redacting formatter to
    `stream` (default stderr) at `level` (default `settings.log_level`); returns the handler
    (installed on the root logger, replacing one an earlier call installed)."""
    shared: list[Processor] = [
        merge_request_ids,
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_trace_context,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    if settings.log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    else:
        renderer = structlog.processors.JSONRenderer()
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, add_extra_fields],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # a traceback is text to redact too
            RedactSecrets(configured_secrets(settings)),
            renderer,
        ],
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_level(level if level is not None else settings.log_level))
    for name in UVICORN_LOGGERS:  # through the root's handler, not uvicorn's own
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # a line per outgoing request (a replica forwarding, ccxt's polls) is noise at info
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))
    return handler


def _level(level: int | str) -> int:
    if isinstance(level, int):
        return level
    named = logging.getLevelName(level.upper())
    return named if isinstance(named, int) else logging.DEBUG  # e.g. uvicorn's "trace"


# -- the ids of the request being served ---------------------------------------------------


class RequestIds(dict[str, str]):
    """The ids of the request being served (`request_id`, then its order's `order_id`)."""

    __slots__ = ("scoped",)

    def __init__(self, request_id: str, scoped: bool) -> None:
        super().__init__(request_id=request_id)
        self.scoped = scoped  # False: later ids (`bind_request_ids`) are not its own


_REQUEST: ContextVar[RequestIds | None] = ContextVar("isthmus_log_request", default=None)
RequestLogContext = Token[RequestIds | None]


def open_request(request_id: str, *, scoped: bool = True) -> RequestLogContext:
    """Put `request_id` in the log context for the request; `scoped`: ids bound later with
    `bind_request_ids` (its order's) belong to it too and end with it. One context variable
    set: the request path's whole cost."""
    return _REQUEST.set(RequestIds(request_id, scoped))


def close_request(opened: RequestLogContext) -> None:
    """The log context as it was before the request."""
    _REQUEST.reset(opened)


def bind_request_ids(**ids: str) -> None:
    """Add `ids` (`order_id`) to the log context for the rest of the current request;
    nothing outside a request, or on a WebSocket connection (an order placed on it is not
    the connection's)."""
    current = _REQUEST.get()
    if current is not None and current.scoped:
        current.update(ids)


def merge_request_ids(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """The current request's ids, on every line logged while it is served."""
    current = _REQUEST.get()
    if current is not None:
        for key, value in current.items():
            event_dict.setdefault(key, value)
    return event_dict
