"""Verify an owner's signature the way MarginWallet does: ecrecover (strict low-s, v in
{27, 28}) for an EOA owner, EIP-1271 ``isValidSignature`` for a contract owner."""

from __future__ import annotations

from typing import Final

from web3 import Web3
from web3.exceptions import Web3Exception

from gateway.settlement.eip712 import SignatureError, recover_digest_signer

EIP1271_MAGIC: Final = bytes.fromhex("1626ba7e")
EIP1271_ABI: Final = [
    {
        "type": "function",
        "name": "isValidSignature",
        "stateMutability": "view",
        "inputs": [
            {"name": "digest", "type": "bytes32"},
            {"name": "signature", "type": "bytes"},
        ],
        "outputs": [{"name": "", "type": "bytes4"}],
    }
]


def is_valid_signature(w3: Web3, owner: str, digest: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``digest`` is valid for ``owner`` (checked on-chain through
    EIP-1271 when the owner is a contract)."""
    address = Web3.to_checksum_address(owner)
    if len(signature) != 65:
        return False
    if w3.eth.get_code(address):
        contract = w3.eth.contract(address=address, abi=EIP1271_ABI)
        try:
            result: bytes = contract.functions.isValidSignature(digest, signature).call()
        except (Web3Exception, ValueError):
            return False
        return bytes(result) == EIP1271_MAGIC
    try:
        return recover_digest_signer(digest, signature) == address
    except SignatureError:
        return False
