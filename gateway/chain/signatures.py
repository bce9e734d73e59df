"""Who may sign for a MarginWallet, read from the chain the way the wallet checks it.

An ECDSA signature (65 bytes, strict low-s, v in {27, 28}) is the owner EOA's or a trading
key's (`trading_key`, `key_instrument_allowed`); a contract owner (e.g. a Safe) signs with
bytes of any other length, checked through EIP-1271 `isValidSignature` on the owner. These
are blocking web3 calls: async callers run them in a worker thread.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final

from eth_utils import keccak
from web3 import Web3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError, Web3RPCError
from web3.types import BlockIdentifier

from gateway.domain.trading_keys import TradingKey
from gateway.settlement.eip712 import SignatureError, recover_digest_signer

ECDSA_SIGNATURE_LENGTH: Final = 65
# contracts/wallet/keys.vy MAX_CONTRACT_SIG: what `apply_order` accepts (8 Safe owners)
MAX_CONTRACT_SIGNATURE_LENGTH: Final = 520
EIP1271_MAGIC: Final = bytes.fromhex("1626ba7e")
NO_KEY: Final = TradingKey(0, False, 0, False)
# what a call answers when the contract refuses or lacks the function; a node that cannot
# be reached raises on, so an outage is never taken for a refusal
_REFUSED: Final = (ContractLogicError, BadFunctionCallOutput, ValueError)


def is_contract_length(signature: bytes) -> bool:
    """The one rule for what a signature is: 65 bytes is ECDSA (the owner EOA or a trading
    key), any other length a contract owner's (EIP-1271). Intake, the batch encoder and the
    key follower all ask this."""
    return len(signature) != ECDSA_SIGNATURE_LENGTH


def _function(name: str, inputs: list[tuple[str, str]], outputs: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "stateMutability": "view",
        "inputs": [{"name": n, "type": t} for n, t in inputs],
        "outputs": [{"name": "", "type": t} for t in outputs],
    }


EIP1271_ABI: Final = [
    _function("isValidSignature", [("digest", "bytes32"), ("signature", "bytes")], ["bytes4"])
]
# the parts of the MarginWallet ABI read here (a test pins them to the compiled contract)
WALLET_SIGNER_ABI: Final = [
    _function("owner", [], ["address"]),
    _function("trading_key", [("key", "address")], ["uint64", "bool", "uint256", "bool"]),
    _function("key_instrument_allowed", [("arg0", "address"), ("arg1", "bytes32")], ["bool"]),
    _function("nonce_used", [("nonce", "uint256")], ["bool"]),
    _function("min_nonce", [], ["uint256"]),
]
SAFE_OWNERS_ABI: Final = [_function("isOwner", [("owner", "address")], ["bool"])]
# event KeyRevoked(address indexed key)
KEY_REVOKED_TOPIC: Final = keccak(text="KeyRevoked(address)")
# event KeyAuthorised(address indexed key, uint64 expiry, bool all_instruments,
#                     uint256 max_notional): also logged when an owner re-authorises a key
KEY_AUTHORISED_TOPIC: Final = keccak(text="KeyAuthorised(address,uint64,bool,uint256)")


def _wallet(w3: Web3, wallet: str) -> Any:
    return w3.eth.contract(address=Web3.to_checksum_address(wallet), abi=WALLET_SIGNER_ABI)


def wallet_owner(w3: Web3, wallet: str, block: BlockIdentifier = "latest") -> str:
    """`owner()`; raises (web3's error) when `wallet` is not a MarginWallet."""
    return str(_wallet(w3, wallet).functions.owner().call(block_identifier=block))


def min_nonce(w3: Web3, wallet: str) -> int:
    """The wallet's `min_nonce()`: every nonce below it is cancelled; 0 when `wallet` is not
    a MarginWallet (it has no nonces to refuse)."""
    try:
        return int(_wallet(w3, wallet).functions.min_nonce().call())
    except (*_REFUSED, Web3RPCError):
        return 0


_MIN_NONCE: Final = keccak(text="min_nonce()")[:4]
_NONCE_USED: Final = keccak(text="nonce_used(uint256)")[:4]


def nonce_refusal(
    w3: Web3, wallet: str, nonce: int, block: BlockIdentifier = "latest"
) -> str | None:
    """Why the wallet would refuse any order signed with `nonce` now (`wallet: nonce used`,
    `wallet: nonce cancelled`), or None.

    Both reads go in one JSON-RPC batch of plain `eth_call`s: every signed order asks this,
    and two contract calls through web3 took 7.6 ms here against 2.3 for the batch. Anything
    but two 32-byte answers (not a wallet, a revert) is asked again through the contract, so
    it fails exactly as a contract call does."""
    to = Web3.to_checksum_address(wallet)
    words: list[bytes] = []
    with contextlib.suppress(*_REFUSED, Web3RPCError), w3.batch_requests() as batch:
        for _, data in (min_nonce_call(to), nonce_used_call(to, nonce)):
            batch.add(w3.eth.call({"to": to, "data": data}, block))
        answers: list[object] = list(batch.execute())
        words = [bytes(a) for a in answers if isinstance(a, bytes)]  # HexBytes
    if len(words) == 2 and all(len(word) == 32 for word in words):
        minimum, used = (int.from_bytes(word, "big") for word in words)
    else:
        functions = _wallet(w3, wallet).functions
        minimum = int(functions.min_nonce().call(block_identifier=block))
        used = int(functions.nonce_used(nonce).call(block_identifier=block))
    return nonce_refusal_of(nonce, minimum, bool(used))


def nonce_refusal_of(nonce: int, minimum: int, used: bool) -> str | None:
    """Why the wallet refuses `nonce`, given its `min_nonce()` and `nonce_used(nonce)`."""
    if nonce < minimum:
        return "cancelled: the owner cancelled every nonce below the wallet's minimum"
    if used:
        return "used: an order signed with it already filled completely"
    return None


# --- the same questions as calldata, for many at once (`gateway.chain.rpc_calls`) -------
# Each answer is one 32-byte word per output (all static types); anything else (a revert,
# a contract without the function) is read again through web3 by the caller, so it fails
# exactly as the single call does.

_TRADING_KEY: Final = keccak(text="trading_key(address)")[:4]
_KEY_ALLOWED: Final = keccak(text="key_instrument_allowed(address,bytes32)")[:4]


def _address_word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address.lower().removeprefix("0x"))


def min_nonce_call(wallet: str) -> tuple[str, bytes]:
    return wallet, _MIN_NONCE


def nonce_used_call(wallet: str, nonce: int) -> tuple[str, bytes]:
    return wallet, _NONCE_USED + nonce.to_bytes(32, "big")


def trading_key_call(wallet: str, key: str) -> tuple[str, bytes]:
    return wallet, _TRADING_KEY + _address_word(key)


def key_allowed_call(wallet: str, key: str, instrument: bytes) -> tuple[str, bytes]:
    return wallet, _KEY_ALLOWED + _address_word(key) + instrument


def words(answer: bytes | None, count: int) -> list[int] | None:
    """The `count` words of a static answer, or None when it is not exactly that."""
    if answer is None or len(answer) != 32 * count:
        return None
    return [int.from_bytes(answer[i : i + 32], "big") for i in range(0, len(answer), 32)]


def trading_key_of(answer: bytes | None) -> TradingKey | None:
    """`trading_key(key)`'s record from its answer (None: not a four-word answer)."""
    read = words(answer, 4)
    if read is None:
        return None
    expiry, all_instruments, max_notional, active = read
    return TradingKey(expiry, bool(all_instruments), max_notional, bool(active))


def is_contract(w3: Web3, address: str, block: BlockIdentifier = "latest") -> bool:
    code = w3.eth.get_code(Web3.to_checksum_address(address), block_identifier=block)
    return len(code) > 0


def trading_key(w3: Web3, wallet: str, key: str, block: BlockIdentifier = "latest") -> TradingKey:
    """`trading_key(key)` at `block` (`active` is at that block's timestamp); no key for a
    contract that has no trading keys (an `owner()` alone does not make a wallet)."""
    call = _wallet(w3, wallet).functions.trading_key(Web3.to_checksum_address(key))
    try:
        expiry, all_instruments, max_notional, active = call.call(block_identifier=block)
    except _REFUSED:
        return NO_KEY
    return TradingKey(int(expiry), bool(all_instruments), int(max_notional), bool(active))


def key_instrument_allowed(
    w3: Web3, wallet: str, key: str, instrument: bytes, block: BlockIdentifier = "latest"
) -> bool:
    call = _wallet(w3, wallet).functions.key_instrument_allowed(
        Web3.to_checksum_address(key), instrument
    )
    return bool(call.call(block_identifier=block))


def key_was_revoked(w3: Web3, wallet: str, key: str) -> bool:
    """Whether the wallet ever logged `KeyRevoked(key)`: what tells a revoked key (whose
    record the wallet erased) from an address that never was one."""
    logs = w3.eth.get_logs(
        {
            "address": Web3.to_checksum_address(wallet),
            "fromBlock": 0,
            "toBlock": "latest",
            "topics": [
                Web3.to_hex(KEY_REVOKED_TOPIC),
                "0x" + "00" * 12 + key.lower().removeprefix("0x"),
            ],
        }
    )
    return len(logs) > 0


def key_changes(w3: Web3, from_block: int, to_block: int) -> set[tuple[str, str]]:
    """`(wallet, key)` of every `KeyAuthorised` or `KeyRevoked` log in the block range, from
    any contract (checksummed addresses): whose key record may have changed there. A log
    names the contract that emitted it, so a contract can only speak for its own keys."""
    logs = w3.eth.get_logs(
        {
            "fromBlock": from_block,
            "toBlock": to_block,
            "topics": [[Web3.to_hex(KEY_REVOKED_TOPIC), Web3.to_hex(KEY_AUTHORISED_TOPIC)]],
        }
    )
    changes: set[tuple[str, str]] = set()
    for entry in logs:
        if len(entry["topics"]) < 2:  # the same signature without the indexed key
            continue
        key = Web3.to_checksum_address(bytes(entry["topics"][1])[-20:])
        changes.add((Web3.to_checksum_address(entry["address"]), key))
    return changes


def contract_accepts(
    w3: Web3, owner: str, digest: bytes, signature: bytes, block: BlockIdentifier = "latest"
) -> bool:
    """EIP-1271 on a contract owner, by `eth_call`: what the wallet's `staticcall` would
    answer at `block`. A revert (a Safe's GS0xx for too few or wrong owners) is a refusal."""
    contract = w3.eth.contract(address=Web3.to_checksum_address(owner), abi=EIP1271_ABI)
    try:
        result: bytes = contract.functions.isValidSignature(digest, signature).call(
            block_identifier=block
        )
    except _REFUSED:
        return False
    return bytes(result) == EIP1271_MAGIC


def is_safe_owner(w3: Web3, safe: str, address: str) -> bool:
    """`isOwner(address)` on a Safe; False for a contract that is not a Safe."""
    contract = w3.eth.contract(address=Web3.to_checksum_address(safe), abi=SAFE_OWNERS_ABI)
    try:
        return bool(contract.functions.isOwner(Web3.to_checksum_address(address)).call())
    except _REFUSED:
        return False


def is_valid_signature(w3: Web3, owner: str, digest: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``digest`` is valid for ``owner``: EIP-1271 when the owner
    is a contract (any length up to the wallet's limit), else ECDSA (65 bytes)."""
    address = Web3.to_checksum_address(owner)
    if is_contract(w3, address):
        if not 0 < len(signature) <= MAX_CONTRACT_SIGNATURE_LENGTH:
            return False
        return contract_accepts(w3, address, digest, signature)
    if len(signature) != ECDSA_SIGNATURE_LENGTH:
        return False
    try:
        return recover_digest_signer(digest, signature) == address
    except SignatureError:
        return False
