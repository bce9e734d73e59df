"""docs/client.md is the client's reference as its docstrings and signatures say today: the
committed page equals what scripts/client_reference.py writes, so the two cannot drift."""

from __future__ import annotations

from scripts.client_reference import TARGET, render


def test_the_committed_reference_is_what_the_docstrings_generate() -> None:
    assert TARGET.read_text() == render(), (
        "the client changed: run .venv/bin/python scripts/client_reference.py"
    )


def test_the_reference_covers_the_public_api() -> None:
    import isthmus_client

    page = render()
    for name in isthmus_client.__all__:
        assert f"`{name}`" in page, name
    for method in ("place_order", "place_strategy", "sign_order", "submit", "wait_settled"):
        assert f"### `AsyncIsthmus.{method}`" in page, method
    assert "### `iron_condor`" in page and "### `WalletOps.withdraw`" in page
