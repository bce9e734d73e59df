"""OpenTelemetry traces: the process's tracer, off unless `ISTHMUS_TRACING` says otherwise.

`configure_tracing(settings)` installs a tracer provider for `otlp` (a batch exporter over
OTLP/HTTP; the standard `OTEL_EXPORTER_OTLP_*` variables say where, `OTEL_SERVICE_NAME`
overrides the service name `isthmus`) or `console`; with `off` nothing is installed and
`start_span` hands out one shared no-op context manager, so a span on the order path costs
a function call. Tests call `install_in_memory_exporter()` to read finished spans.

The provider is kept in this module's `Tracing` object, never set as OpenTelemetry's global
provider: the global can be set only once per process, and one test process builds many
gateways (and installs its exporter after some were built). Spans still use OpenTelemetry's
context (the current span is a context variable), so a child started anywhere inside a
request finds its parent.

Settlement happens later than the request, in the settlement service's background task. To
keep "one trace from the API request through the settlement transaction", the order service
records each new order's span context here (`remember_order`, an in-memory map bounded in
size, filled only while tracing is on), and the settlement service starts each batch's span
with `start_batch_span`: a **child of the newest order in the batch** (the order whose
arrival made the last trade, so the request that traded sees its settlement in its own
trace) and **linked to every order in the batch** (a batch settles many orders from many
requests, and a span has one parent; the links, each with its `order.id`, lead from the
batch to the others' traces). The map lives in memory only: nothing about traces reaches
the database, and a settlement after a restart is a root span (its orders' contexts are
gone), which is what the trace of a request that ended before the restart can hold anyway.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Link, NonRecordingSpan, Span, SpanContext, SpanKind

from gateway.config import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TRACER_NAME = "isthmus"
MAX_REMEMBERED_ORDERS = 50_000  # orders whose span context waits for their settlement

_NO_SPAN: AbstractContextManager[Span] = contextlib.nullcontext(INVALID_SPAN)


@dataclass
class Tracing:
    """The installed provider and what traces need to reach past the request."""

    provider: TracerProvider | None = None
    tracer: trace.Tracer | None = None
    mode: str = "off"
    # order id -> (arrival sequence, the span context of its submission)
    orders: OrderedDict[str, tuple[int, SpanContext]] = field(default_factory=OrderedDict)
    sequence: Iterator[int] = field(default_factory=itertools.count)


_tracing = Tracing()


def configure_tracing(settings: Settings) -> None:
    """Install the provider `settings.tracing` asks for, once per process: `off` installs
    nothing (and leaves alone a provider installed before, e.g. a test's exporter); a
    mode already installed is kept."""
    mode = settings.tracing
    if mode == "off" or mode == _tracing.mode:
        return
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    exporter: SpanExporter
    if mode == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, ...
    else:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        exporter = ConsoleSpanExporter()
    _install(mode, BatchSpanProcessor(exporter))


def install_in_memory_exporter() -> InMemorySpanExporter:
    """Trace into memory from now on (for tests): every span is exported as it ends
    (`SimpleSpanProcessor`), so `get_finished_spans()` holds it at once."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    _install("memory", SimpleSpanProcessor(exporter))
    return exporter


def disable_tracing() -> None:
    """Back to no tracing: the provider is shut down (its spans flushed) and forgotten."""
    provider = _tracing.provider
    _tracing.provider = None
    _tracing.tracer = None
    _tracing.mode = "off"
    _tracing.orders.clear()
    if provider is not None:
        provider.shutdown()


def flush(timeout_millis: int = 30_000) -> bool:
    """Export every span ended so far (at shutdown, or before reading an exporter)."""
    provider = _tracing.provider
    return True if provider is None else provider.force_flush(timeout_millis)


def _install(mode: str, processor: SpanProcessor) -> None:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider

    disable_tracing()
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "isthmus")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(processor)
    _tracing.provider = provider
    _tracing.tracer = provider.get_tracer(TRACER_NAME)
    _tracing.mode = mode


def enabled() -> bool:
    return _tracing.tracer is not None


def get_tracer() -> trace.Tracer:
    """The installed provider's tracer `isthmus`, or a no-op tracer when tracing is off."""
    return _tracing.tracer or trace.NoOpTracer()


def start_span(
    name: str, *, kind: SpanKind = SpanKind.INTERNAL, context: Context | None = None
) -> AbstractContextManager[Span]:
    """A span that is current inside the `with` block; with tracing off, a shared no-op
    (set attributes on the yielded span: on the no-op they cost nothing)."""
    tracer = _tracing.tracer
    if tracer is None:
        return _NO_SPAN
    return tracer.start_as_current_span(name, context=context, kind=kind)


def remember_order(order_id: str) -> None:
    """Keep the current span's context as the submission of `order_id`, for the span of
    the batch that settles it (nothing with tracing off)."""
    if _tracing.tracer is None:
        return
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return
    orders = _tracing.orders
    orders[order_id] = (next(_tracing.sequence), context)
    if len(orders) > MAX_REMEMBERED_ORDERS:
        orders.popitem(last=False)


def order_span_contexts(order_ids: Iterable[str]) -> dict[str, SpanContext]:
    """The remembered submissions of those of `order_ids` still known, newest last."""
    orders = _tracing.orders
    known = sorted(orders[o] + (o,) for o in set(order_ids) if o in orders)
    return {order_id: context for _, context, order_id in known}


def start_batch_span(name: str, order_ids: Iterable[str]) -> AbstractContextManager[Span]:
    """The span of a settlement batch: a child of the newest of its orders' submissions
    (a root span when none is remembered) and linked to each of them (see the module's
    docstring)."""
    tracer = _tracing.tracer
    if tracer is None:
        return _NO_SPAN
    contexts = order_span_contexts(order_ids)
    links = [Link(context, {"order.id": order_id}) for order_id, context in contexts.items()]
    parent = Context()  # not whatever happens to be current in the settlement loop
    if contexts:
        newest = list(contexts.values())[-1]
        parent = trace.set_span_in_context(NonRecordingSpan(newest), parent)
    return tracer.start_as_current_span(name, context=parent, links=links)
