"""The `isthmus` command."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from gateway.cli_output import Output, abbreviated
from gateway.cli_wallet import (
    DEVNET_TOKEN_FILE,
    configured_credential,
    devnet_app,
    keystore_app,
    submit_signed,
    wallet_app,
)
from gateway.config import Settings

DEVNET_FIX_PORT = 9878  # the devnet's FIX acceptor (ISTHMUS_FIX_PORT moves it)

app = typer.Typer(
    help="Isthmus: order management and on-chain settlement gateway.", no_args_is_help=True
)
orders_app = typer.Typer(help="Submit, inspect, amend and cancel orders.", no_args_is_help=True)
audit_app = typer.Typer(help="Verify what the gateway recorded.", no_args_is_help=True)
risk_app = typer.Typer(
    help="Account risk, the operator's book, kill switches.", no_args_is_help=True
)
app.add_typer(orders_app, name="orders")
app.add_typer(audit_app, name="audit")
app.add_typer(risk_app, name="risk")
fills_app = typer.Typer(help="Fills for performance attribution.", no_args_is_help=True)
app.add_typer(fills_app, name="fills")
app.add_typer(wallet_app, name="wallet")
app.add_typer(keystore_app, name="keystore")
app.add_typer(devnet_app, name="devnet")

console = Output()  # fitted to a terminal; whole values anywhere else (gateway.cli_output)
ApiUrl = Annotated[str, typer.Option("--api", envvar="ISTHMUS_API_URL", help="Gateway base URL")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")]


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def server_options(settings: Settings) -> dict[str, Any]:
    """How `isthmus up` runs uvicorn (bench/api_orders.py starts the gateway the same way)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": 5,
        "log_config": None,  # the logging `configure_logging` set up: JSON, secrets masked
        "ws_per_message_deflate": settings.ws_compression,
    }


@app.command()
def up(
    config: Annotated[
        Path | None,
        typer.Option(help="TOML file with the venues and chain to use (default: the devnet)"),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface (default ISTHMUS_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default ISTHMUS_PORT)")] = None,
    replica: Annotated[
        bool,
        typer.Option(
            "--replica",
            help="One of several replicas on one PostgreSQL database (ISTHMUS_REPLICA)",
        ),
    ] = False,
) -> None:
    """Run the gateway: on the embedded devnet, or on the venues a config file names."""
    import uvicorn

    from gateway.api.app import create_app
    from gateway.devnet.catalogue import devnet_catalogue
    from gateway.oms.service import SystemClock
    from gateway.runtime import runtime_from_config
    from gateway.telemetry.logs import configure_logging
    from gateway.venues.config import load_config

    settings = Settings()
    configure_logging(settings)
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    if replica:
        settings.replica = True
    if settings.replica and config is None:
        console.print(
            "[red]--replica needs --config: replicas share a chain and a PostgreSQL database "
            "that the config names (the devnet is one process)[/]"
        )
        raise typer.Exit(2)
    world = None
    if config is not None:
        gateway_config = load_config(config)
    else:
        from gateway.devnet.runner import start_devnet

        world = start_devnet(Path(".isthmus/devnet"), console, settings.devnet_chain_port)
        gateway_config = world.gateway_config()
        if settings.operator_token is None:
            from pydantic import SecretStr

            from gateway.devnet.runner import devnet_operator_token

            settings.operator_token = SecretStr(devnet_operator_token(DEVNET_TOKEN_FILE))
            console.print(
                f"operator token in {DEVNET_TOKEN_FILE} (send `Authorization: Bearer <token>`; "
                "the CLI reads it from there)"
            )
    if settings.operator_token is None:
        console.print("[yellow]no ISTHMUS_OPERATOR_TOKEN: operator endpoints are closed[/]")
    if gateway_config.database_url:
        settings.database_url = gateway_config.database_url
    if settings.replica and settings.database_url.startswith("sqlite"):
        console.print(
            "[red]replicas need PostgreSQL: SQLite is one process only. Set database_url (or "
            "ISTHMUS_DATABASE_URL) to postgresql+psycopg://..., or run without --replica[/]"
        )
        raise typer.Exit(2)
    sqlite_lock = _lock_sqlite(settings)
    if sqlite_lock is False:
        if world is not None:
            world.stop()
        raise typer.Exit(2)
    if world is not None:
        _start_devnet_database(settings.database_url)
    # uvicorn re-raises the signal that stopped it; make SIGTERM (docker stop, supervisors)
    # end like Ctrl-C does, through the `finally` below, so the devnet is torn down too.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        catalogue, clock = devnet_catalogue(), SystemClock()
        runtime = runtime_from_config(settings, gateway_config, catalogue, clock)
        runtime.on_lease_lost = _lease_lost
        if world is not None and settings.fix_port is None:
            settings.fix_port = DEVNET_FIX_PORT
        if settings.fix_port is not None:
            from gateway.fix.acceptor import FixAcceptor

            acceptor = FixAcceptor(runtime, settings, settings.fix_dir)
            runtime.attach(acceptor)
            console.print(
                f"[bold]FIX 4.4[/]  {settings.fix_host}:{acceptor.port}  TargetCompID "
                f"{settings.fix_comp_id}, SenderCompIDs {', '.join(settings.fix_sessions)} "
                "(log on with an API key: docs/fix.md)"
            )
        console.print(
            f"[bold]gateway[/]  http://{settings.host}:{settings.port}  "
            f"(docs /docs, database {settings.database_url}, venues: "
            f"{', '.join(v.name for v in runtime.venues)})"
        )
        web = "" if (settings.web_dir / "index.html").is_file() else "  (not built: run `make web`)"
        console.print(f"[bold]web app[/]  http://{settings.host}:{settings.port}/app/{web}")
        uvicorn.run(create_app(settings, runtime=runtime), **server_options(settings))
    finally:
        if world is not None:
            world.stop()
            console.print("devnet stopped")


@app.command()
def deploy(
    rpc_url: Annotated[
        str, typer.Option("--rpc-url", help="The running anvil (default mnemonic) to deploy onto")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the config `isthmus up --config` reads")
    ],
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="Where deployment.json goes (default: beside --out)"),
    ] = None,
    public_rpc_url: Annotated[
        str | None,
        typer.Option(
            "--public-rpc-url", help="The RPC URL GET /v1/chain publishes to clients (none: none)"
        ),
    ] = None,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for the node to answer")
    ] = 120.0,
) -> None:
    """Deploy the devnet world (contracts, options, Uniswap pool, funded demo wallets) onto a
    chain that already runs, such as docker-compose's anvil, and write the gateway config for
    it; does nothing if the config exists and its Settlement contract is on that chain."""
    from gateway.devnet.existing_chain import DeployRefused, deploy_onto, print_outcome

    try:
        outcome = deploy_onto(
            rpc_url, out, state_dir=state_dir, public_rpc_url=public_rpc_url, wait_seconds=wait
        )
    except DeployRefused as refused:
        console.print(f"[red]{escape(str(refused))}[/]")
        raise typer.Exit(1) from None
    print_outcome(console, outcome)


@app.command()
def demo(as_json: AsJson = False) -> None:
    """Run the hybrid trade on a fresh devnet: two traders' iron condors, a spot order a DeFi
    protocol submits, routed to our book and the Uniswap pool, settled in one transaction,
    then audited; exits 1 if any check fails. With --json the report is JSON on stdout and
    the steps go to stderr."""
    from gateway.devnet.demo import run_demo

    progress = Output(stderr=True) if as_json else console
    if not run_demo(progress, Path(".isthmus/demo"), as_json=as_json):
        raise typer.Exit(1)


@app.command()
def status(api: ApiUrl = "http://127.0.0.1:8000", as_json: AsJson = False) -> None:
    """Replicas, who holds each role, settlement lag and venue health (GET /v1/status, as the
    operator or an auditor), and who is logged on to each FIX session (GET /v1/fix/sessions)."""
    report = _call("GET", f"{api}/v1/status")
    fix: dict[str, Any] | None = None  # a gateway without the FIX view: left out
    try:
        with _client() as client:
            request = client.build_request("GET", f"{api}/v1/fix/sessions")
            answer = client.send(_signed(request))
        if answer.is_success:
            fix = answer.json()
    except (httpx.HTTPError, ValueError):
        fix = None
    if as_json:
        _print_json(report if fix is None else {**report, "fix": fix})
        return
    for line in _status_lines(report):
        console.print(line)
    if fix is not None and not fix["enabled"]:
        console.print("fix: no acceptor")
    elif fix is not None:
        console.print(f"fix: acceptor {escape(fix['comp_id'])} on port {fix['port']}")
        for s in fix["sessions"]:
            who = (
                f"logged on by key {escape(s['key_id'])} since {s['logged_on_at']}"
                if s["logged_on"]
                else "not logged on"
            )
            console.print(
                f"fix {escape(s['counterparty'])}: {who}, next seq out {s['next_sender_seq']} "
                f"in {s['next_target_seq']}"
            )
    for table in _status_tables(report):
        console.print(table)


def _status_lines(report: dict[str, Any]) -> list[str]:
    this = report["this_replica"]
    if this["replica"]:
        role = "holds " + ", ".join(this["holds"]) if this["holds"] else "follows"
        whoami = f"replica {this['replica_id']} ({role})"
    else:
        whoami = "one process (runs every role)"
    lines = [f"this gateway: {whoami}, database {this['database']}"]
    settlement = report["settlement"]
    if not settlement["settles"]:
        lines.append("settlement: this gateway does not settle on a chain")
    else:
        oldest = settlement["oldest_unsettled_seconds"]
        lag = "nothing waits" if oldest is None else f"oldest unsettled fill {oldest} s"
        lines.append(
            f"settlement: {lag}, {settlement['unsettled_fills']} unsettled fills, "
            f"{settlement['batches_pending']} batches pending"
        )
    return lines


def _status_tables(report: dict[str, Any]) -> list[Table]:
    replicas = Table(title="Replicas")
    for column in ("replica", "address", "pid", "last seen (s)", "live"):
        replicas.add_column(
            column, justify="right" if column in ("pid", "last seen (s)") else "left"
        )
    for r in report["replicas"]:
        replicas.add_row(
            escape(r["replica_id"]),
            escape(r["address"]),
            str(r["pid"]),
            r["seen_seconds_ago"],
            "[green]yes[/]" if r["live"] else "[red]no[/]",
        )
    roles = Table(title="Roles")
    for column in ("role", "holder", "token", "expires in (s)", "failovers"):
        roles.add_column(column, justify="left" if column in ("role", "holder") else "right")
    for role in report["roles"]:
        holder = escape(role["holder"]) if role["live"] and role["holder"] else "[red]none[/]"
        roles.add_row(
            role["role"],
            holder,
            str(role["token"]),
            role["expires_in_seconds"],
            str(role["takeovers"]),
        )
    venues = Table(title="Venues")
    for column in ("venue", "kind", "state", "age (s)", "reconnects", "failures", "last error"):
        venues.add_column(
            column, justify="right" if column in ("age (s)", "reconnects", "failures") else "left"
        )
    for v in report["venues"]["venues"]:
        venues.add_row(
            v["name"],
            v["kind"],
            "[green]live[/]" if v["state"] == "live" else "[red]stale[/]",
            v["age_seconds"] or "-",
            str(v["reconnects"]),
            str(v["failures"]),
            escape(v["last_error"] or "-"),
        )
    return [replicas, roles, venues]


def _lease_lost() -> None:
    """This replica's lease was taken while it was cut off or paused: what it holds in memory
    may be behind the store, so it stops at once (its supervisor starts it again as a
    follower). The store already refuses its writes."""
    console.print("[red]lease lost to another replica: stopping (exit 75)[/]")
    sys.stdout.flush()
    os._exit(75)


def _lock_sqlite(settings: Settings) -> object | bool | None:
    """SQLite is one process only: a second gateway on the same file is refused. Returns the
    held lock file (kept open while the process lives), None for PostgreSQL, False if
    another gateway holds it."""
    import fcntl

    path = settings.sqlite_path()
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(f"{path}.lock", "a+")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        console.print(
            f"[red]another gateway ({owner}) runs on the SQLite database {path}: SQLite is one "
            "process only. Run replicas on PostgreSQL with --replica, or stop the other one[/]"
        )
        handle.close()
        return False
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle


def _start_devnet_database(database_url: str) -> None:
    """The devnet's chain is new at every start, so the previous start's orders, fills and
    hedges describe wallets and trades that no longer exist: resting orders would match and
    fail to settle, the inventory's hedges would count twice. A SQLite file is moved aside
    (kept, never deleted); another database is used as it is, with a warning."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or ":memory:" in database_url:
        console.print(
            f"[yellow]{database_url} outlives the devnet's chain: its earlier orders refer to "
            "wallets of a chain that is gone[/]"
        )
        return
    path = Path(database_url.removeprefix(prefix))
    if not path.exists():
        return
    kept = path.with_name(f"{path.stem}.previous-devnet{path.suffix}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.replace(Path(f"{kept}{suffix}"))
        elif Path(f"{kept}{suffix}").exists():
            Path(f"{kept}{suffix}").unlink()  # a stale journal must not meet the moved file
    console.print(f"a new devnet chain: the previous devnet's database is kept as {kept}")


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _signed(request: httpx.Request) -> httpx.Request:
    """Credentials for the gateway (`configured_credential`): an API key
    (ISTHMUS_API_KEY_ID and ISTHMUS_API_KEY_SECRET) signs the request; else the operator token
    (ISTHMUS_OPERATOR_TOKEN, or the devnet's)."""
    credential = configured_credential()
    if credential is not None:
        path = request.url.raw_path.decode("latin-1")
        request.headers.update(credential.headers(request.method, path, request.read()))
    return request


def _client() -> httpx.Client:
    """The HTTP client the commands call the gateway with."""
    return httpx.Client(timeout=10)


def _call(method: str, url: str, **kwargs: Any) -> Any:
    try:
        with _client() as client:
            response = client.send(_signed(client.build_request(method, url, **kwargs)))
    except httpx.HTTPError as error:
        console.print(f"[red]cannot reach the gateway:[/] {error}")
        raise typer.Exit(2) from error
    body = response.json()
    if response.is_error:
        problem = body.get("error", {})
        field = f" ({problem.get('field')})" if problem.get("field") else ""
        console.print(f"[red]{problem.get('code')}[/]: {problem.get('message')}{field}")
        raise typer.Exit(1)
    return body


def _orders_table(orders: list[dict[str, Any]]) -> Table:
    table = Table(show_lines=False)
    for column in (
        "id",
        "account",
        "instrument",
        "side",
        "type",
        "qty",
        "price",
        "filled",
        "status",
    ):
        table.add_column(
            column, justify="right" if column in ("qty", "price", "filled") else "left"
        )
    for o in orders:
        instrument = o["instrument"] or " + ".join(
            f"{leg['side']} {leg['ratio']}x {leg['instrument']}" for leg in o["legs"]
        )
        table.add_row(
            o["id"],
            abbreviated(console, o["account"], 6, 4),
            instrument,
            o["side"],
            o["type"],
            o["quantity"],
            o["price"] or "-",
            o["filled_quantity"],
            o["status"],
        )
    return table


@orders_app.command("list")
def orders_list(
    api: ApiUrl = "http://127.0.0.1:8000",
    account: Annotated[str | None, typer.Option(help="Only this account")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status")] = None,
    instrument: Annotated[str | None, typer.Option(help="Only this instrument")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: AsJson = False,
) -> None:
    """List orders, oldest first."""
    params = {
        k: v
        for k, v in {"account": account, "status": status, "instrument": instrument}.items()
        if v
    }
    page = _call("GET", f"{api}/v1/orders", params={**params, "limit": limit})
    if as_json:
        _print_json(page)
        return
    console.print(_orders_table(page["items"]))
    if page["next_cursor"]:
        console.print(f"more: --cursor {page['next_cursor']}")


def _print_order(order: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(order)
    else:
        console.print(_orders_table([order]))


@orders_app.command("show")
def orders_show(
    order_id: str, api: ApiUrl = "http://127.0.0.1:8000", as_json: AsJson = False
) -> None:
    """Show one order."""
    order = _call("GET", f"{api}/v1/orders/{order_id}")
    _print_order(order, as_json)
    if order["status_reason"] and not as_json:
        console.print(f"reason: {order['status_reason']}")


@orders_app.command("submit")
def orders_submit(
    account: str,
    instrument: str,
    side: str,
    quantity: str,
    price: Annotated[str | None, typer.Option(help="Limit price")] = None,
    order_type: Annotated[str, typer.Option("--type")] = "limit",
    time_in_force: Annotated[str, typer.Option("--tif")] = "gtc",
    route: Annotated[
        str, typer.Option(help="direct (the internal book) or smart (split across venues, ioc)")
    ] = "direct",
    client_order_id: Annotated[str | None, typer.Option("--client-order-id")] = None,
    sign: Annotated[
        bool, typer.Option("--sign", help="Sign it here (EIP-712) with the keystore's key")
    ] = False,
    keystore: Annotated[
        Path | None,
        typer.Option(envvar="ISTHMUS_KEYSTORE", help="With --sign: the owner's or a trading key"),
    ] = None,
    wallet: Annotated[
        str | None, typer.Option(help="With --sign: the wallet a trading key signs for")
    ] = None,
    api: ApiUrl = "http://127.0.0.1:8000",
    as_json: AsJson = False,
) -> None:
    """Submit an order (give --client-order-id to make a retry safe); with --sign, signed
    for the ACCOUNT wallet by the keystore's key (password: ISTHMUS_KEYSTORE_PASSWORD or asked)."""
    import uuid

    if sign:
        signed = submit_signed(
            api,
            keystore,
            wallet,
            account=account,
            instrument=instrument,
            side=side,
            quantity=quantity,
            price=price,
            order_type=order_type,
            time_in_force=time_in_force,
            route=route,
            client_order_id=client_order_id,
        )
        _print_order(signed, as_json)
        return
    if wallet is not None:
        console.print("[red]--wallet names the wallet a key signs for: add --sign[/]")
        raise typer.Exit(2)
    body = {
        "account": account,
        "client_order_id": client_order_id or uuid.uuid4().hex,
        "instrument": instrument,
        "side": side,
        "type": order_type,
        "time_in_force": time_in_force,
        "route": route,
        "quantity": quantity,
        "price": price,
    }
    _print_order(_call("POST", f"{api}/v1/orders", json=body), as_json)


@orders_app.command("amend")
def orders_amend(
    order_id: str,
    price: Annotated[str | None, typer.Option()] = None,
    quantity: Annotated[str | None, typer.Option()] = None,
    api: ApiUrl = "http://127.0.0.1:8000",
    as_json: AsJson = False,
) -> None:
    """Change the price or quantity of an open order."""
    body = {k: v for k, v in {"price": price, "quantity": quantity}.items() if v is not None}
    _print_order(_call("PATCH", f"{api}/v1/orders/{order_id}", json=body), as_json)


@orders_app.command("cancel")
def orders_cancel(
    order_id: str, api: ApiUrl = "http://127.0.0.1:8000", as_json: AsJson = False
) -> None:
    """Cancel an open order."""
    _print_order(_call("DELETE", f"{api}/v1/orders/{order_id}"), as_json)


def _risk_tables(report: dict[str, Any]) -> list[Table]:
    greeks = Table(title="Greeks by underlying (quote currency)")
    for column in ("underlying", "value", "delta", "gamma", "vega", "theta", "rho"):
        greeks.add_column(column, justify="left" if column == "underlying" else "right")
    for underlying, g in report["greeks"].items():
        greeks.add_row(
            underlying, *(g[k] or "-" for k in ("value", "delta", "gamma", "vega", "theta", "rho"))
        )
    var = Table(title="VaR and expected shortfall")
    for column in ("method", "confidence", "horizon (days)", "VaR", "ES", "scenarios"):
        var.add_column(column, justify="left" if column == "method" else "right")
    for m in report["var"]:
        if m["available"]:
            var.add_row(
                m["method"],
                m["confidence"],
                str(m["horizon_days"]),
                m["var"],
                m["expected_shortfall"],
                str(m["scenarios"]),
            )
        else:
            var.add_row(m["method"], "-", "-", "-", "-", m["reason"])
    margin = Table(title="Margin and liquidation")
    for column in ("underlying", "price", "liquidation below", "above", "equity", "maintenance"):
        margin.add_column(column, justify="left" if column == "underlying" else "right")
    for row in report["liquidation"]:
        margin.add_row(
            row["underlying"],
            row["current"] or "-",
            row["below"] or "-",
            row["above"] or "-",
            report["margin"]["equity"] or "-",
            report["margin"]["maintenance"] or "-",
        )
    return [greeks, var, margin]


@risk_app.command("show")
def risk_show(
    account: str,
    api: ApiUrl = "http://127.0.0.1:8000",
    confidence: Annotated[float | None, typer.Option(help="VaR confidence, e.g. 0.99")] = None,
    horizon: Annotated[int | None, typer.Option(help="VaR horizon in days")] = None,
    as_json: AsJson = False,
) -> None:
    """An account's live risk: Greeks, VaR/ES, margin, liquidation prices."""
    params = {k: v for k, v in {"confidence": confidence, "horizon_days": horizon}.items() if v}
    report = _call("GET", f"{api}/v1/accounts/{account}/risk", params=params)
    if as_json:
        _print_json(report)
        return
    for table in _risk_tables(report):
        console.print(table)
    onchain = report["margin"]["onchain"]
    if onchain is not None:
        state = "[green]passes[/]" if onchain["ok"] else "[red]fails[/]"
        console.print(
            f"on-chain margin rule {state}: required {onchain['required']}, "
            f"available {onchain['available']} (quote base units)"
        )


@risk_app.command("book")
def risk_book(
    api: ApiUrl = "http://127.0.0.1:8000",
    as_json: AsJson = False,
) -> None:
    """The operator's whole book: every account plus the CEX venue accounts, and the
    inventory wallet against its exchange hedges."""
    report = _call("GET", f"{api}/v1/risk/book")
    if as_json:
        _print_json(report)
        return
    for table in _risk_tables(report)[:2]:
        console.print(table)
    inventory = report.get("inventory")
    if inventory is not None:
        console.print(_inventory_table(inventory))


def _inventory_table(inventory: dict[str, Any]) -> Table:
    """The operator's inventory wallet against its exchange hedges, per instrument."""
    table = Table(
        title=f"Inventory {inventory['wallet']} against its exchange hedges "
        f"(spread {inventory['spread_bps']} bps)"
    )
    columns = ("instrument", "wallet", "of which pending", "hedges", "net", "fees", "mark", "P&L")
    for column in columns:
        table.add_column(column, justify="left" if column == "instrument" else "right")
    for line in inventory["lines"]:
        table.add_row(
            line["instrument"],
            line["wallet_position"],
            line["pending_position"],
            line["hedge_position"],
            line["net_position"],
            line["fees"],
            line["mark"] or "-",
            line["pnl"] or "-",
        )
    return table


@risk_app.command("kill")
def risk_kill(
    scope: Annotated[str, typer.Argument(help="`global` or an account address")],
    release: Annotated[bool, typer.Option("--release", help="Release instead of engage")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit log)")] = None,
    api: ApiUrl = "http://127.0.0.1:8000",
    as_json: AsJson = False,
) -> None:
    """Engage (or release) a kill switch; engaging cancels the working orders in scope."""
    state = _call(
        "PUT",
        f"{api}/v1/risk/kill-switches/{scope}",
        json={"engaged": not release, "reason": reason},
    )
    if as_json:
        _print_json(state)
        return
    word = "[red]engaged[/]" if state["engaged"] else "[green]released[/]"
    console.print(
        f"kill switch {state['scope']} {word}; {state['cancelled_orders']} working orders cancelled"
    )


@audit_app.command("verify-log")
def audit_verify_log(
    database_url: Annotated[
        str | None, typer.Option("--db", help="Database URL (default ISTHMUS_DATABASE_URL)")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Recompute the audit log's hash chain; exit 1 if any record was altered."""
    from gateway.store import audit_log
    from gateway.store.database import create_database_engine

    engine = create_database_engine(database_url or Settings().database_url, for_writes=False)
    with engine.connect() as connection:
        result = audit_log.verify(connection)
    engine.dispose()
    if as_json:
        print(
            json.dumps(
                {"ok": result.ok, "records": result.records, "problems": list(result.problems)}
            )
        )
    elif result.ok:
        console.print(f"[green]audit log intact[/]: {result.records} records")
    else:
        console.print(f"[red]audit log broken[/] after checking {result.records} records:")
        for problem in result.problems:
            console.print(f"  - {problem}")
    if not result.ok:
        sys.exit(1)


def _audit_report_tables(report: dict[str, Any]) -> list[Table]:
    fills = Table(title="On-chain fills")
    for column in ("tx", "log", "wallet", "side", "amount", "quote", "gateway fills", "ok"):
        fills.add_column(
            column, justify="right" if column in ("log", "amount", "quote") else "left"
        )
    for f in report["fills"]:
        fills.add_row(
            abbreviated(console, f["tx_hash"], 10),
            str(f["log_index"]),
            abbreviated(console, f["wallet"], 6, 4),
            f["side"],
            f["amount"],
            f["quote"],
            ", ".join(f["gateway_fills"]) or "-",
            "[green]yes[/]" if f["ok"] else "[red]no[/]",
        )
    return [fills]


@audit_app.command("verify")
def audit_verify(
    rpc: Annotated[str, typer.Option("--rpc", help="JSON-RPC URL of the chain")],
    settlement: Annotated[str, typer.Option("--settlement", help="The Settlement contract")],
    database_url: Annotated[
        str | None,
        typer.Option("--db", help="The gateway's database: also check its fills and audit log"),
    ] = None,
    from_block: Annotated[int, typer.Option("--from-block", min=0, help="First block")] = 0,
    unsettled_after: Annotated[
        int,
        typer.Option(
            "--unsettled-after-blocks",
            min=1,
            help="With --db: a signed order's fill not settled this many blocks later is a finding",
        ),
    ] = 20,
    as_json: AsJson = False,
) -> None:
    """Rebuild every fill from the chain's events and check its owner's signature, its
    limits and (with --db) the gateway's record and audit log, and that every fill of a
    signed order reached the chain; exit 1 on any mismatch or finding."""
    from web3 import Web3

    from gateway.settlement.auditor import verify
    from gateway.store.database import create_database_engine

    if not Web3.is_address(settlement):
        console.print(f"[red]not an address:[/] {settlement}")
        raise typer.Exit(2)
    engine = (
        None if database_url is None else create_database_engine(database_url, for_writes=False)
    )
    try:
        w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
        if not w3.is_connected():
            console.print(f"[red]cannot reach the chain at[/] {rpc}")
            raise typer.Exit(2)
        report = verify(
            w3,
            settlement,
            engine=engine,
            from_block=from_block,
            unsettled_after_blocks=unsettled_after,
        ).to_json()
    finally:
        if engine is not None:
            engine.dispose()
    if as_json:
        _print_json(report)
    else:
        counts = report["counts"]
        for table in _audit_report_tables(report):
            console.print(table)
        console.print(
            f"blocks {report['from_block']}..{report['to_block']}: {counts['batches']} batches, "
            f"{counts['fills']} fills, {counts['fills_with_problems']} with problems"
        )
        store = report["store"]
        if store is None:
            console.print("on-chain side only (no --db)")
        else:
            console.print(
                f"store: {store['settled_fills']} settled fills, {store['matched']} match the "
                f"chain; audit log: {store['audit_log']['records']} records"
            )
        for f in report["fills"]:
            for problem in f["problems"]:
                console.print(f"  [red]-[/] {f['tx_hash']} log {f['log_index']}: {problem}")
        for problem in report["problems"]:
            console.print(f"  [red]-[/] {problem}")
        console.print("[green]verified[/]" if report["ok"] else "[red]mismatch[/]")
    if not report["ok"]:
        sys.exit(1)


@fills_app.command("export")
def fills_export(
    out: Annotated[Path, typer.Option("--out", help="File to write")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    database_url: Annotated[
        str | None, typer.Option("--db", help="Database URL (default ISTHMUS_DATABASE_URL)")
    ] = None,
    account: Annotated[str | None, typer.Option(help="Only this account")] = None,
) -> None:
    """Write every fill (oldest first) with its order's ids and settlement, for attribution."""
    from gateway.devnet.catalogue import devnet_catalogue
    from gateway.store.database import create_database_engine
    from gateway.store.fills_export import FillsFilter, export_chunks, read_pages

    if fmt not in ("csv", "parquet"):
        console.print(f"[red]unknown format[/] {fmt!r}: csv or parquet")
        raise typer.Exit(2)
    catalogue = devnet_catalogue()

    def fee_asset(symbol: str) -> str | None:
        return catalogue.get(symbol).quote.symbol if symbol in catalogue else None

    engine = create_database_engine(database_url or Settings().database_url, for_writes=False)
    try:
        pages = read_pages(engine, FillsFilter(account=account), fee_asset)
        with out.open("wb") as handle:
            for chunk in export_chunks("csv" if fmt == "csv" else "parquet", pages):
                handle.write(chunk)
    finally:
        engine.dispose()
    console.print(f"fills written to {out}")


if __name__ == "__main__":
    app()
