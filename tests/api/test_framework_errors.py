"""The answers the framework gives rather than an operation, against /openapi.json: a body
that is not JSON is `400 malformed_json` on every operation that takes a body, and documented
there; a method a path does not serve is `405 method_not_allowed` whose `Allow` lists exactly
the methods the path serves."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.test_orders_api import assert_error

METHODS = ("get", "head", "post", "put", "patch", "delete", "options", "trace")


@pytest.fixture
def schema(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def concrete(template: str) -> str:
    """A path of the template: any one segment answers to the router before validation."""
    return re.sub(r"\{[^}]+\}", "x1", template)


def served(schema: dict[str, Any], path: str) -> set[str]:
    """The methods the operations of every template that matches `path` declare: a literal
    path can also match a template (`/v1/orders/typed-data` is an `/v1/orders/{order_id}`
    too, whose GET answers there, refusing the id)."""
    methods: set[str] = set()
    for template, item in schema["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods |= {method.upper() for method in item if method in METHODS}
    return methods


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_every_operation_with_a_body_documents_and_answers_malformed_json(
    client: TestClient, schema: dict[str, Any]
) -> None:
    with_body = [(m, p, o) for m, p, o in operations(schema) if "requestBody" in o]
    assert len(with_body) >= 12  # orders, strategies, risk, routing, algos, access
    for method, path, operation in with_body:
        documented = operation["responses"].get("400")
        assert documented is not None, f"{method.upper()} {path} does not document 400"
        assert documented["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorOut"
        }, f"{method.upper()} {path}"
        assert "malformed_json" in documented["description"], f"{method.upper()} {path}"
        for body in (b"{", b'{"account": ', b"not json", b"\xff\xfe"):
            response = client.request(
                method.upper(),
                concrete(path),
                content=body,
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 400, f"{method.upper()} {path}: {response.text}"
            assert_error(response, 400, "malformed_json", "body")
    assert "ErrorOut" in schema["components"]["schemas"]


def test_a_method_a_path_does_not_serve_is_405_with_exactly_its_methods(
    client: TestClient, schema: dict[str, Any]
) -> None:
    assert schema["paths"]
    assert served(schema, "/v1/orders/typed-data") == {"GET", "PATCH", "DELETE", "POST"}
    for template in schema["paths"]:
        path = concrete(template)
        declared = served(schema, path)
        # no CORS is configured: OPTIONS is not served; neither is HEAD (only GET is)
        other = next(m for m in ("PUT", "PATCH", "DELETE", "POST", "GET") if m not in declared)
        for method in ("OPTIONS", "HEAD", "TRACE", other):
            assert method not in declared
            response = client.request(method, path)
            assert response.status_code == 405, f"{method} {template}: {response.text}"
            allow = {m.strip() for m in response.headers["allow"].split(",")}
            assert allow == declared, f"{method} {template}: Allow {allow}, declared {declared}"
            if method != "HEAD":  # a HEAD answer has no body
                assert_error(response, 405, "method_not_allowed")
                assert method in response.json()["error"]["message"]
        # and what Allow lists is served: no method there answers 405
        for method in declared:
            assert client.request(method, path).status_code != 405, f"{method} {template}"


def test_allow_lists_head_where_the_server_answers_it(client: TestClient) -> None:
    assert client.head("/openapi.json").status_code == 200
    response = client.request("OPTIONS", "/openapi.json")
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "HEAD"}
