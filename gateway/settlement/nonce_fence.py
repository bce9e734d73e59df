"""The settlement sender's fence on chain.

A replica that takes the settlement role over may have a predecessor that was only paused:
it can wake up holding a batch it signed but never broadcast. The store refuses its writes,
but the chain would still take the transaction. Before sending anything, the new holder spends
the operator account's next nonce on a transfer of nothing to itself; the predecessor's signed
transaction then carries a used nonce and no node will mine it.
"""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.exceptions import Web3RPCError

TIP_WEI = 1_000_000_000
NONCE_ATTEMPTS = 3


def spend_next_nonce(w3: Web3, account: Any, chain_id: int) -> tuple[int, str]:
    """Sends and waits for a 0-value self-transfer at the account's pending nonce; returns
    the nonce spent and the transaction hash."""
    for attempt in range(NONCE_ATTEMPTS):
        nonce = w3.eth.get_transaction_count(account.address, "pending")
        base = int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        tx = {
            "to": account.address,
            "value": 0,
            "nonce": nonce,
            "gas": 21_000,
            "chainId": chain_id,
            "maxFeePerGas": 2 * base + TIP_WEI,
            "maxPriorityFeePerGas": TIP_WEI,
            "type": 2,
        }
        signed = account.sign_transaction(tx)
        try:
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        except Web3RPCError as error:
            # the nonce went meanwhile (the account sent something else): take the next one
            if "nonce" not in str(error).lower() or attempt == NONCE_ATTEMPTS - 1:
                raise
            continue
        w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        return nonce, tx_hash.to_0x_hex()
    raise AssertionError("unreachable")
