"""The FastAPI application: wiring only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway.api import (
    algos,
    audit,
    auth,
    books,
    compliance,
    dead_man_switch,
    fills_export,
    fix_sessions,
    instruments,
    orders,
    quotes,
    risk,
    risk_controls,
    settlements,
    status,
    stream,
    tca,
    venues,
)
from gateway.api.access import install_access
from gateway.api.errors import BodySizeLimit, install_error_handlers
from gateway.api.forwarding import ForwardToHolder
from gateway.api.metrics import install_metrics
from gateway.api.order_fast_path import OrderSubmitFastPath
from gateway.api.tracing import install_tracing
from gateway.api.web_app import install_web_app
from gateway.config import Settings
from gateway.runtime import Runtime


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or Runtime.build(settings)
        app.state.runtime = rt
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    app = FastAPI(
        title="Isthmus gateway",
        version="0.1.0",
        description="One API for orders across venues, settled atomically on-chain.",
        lifespan=lifespan,
        # the gateway's own spans, metrics and logs (gateway/telemetry) cover every request;
        # FastAPI's would duplicate them once an OpenTelemetry provider is set globally
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    app.add_middleware(OrderSubmitFastPath)  # inside the access guard: authenticated first
    install_access(app)  # inside the body size limit: it reads signed bodies
    # replicas: requests for the roles another replica holds go there, checked there
    app.add_middleware(ForwardToHolder)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    install_tracing(app, settings)  # outermost: every request's span and ids
    install_metrics(app, settings)
    # before orders: its GET /v1/orders/{order_id} would take `cancel-all-after` for an id
    app.include_router(dead_man_switch.router)
    app.include_router(orders.router)
    app.include_router(instruments.router)
    app.include_router(books.router)
    app.include_router(venues.router)
    app.include_router(stream.router)
    app.include_router(risk_controls.router)
    app.include_router(risk.router)
    app.include_router(quotes.router)
    app.include_router(algos.router)
    app.include_router(tca.router)
    app.include_router(settlements.router)
    app.include_router(audit.router)
    app.include_router(fills_export.router)
    app.include_router(auth.router)
    app.include_router(compliance.router)
    app.include_router(status.router)
    app.include_router(fix_sessions.router)
    install_web_app(app, settings.web_dir)
    return app
