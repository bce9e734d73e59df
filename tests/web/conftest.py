"""The web app in a real browser: Debian's chromium driven by Playwright, against a real
`isthmus up` on the devnet (`devnet`, one per worker, shared with the client tests).

A page gets an EIP-1193 provider injected as `window.ethereum`. It forwards every call to the
devnet's anvil, whose dev accounts are unlocked, so the node itself signs
`eth_signTypedData_v4` and `personal_sign` and sends the transactions: no signature is faked.
Screenshots go to `test-artifacts/web/`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.client.devnet_gateway import DevnetGateway

ROOT = Path(__file__).resolve().parents[2]
# what a page may take to show a change while the rest of the suite loads both cores (the
# default of 5 s is for an idle machine); an assertion still fails when the change never comes
expect.set_options(timeout=30_000)
ARTIFACTS = ROOT / "test-artifacts" / "web"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {"laptop": (1366, 900), "phone": (390, 844)}

# anvil's dev accounts 4..9 (the test mnemonic's well-known keys): unlocked on the node, so
# the node signs for them; 1..3 are the devnet's demo traders, 0 its operator, 8 the owner of
# the operator's inventory wallet (no test trades with it)
DEV_ACCOUNTS = {
    4: (
        "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
        "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    ),
    5: (
        "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
        "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    ),
    6: (
        "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
        "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    ),
    7: (
        "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
        "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    ),
    8: (
        "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
        "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    ),
    9: (
        "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
        "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
    ),
}

PROVIDER = """
(() => {
  const account = %(account)s;
  const listeners = {};
  window.ethereum = {
    isIsthmusTest: true,
    async request({ method, params }) {
      if (method === "eth_requestAccounts" || method === "eth_accounts") return [account];
      const answer = await window.__anvil(method, params || []);
      if (answer.error) {
        const error = new Error(answer.error.message);
        error.code = answer.error.code;
        error.data = answer.error.data;
        throw error;
      }
      return answer.result;
    },
    on(event, listener) { (listeners[event] ||= []).push(listener); },
    removeListener(event, listener) {
      listeners[event] = (listeners[event] || []).filter((l) => l !== listener);
    },
  };
})();
"""


@pytest.fixture(scope="session")
def rpc_url(devnet: DevnetGateway) -> str:
    url: str = devnet.chain()["rpc_url"]
    return url


# module scope: while Playwright's sync API runs it holds an event loop on this thread, so
# it must stop before the worker's next test file (which may call asyncio.run)
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "chromium is not installed: .ci/run installs Debian's package"
    browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
    yield browser
    browser.close()


OpenPage = Callable[..., Page]


@pytest.fixture
def open_page(browser: Browser, devnet: DevnetGateway, rpc_url: str) -> Iterator[OpenPage]:
    """`open_page(account=None, width="laptop", path="/app/")`: a fresh browser context whose
    `window.ethereum` is `account` (an anvil dev account address) on the devnet's anvil."""
    contexts = []
    http = httpx.Client(timeout=30)

    def anvil(method: str, params: list[Any]) -> dict[str, Any]:
        request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        answer: dict[str, Any] = http.post(rpc_url, json=request).json()
        return answer

    def open_(account: str | None = None, width: str = "laptop", path: str = "/app/") -> Page:
        w, h = WIDTHS[width]
        context = browser.new_context(base_url=devnet.url, viewport={"width": w, "height": h})
        contexts.append(context)
        context.expose_function("__anvil", anvil)
        if account is not None:
            context.add_init_script(PROVIDER % {"account": json.dumps(account)})
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(path)
        return page

    yield open_
    for context in contexts:
        context.close()
    http.close()


def screenshot(page: Page, name: str) -> Path:
    """Keep a screenshot of the page as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    return target


def serious_accessibility_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core (the npm package in node_modules) on the page as it is: the violations whose
    impact is serious or critical."""
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate("async () => await axe.run(document)")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]],
        }
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
