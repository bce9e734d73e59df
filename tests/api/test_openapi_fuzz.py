"""The API against its own published schema (Schemathesis, in process): generated requests to
every operation, as the operator, never get a 5xx the operation does not document, and every
answer matches the schema. Positive cases follow the schema; negative ones break it on
purpose (wrong types, missing fields, out-of-range values) and must be refused cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from gateway.api.app import create_app
from gateway.config import Settings
from tests.operator_access import OPERATOR_TOKEN, operator_headers

EXAMPLES = 30  # per operation and mode: both runs together take about half a minute
# order entry added with batches and mass quotes: named so that a schema losing them fails
NEW_ORDER_ENTRY = {"POST /v1/orders/batch", "POST /v1/orders/cancel", "POST /v1/quotes"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    directory = tmp_path_factory.mktemp("fuzz")
    application = create_app(
        Settings(
            database_url=f"sqlite:///{directory / 'fuzz.db'}",
            operator_token=OPERATOR_TOKEN,
            # the fuzzer is one caller sending thousands of requests: limits would only hide routes
            rate_limit_per_second=Decimal(1_000_000),
            rate_limit_burst=1_000_000,
            risk_orders_per_second=Decimal(1_000_000),
            risk_order_burst=1_000_000,
        )
    )
    yield application
    shutdown_lifespans()  # Schemathesis started the app on its first request: stop its runtime


def check(case: schemathesis.Case[Any], seen: dict[str, set[int]]) -> None:
    response = case.call(headers=operator_headers())
    seen.setdefault(case.operation.label, set()).add(response.status_code)
    # a 5xx only where the operation documents it (503: no chain to verify against)
    declared = case.operation.definition.raw.get("responses", {})
    assert response.status_code < 500 or str(response.status_code) in declared, (
        f"{response.status_code} {response.text[:300]}\n{case.as_curl_command()}"
    )
    # every status is one the operation documents, and its body matches that response
    case.validate_response(
        response,
        checks=[status_code_conformance, response_schema_conformance],
        headers=operator_headers(),
    )


@pytest.mark.parametrize(
    "mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)
def test_no_operation_errors_or_breaks_its_schema(
    app: FastAPI, mode: schemathesis.GenerationMode
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    seen: dict[str, set[int]] = {}
    operations = 0
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"an operation the schema does not describe well: {result.err()}")
            continue
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,  # the same requests on every run
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case: schemathesis.Case[Any]) -> None:
            check(case, seen)

        try:
            call()
        except Unsatisfiable:
            assert mode is schemathesis.GenerationMode.NEGATIVE  # nothing in it to break
        except (Exception, BaseExceptionGroup) as error:  # report every operation's failure
            failures.append(f"{operation.label}: {error}")
    assert operations > 30  # the schema was read whole
    assert not failures, "\n\n".join(failures)
    assert set(seen) >= NEW_ORDER_ENTRY
    if mode is schemathesis.GenerationMode.POSITIVE:  # valid requests got past validation
        assert all(200 in seen[label] for label in NEW_ORDER_ENTRY), {
            label: seen[label] for label in NEW_ORDER_ENTRY
        }
