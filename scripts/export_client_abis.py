"""Write the ABIs `isthmus-client` ships (client/isthmus_client/abi/): the client talks to the
contracts without the Vyper compiler. tests/client/test_client_abis.py fails when a contract
changed and this was not re-run:

    .venv/bin/python scripts/export_client_abis.py
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway.chain.artifacts import compile_contract

CONTRACTS = ("MarginWallet", "WalletFactory", "Settlement", "PriceOracle")
ABI_DIR = Path(__file__).resolve().parent.parent / "client" / "isthmus_client" / "abi"


def abi_text(name: str) -> str:
    return json.dumps(compile_contract(name).abi, indent=1, sort_keys=True) + "\n"


def main() -> None:
    ABI_DIR.mkdir(parents=True, exist_ok=True)
    for name in CONTRACTS:
        (ABI_DIR / f"{name}.json").write_text(abi_text(name))
        print(f"wrote {ABI_DIR / name}.json")


if __name__ == "__main__":
    main()
