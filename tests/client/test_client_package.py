"""isthmus-client as a package of its own: it installs alone in a clean virtual environment,
carries none of the server's packages, ships the contracts' current ABIs, and has an
exception class for every error code the gateway answers with."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from isthmus_client import errors

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "client"
UV = ROOT / ".tools" / "bin" / "uv"
# what a client must never need: the server, its web framework, its numeric kernels, the
# contracts' compiler and toolchain, its database layer
SERVER_PACKAGES = {
    "isthmus",
    "fastapi",
    "starlette",
    "uvicorn",
    "numba",
    "llvmlite",
    "scipy",
    "vyper",
    "titanoboa",
    "eth-ape",
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "psycopg",
    "ccxt",
    "pyarrow",
}


def test_the_client_imports_nothing_of_the_gateway() -> None:
    for source in (CLIENT / "isthmus_client").rglob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                assert root not in {"gateway", "tests", "fastapi", "numba", "vyper"}, (
                    f"{source.relative_to(ROOT)} imports {name}"
                )


def test_the_shipped_abis_are_the_compiled_contracts() -> None:
    from scripts.export_client_abis import ABI_DIR, CONTRACTS, abi_text

    for name in CONTRACTS:
        shipped = (ABI_DIR / f"{name}.json").read_text()
        assert shipped == abi_text(name), (
            f"{name}'s ABI changed: run .venv/bin/python scripts/export_client_abis.py"
        )


def _gateway_codes() -> set[str]:
    """Every stable code the gateway's sources can answer with."""
    pattern = re.compile(
        r"""(?:\bcode\s*=\s*|error_body\(\s*|_deny\([^,]+,[^,]+,[^,]+,[^,]+,\s*|"code":\s*)"""
        r"""["']([a-z][a-z0-9_]+)["']"""
    )
    codes: set[str] = set()
    for source in (ROOT / "gateway").rglob("*.py"):
        if "devnet/exchange_sim" in str(source) or "migrations" in str(source):
            continue
        codes |= set(pattern.findall(source.read_text()))
    from gateway.api.errors import HTTP_CODES

    codes |= set(HTTP_CODES.values())
    codes.discard("code")
    return codes


def test_every_error_code_of_the_gateway_has_its_exception_class() -> None:
    codes = _gateway_codes()
    assert len(codes) > 50  # the scan found them
    missing = sorted(code for code in codes if code not in errors.CODES)
    assert missing == [], f"add classes to client/isthmus_client/errors.py for {missing}"
    for code in codes:
        cls = errors.error_class(code, 400)
        assert issubclass(cls, errors.ApiError) and cls.code == code


@pytest.mark.slow
def test_installs_alone_in_a_clean_virtual_environment(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(UV), "pip", "install", "--quiet", "--python", str(python), str(CLIENT)],
        check=True,
        cwd=tmp_path,
    )
    listed = subprocess.run(
        [str(UV), "pip", "list", "--format", "json", "--python", str(python)],
        check=True,
        capture_output=True,
        text=True,
    )
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "isthmus-client" in installed
    assert installed & SERVER_PACKAGES == set(), installed & SERVER_PACKAGES
    # it works there, away from this checkout: an order signed offline recovers to its key
    script = """
import sys
from decimal import Decimal
from eth_account import Account
from eth_account.messages import encode_typed_data
import isthmus_client
from isthmus_client.signing import Instrument, Token, order_message, sign_typed_data, typed_data
assert "site-packages" in isthmus_client.__file__, isthmus_client.__file__
signer = isthmus_client.Signer.from_key("0x" + "42" * 32)
tokens = {"WETH": Token("WETH", "0x" + "aa" * 20, 18), "USDC": Token("USDC", "0x" + "bb" * 20, 6)}
pair = Instrument("WETH/USDC", "spot", "WETH", "USDC", 18, 6, Decimal("0.01"), Decimal("0.001"),
                  Decimal("0.001"))
message = order_message(pair, tokens, side="buy", quantity=Decimal("1.5"), price=Decimal("3000"),
                        nonce=1, deadline=2_000_000_000)
payload = typed_data(message, 31337, "0x" + "cc" * 20)
signature = sign_typed_data(signer.account, payload)
signable = encode_typed_data(full_message=payload)
assert Account.recover_message(signable, signature=signature) == signer.address
loaded = {m.split(".")[0] for m in sys.modules}
server = {"gateway", "fastapi", "numba", "vyper", "sqlalchemy"} & loaded
assert not server, server
print("ok", len(isthmus_client.errors.CODES))
"""
    result = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")
