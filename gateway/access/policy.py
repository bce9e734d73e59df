"""Who may call what: one table from (method, route template) to the permission it needs.

Every route of the app must be listed (a test walks the app's routes); a route that is not
is treated as operator-only, so forgetting one fails closed. Account-level visibility (which
orders, fills, risk a caller may see) is decided where the resource is served, through
`gateway.api.access`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from gateway.access.principal import Principal


class Permission(StrEnum):
    PUBLIC = "public"  # no credentials needed
    READ = "read"  # read own accounts (operator and auditor: every account)
    QUOTE = "quote"  # routed quotes
    TRADE = "trade"  # submit, amend, cancel for own accounts
    OVERSIGHT = "oversight"  # read across every account: operator and auditor only
    OPERATOR = "operator"  # change the gateway: keys, limits, kill switches, hedging


@dataclass(frozen=True, slots=True)
class Rule:
    method: str
    # `{name}` matches one path segment, `{name:path}` one or more; a trailing `/*` any rest
    template: str
    permission: Permission


def _rules(permission: Permission, *routes: str) -> list[Rule]:
    rules = []
    for route in routes:
        method, template = route.split(" ", 1)
        rules.append(Rule(method, template, permission))
    return rules


# Literal paths before templated ones: the first matching rule wins.
POLICY: tuple[Rule, ...] = (
    *_rules(
        Permission.PUBLIC,
        "GET /openapi.json",
        "GET /docs",
        "GET /docs/oauth2-redirect",
        "GET /redoc",
        "GET /v1/health",
        "GET /v1/ready",  # readiness: database, chain, this replica's lease loop
        "GET /metrics",  # Prometheus: no account, order id or secret in it
        "GET /health",
        "GET /v1/chain",
        "GET /v1/auth/siwe/nonce",
        "POST /v1/auth/siwe",
        "DELETE /v1/auth/session",
        # the web app's files: it signs in and calls the API like any client
        "GET /app",
        "GET /app/*",
    ),
    *_rules(
        Permission.TRADE,
        "POST /v1/orders",
        "POST /v1/strategies",
        "POST /v1/orders/typed-data",
        "POST /v1/orders/cancel-all-after",
        "POST /v1/orders/batch",
        "POST /v1/orders/cancel",
        "POST /v1/quotes",
        "PATCH /v1/orders/{order_id}",
        "DELETE /v1/orders/{order_id}",
        "POST /v1/algos",
        "POST /v1/algos/{algo_id}/pause",
        "POST /v1/algos/{algo_id}/resume",
        "POST /v1/algos/{algo_id}/cancel",
    ),
    *_rules(Permission.QUOTE, "POST /v1/quote"),
    *_rules(
        Permission.READ,
        "GET /v1/orders",
        "GET /v1/orders/cancel-all-after",
        "GET /v1/orders/{order_id}",
        "GET /v1/orders/{order_id}/fills",
        "GET /v1/orders/{parent_id}/tca",
        "GET /v1/strategies/{order_id}/legging",
        "GET /v1/algos/{algo_id}",
        "GET /v1/instruments",
        "GET /v1/book/{symbol:path}",
        "GET /v1/venues",  # market-data feeds: no account's data
        "GET /v1/accounts/{address}/risk",
        "GET /v1/accounts/{account}/next-nonce",
        "POST /v1/risk/what-if",
        "GET /v1/risk/limits/{account}",
        "GET /v1/risk/hedging/{account}",
        "GET /v1/settlements/{batch_id}",
        "GET /v1/fills/export",
        "GET /v1/audit/verify",  # the audit router filters fills by the caller's accounts
        "GET /v1/audit/fills",
        "GET /v1/stream",  # the WebSocket handshake
    ),
    *_rules(
        Permission.OVERSIGHT,
        "GET /v1/risk/book",
        "GET /v1/risk/kill-switches",
        "GET /v1/settlements",  # every account's batches
        "GET /v1/status",  # replicas, roles, settlement lag, venue health
        "GET /v1/fix/sessions",  # who is logged on to each FIX session (API key ids)
        "GET /v1/audit/log",  # every account's records
        "GET /v1/audit/*",
        # the compliance router does not narrow to the caller's accounts (yet)
        "GET /v1/compliance/accounts/{account}",
    ),
    *_rules(
        Permission.OPERATOR,
        "GET /v1/api-keys",
        "POST /v1/api-keys",
        "DELETE /v1/api-keys/{key_id}",
        "POST /v1/compliance/reload",
        "PUT /v1/risk/limits/{account}",
        "DELETE /v1/risk/limits/{account}",
        "PUT /v1/risk/kill-switches/{scope}",
        "PUT /v1/risk/hedging/{account}",
        "DELETE /v1/risk/hedging/{account}",
    ),
)


def _segment(part: str) -> str:
    if part.startswith("{"):
        return ".+" if part.endswith(":path}") else "[^/]+"
    return re.escape(part)


def _pattern(template: str) -> re.Pattern[str]:
    rest = template.endswith("/*")
    body = template[:-2] if rest else template
    parts = re.split(r"(\{[a-z_]+(?::path)?\})", body)
    regex = "".join(_segment(p) for p in parts)
    return re.compile(f"^{regex}(?:/.*)?$" if rest else f"^{regex}$")


_COMPILED = tuple((rule, _pattern(rule.template)) for rule in POLICY)


def required_permission(method: str, path: str) -> Permission:
    """The permission a request needs; operator-only for anything the table does not name."""
    method = "GET" if method == "HEAD" else method.upper()
    for rule, pattern in _COMPILED:
        if rule.method == method and pattern.match(path):
            return rule.permission
    return Permission.OPERATOR


def rule_for(method: str, template: str) -> Rule | None:
    """The rule naming exactly this route template (for the test that every route has one)."""
    for rule in POLICY:
        if rule.method == method.upper() and rule.template.replace(":path}", "}") == template:
            return rule
    return None


def allows(principal: Principal, permission: Permission) -> bool:
    """Role and scope alone; which accounts are visible is checked where data is served."""
    if permission is Permission.PUBLIC or principal.role == "operator":
        return True
    if permission is Permission.OPERATOR:
        return False
    if permission is Permission.OVERSIGHT:
        return principal.role == "auditor"
    if principal.role == "auditor":
        return permission is Permission.READ
    if principal.role == "trader":
        return True  # reads, quotes and trades its own accounts
    return permission.value in principal.scopes
