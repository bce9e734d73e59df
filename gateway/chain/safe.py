"""The published Safe 1.4.1 contracts (``@safe-global/safe-contracts``) on the devnet.

A trader or a protocol may hold funds in a Safe rather than an EOA; the gateway then has to
(a) deploy the same audited singleton, proxy factory and fallback handler the real networks
run, so what passes here passes there, (b) verify orders signed *by a Safe* (EIP-1271, through
the ``CompatibilityFallbackHandler``), and (c) move a Safe's funds with its owners' signatures.

Hashes are computed offline in pure Python (``eth_abi`` + keccak) so a client can sign without
an RPC node; the tests pin them to what the contracts compute on chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from eth_abi import encode
from eth_keys import keys
from eth_keys.constants import SECPK1_N
from eth_typing import ChecksumAddress, HexStr
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.types import TxReceipt

from gateway.chain.artifacts import safe_artifact
from gateway.chain.transactions import Sender, TransactionError, bind, event_logs

ZERO_ADDRESS: Final = Web3.to_checksum_address("0x" + "00" * 20)

# keccak256("EIP712Domain(uint256 chainId,address verifyingContract)"): Safe >= 1.3.0 has no
# name/version in its domain, so the separator depends on the chain and the Safe address only.
DOMAIN_SEPARATOR_TYPEHASH: Final = keccak(
    text="EIP712Domain(uint256 chainId,address verifyingContract)"
)
# keccak256("SafeMessage(bytes message)"), CompatibilityFallbackHandler.SAFE_MSG_TYPEHASH
SAFE_MSG_TYPEHASH: Final = keccak(text="SafeMessage(bytes message)")
# bytes4(keccak256("isValidSignature(bytes32,bytes)")): EIP-1271's success value
EIP1271_MAGIC_VALUE: Final = bytes.fromhex("1626ba7e")

SIGNATURE_LENGTH: Final = 65  # r (32) || s (32) || v (1), per owner

# The Safe reverts with bare codes; the ones a caller of this module can run into.
SAFE_ERRORS: Final[Mapping[str, str]] = {
    "GS001": "threshold is not set (not a set-up Safe)",
    "GS013": "the Safe's inner call failed",
    "GS020": "fewer signatures than the threshold",
    "GS025": "hash not approved by the owner",
    "GS026": "a signer is not an owner, or signatures are not sorted by owner",
    "GS200": "the Safe is already set up",
    "GS202": "threshold exceeds the number of owners",
    "GS203": "duplicate or invalid owner",
    "GS204": "duplicate owner",
}

PrivateKey = bytes | str


class SafeError(RuntimeError):
    """A Safe call was rejected: bad signatures, threshold not met, or the inner call failed."""

    def __init__(self, message: str, receipt: TxReceipt | None = None) -> None:
        super().__init__(message)
        self.receipt = receipt


@dataclass(frozen=True, slots=True)
class SafeInfrastructure:
    """The three contracts every Safe on a chain shares; a Safe is a proxy that points at the
    singleton and was set up with the fallback handler (which gives it EIP-1271)."""

    singleton: ChecksumAddress
    proxy_factory: ChecksumAddress
    fallback_handler: ChecksumAddress

    def to_dict(self) -> dict[str, str]:
        return {key: str(value) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SafeInfrastructure:
        return cls(
            singleton=Web3.to_checksum_address(data["singleton"]),
            proxy_factory=Web3.to_checksum_address(data["proxy_factory"]),
            fallback_handler=Web3.to_checksum_address(data["fallback_handler"]),
        )


# ---------------------------------------------------------------------------
# Contracts
# ---------------------------------------------------------------------------


def safe_contract(w3: Web3, address: str) -> Contract:
    """A Safe (proxy) bound to the singleton's ABI."""
    return bind(w3, safe_artifact("Safe"), address)


def handler_contract(w3: Web3, address: str) -> Contract:
    """The ``CompatibilityFallbackHandler`` ABI at ``address``: bound to a *Safe*'s address,
    calls go through the Safe's fallback to its handler (``isValidSignature``…)."""
    return bind(w3, safe_artifact("CompatibilityFallbackHandler"), address)


def proxy_factory_contract(w3: Web3, address: str) -> Contract:
    return bind(w3, safe_artifact("SafeProxyFactory"), address)


def deploy_safe_infrastructure(sender: Sender) -> SafeInfrastructure:
    """Deploy the singleton, the proxy factory and the fallback handler (none takes
    constructor arguments; the singleton locks itself with threshold 1 so it is unusable)."""
    singleton = sender.deploy(safe_artifact("Safe"))
    factory = sender.deploy(safe_artifact("SafeProxyFactory"))
    handler = sender.deploy(safe_artifact("CompatibilityFallbackHandler"))
    return SafeInfrastructure(
        singleton=singleton.address,
        proxy_factory=factory.address,
        fallback_handler=handler.address,
    )


def _check_owners(owners: Sequence[str], threshold: int) -> list[ChecksumAddress]:
    addresses = [Web3.to_checksum_address(owner) for owner in owners]
    if not addresses:
        raise ValueError("a Safe needs at least one owner")
    if len(set(addresses)) != len(addresses):
        raise ValueError("duplicate owner")
    if ZERO_ADDRESS in addresses:
        raise ValueError("the zero address cannot own a Safe")
    if not 1 <= threshold <= len(addresses):
        raise ValueError(f"threshold {threshold} not in 1..{len(addresses)}")
    return addresses


def create_safe(
    sender: Sender,
    infra: SafeInfrastructure,
    owners: Sequence[str],
    threshold: int,
    salt_nonce: int = 0,
) -> ChecksumAddress:
    """Create and set up a Safe proxy through the factory (CREATE2 on the initializer and
    ``salt_nonce``: the same owners, threshold and nonce give the same address again, so a
    second call with them reverts). Returns the proxy address from ``ProxyCreation``."""
    addresses = _check_owners(owners, threshold)
    w3 = sender.w3
    initializer = safe_contract(w3, infra.singleton).encode_abi(
        "setup",
        args=[
            addresses,
            threshold,
            ZERO_ADDRESS,  # to: no delegatecall during setup
            b"",
            infra.fallback_handler,
            ZERO_ADDRESS,  # paymentToken
            0,  # payment
            ZERO_ADDRESS,  # paymentReceiver
        ],
    )
    factory = proxy_factory_contract(w3, infra.proxy_factory)
    receipt = sender.transact(
        factory.functions.createProxyWithNonce(
            infra.singleton, Web3.to_bytes(hexstr=initializer), salt_nonce
        )
    )
    created = event_logs(factory, "ProxyCreation", receipt)
    if len(created) != 1:
        raise SafeError("createProxyWithNonce emitted no ProxyCreation", receipt)
    return Web3.to_checksum_address(created[0]["args"]["proxy"])


# ---------------------------------------------------------------------------
# Messages (EIP-1271) and signatures, offline
# ---------------------------------------------------------------------------


def safe_domain_separator(chain_id: int, safe: str) -> bytes:
    """``Safe.domainSeparator()``: EIP-712 domain of chain id and Safe address only."""
    return keccak(
        encode(
            ["bytes32", "uint256", "address"],
            [DOMAIN_SEPARATOR_TYPEHASH, chain_id, Web3.to_checksum_address(safe)],
        )
    )


def safe_message_hash(chain_id: int, safe: str, message_digest: bytes) -> bytes:
    """The hash the owners sign so that the Safe accepts ``message_digest`` through EIP-1271
    ``isValidSignature(bytes32 dataHash, bytes signature)``.

    The handler wraps the digest as the message ``abi.encode(dataHash)`` and hashes it as an
    EIP-712 ``SafeMessage(bytes message)`` in the Safe's domain (so a signature is bound to one
    Safe on one chain): ``CompatibilityFallbackHandler.getMessageHashForSafe(safe,
    abi.encode(dataHash))``."""
    if len(message_digest) != 32:
        raise ValueError(f"message digest must be 32 bytes, got {len(message_digest)}")
    message = encode(["bytes32"], [message_digest])  # abi.encode(dataHash) == dataHash
    struct_hash = keccak(encode(["bytes32", "bytes32"], [SAFE_MSG_TYPEHASH, keccak(message)]))
    return keccak(b"\x19\x01" + safe_domain_separator(chain_id, safe) + struct_hash)


def _key_bytes(key: PrivateKey) -> bytes:
    if isinstance(key, str):
        return Web3.to_bytes(hexstr=HexStr(key))
    return bytes(key)


def sign_safe_message(private_keys: Sequence[PrivateKey], safe_message_hash: bytes) -> bytes:
    """Owners' signatures over ``safe_message_hash`` in the layout ``Safe.checkSignatures``
    accepts: each owner signs the hash itself (no ``eth_sign`` prefix; ``v`` in {27, 28},
    low ``s``), 65 bytes each, ordered by owner address ascending (the Safe rejects an
    unsorted or repeated signer, which is how it counts distinct owners)."""
    if len(safe_message_hash) != 32:
        raise ValueError(f"hash must be 32 bytes, got {len(safe_message_hash)}")
    signed: dict[int, bytes] = {}
    for key in private_keys:
        private = keys.PrivateKey(_key_bytes(key))
        owner = int.from_bytes(private.public_key.to_canonical_address(), "big")
        if owner in signed:
            raise ValueError(f"two keys for owner {private.public_key.to_checksum_address()}")
        sig = private.sign_msg_hash(safe_message_hash)
        r, s, v = sig.r, sig.s, sig.v
        if s > SECPK1_N // 2:  # the backends already normalize; keep the rule explicit
            s, v = SECPK1_N - s, v ^ 1
        signed[owner] = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v + 27])
    return b"".join(signed[owner] for owner in sorted(signed))


def is_valid_signature(w3: Web3, safe: str, message_digest: bytes, signature: bytes) -> bool:
    """EIP-1271 on the Safe: does it accept ``signature`` for ``message_digest`` now?

    A read-only ``eth_call``; a rejected signature reverts inside the Safe (GS0xx), which is
    reported as ``False`` like any non-magic return value."""
    fn = handler_contract(w3, safe).get_function_by_signature("isValidSignature(bytes32,bytes)")
    try:
        result = fn(message_digest, signature).call()
    except ContractLogicError:
        return False
    return bytes(result) == EIP1271_MAGIC_VALUE


# ---------------------------------------------------------------------------
# Transactions
# ---------------------------------------------------------------------------


def _revert_reason(exc: Exception) -> str:
    text = str(exc)
    for code, meaning in SAFE_ERRORS.items():
        if code in text:
            return f"{code}: {meaning}"
    return text


def exec_safe_transaction(
    submitter: Sender,
    safe: str,
    to: str,
    data: bytes,
    owner_keys: Sequence[PrivateKey],
    value: int = 0,
) -> TxReceipt:
    """Have the Safe ``CALL`` ``to`` with ``data`` and ``value``, authorized by ``owner_keys``.

    The SafeTx hash comes from the Safe's own ``getTransactionHash`` at its current ``nonce``
    (no gas refund: safeTxGas, baseGas, gasPrice 0), so the hash can never disagree with what
    ``execTransaction`` checks. ``submitter`` only pays gas; it need not be an owner. With
    safeTxGas and gasPrice 0 a failing inner call reverts the whole transaction (GS013)."""
    w3 = submitter.w3
    contract = safe_contract(w3, safe)
    target = Web3.to_checksum_address(to)
    nonce: int = contract.functions.nonce().call()
    tx_hash: bytes = contract.functions.getTransactionHash(
        target, value, data, 0, 0, 0, 0, ZERO_ADDRESS, ZERO_ADDRESS, nonce
    ).call()
    signatures = sign_safe_message(owner_keys, tx_hash)
    fn = contract.functions.execTransaction(
        target, value, data, 0, 0, 0, 0, ZERO_ADDRESS, ZERO_ADDRESS, signatures
    )
    try:
        receipt = submitter.transact(fn)
    except ContractLogicError as exc:  # rejected when estimating gas: nothing was sent
        raise SafeError(
            f"Safe {contract.address} rejected the call: {_revert_reason(exc)}"
        ) from exc
    except TransactionError as exc:
        raise SafeError(
            f"Safe {contract.address} reverted: {_revert_reason(exc)}", exc.receipt
        ) from exc
    if event_logs(contract, "ExecutionFailure", receipt) or not event_logs(
        contract, "ExecutionSuccess", receipt
    ):
        raise SafeError(f"Safe {contract.address} reported ExecutionFailure", receipt)
    return receipt
