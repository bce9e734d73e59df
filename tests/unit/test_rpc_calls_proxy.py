"""The batched chain reads go through the proxy the environment names, as web3's requests
does, read once (aiohttp's trust_env read it again on every request: +0.48 ms)."""

from __future__ import annotations

import pytest

from gateway.chain.rpc_calls import EthCalls, proxy_for


def test_the_environment_s_proxy_is_used_unless_the_host_bypasses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert proxy_for("http://node.example:8545") is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://secure-proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1,.internal")
    assert proxy_for("http://node.example:8545") == "http://proxy.example:3128"
    assert proxy_for("https://rpc.example/v2/key") == "http://secure-proxy.example:3128"
    assert proxy_for("http://127.0.0.1:8545") is None
    assert proxy_for("http://eth.internal:8545") is None
    # an EthCalls reads it when it is made
    assert EthCalls("http://node.example:8545")._proxy == "http://proxy.example:3128"
