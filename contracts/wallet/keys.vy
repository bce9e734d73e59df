# pragma version ~=0.4.3
"""
@title MarginWallet signatures and trading keys
@notice Who may sign for the wallet: its owner (an EOA, or a contract such as a Safe through
        EIP-1271) and the trading keys the owner authorises. A trading key signs orders and
        strategies within its scope (expiry, instruments, max notional per order); it never
        calls the wallet except to cancel a single digest, so it can never withdraw, change
        limits or the settlement, add keys, or cancel below a nonce.
"""

from snekmate.utils import ecdsa

from .. lib import orders
from . import core

uses: core

MAX_CONTRACT_SIG: constant(uint256) = 520  # 8 owners' 65-byte signatures (Safe)


interface IContractSignatureSource:
    def contract_signature() -> Bytes[MAX_CONTRACT_SIG]: view

MAX_KEY_INSTRUMENTS: constant(uint256) = 16
ERC1271_MAGIC: constant(bytes4) = 0x1626ba7e

# a key's record, packed in one slot (one cold read on a key-signed apply):
#   bits   0..63   expiry (unix seconds; 0: not a key)
#   bit       64   may trade every instrument (else: key_instrument_allowed)
#   bits  65..192  max notional per order in quote units (NO_KEY_LIMIT: none)
KEY_EXPIRY_MASK: constant(uint256) = (1 << 64) - 1
KEY_ALL_BIT: constant(uint256) = 1 << 64
KEY_LIMIT_SHIFT: constant(uint256) = 65
NO_KEY_LIMIT: constant(uint256) = (1 << 128) - 1

_keys: HashMap[address, uint256]
key_instrument_allowed: public(HashMap[address, HashMap[bytes32, bool]])


event KeyAuthorised:
    key: indexed(address)
    expiry: uint64
    all_instruments: bool
    max_notional: uint256

event KeyRevoked:
    key: indexed(address)

event KeyInstrumentAllowed:
    key: indexed(address)
    instrument: indexed(bytes32)
    allowed: bool


@external
def authorise_key(key: address, expiry: uint64, all_instruments: bool, max_notional: uint256, instruments: DynArray[bytes32, MAX_KEY_INSTRUMENTS]):
    """
    @notice Authorises (or re-scopes) a trading key. Owner only. The key signs orders and
            strategies for this wallet until `expiry`, only on `instruments` unless
            `all_instruments`, each of at most `max_notional` quote units.
    @param key The key's address (an EOA).
    @param expiry Unix seconds after which the key's signatures are refused.
    @param all_instruments Whether the key may trade every instrument.
    @param max_notional Maximum notional per order or strategy in quote units (2**128 - 1: none).
    @param instruments Instruments the key may trade (added to its allow-list).
    """
    core._only_owner()
    assert key != empty(address) and key != core._owner(), "wallet: bad key"
    assert convert(expiry, uint256) > block.timestamp, "wallet: key expiry in the past"
    assert max_notional <= NO_KEY_LIMIT, "wallet: key limit too large"
    record: uint256 = convert(expiry, uint256) | (max_notional << KEY_LIMIT_SHIFT)
    if all_instruments:
        record |= KEY_ALL_BIT
    self._keys[key] = record
    for ins: bytes32 in instruments:
        self.key_instrument_allowed[key][ins] = True
        log KeyInstrumentAllowed(key=key, instrument=ins, allowed=True)
    log KeyAuthorised(key=key, expiry=expiry, all_instruments=all_instruments, max_notional=max_notional)


@external
def set_key_instrument(key: address, instrument: bytes32, allowed: bool):
    """
    @notice Adds an instrument to a key's allow-list or removes it. Owner only.
    @param key The trading key.
    @param instrument The instrument id.
    @param allowed Whether the key may trade it.
    """
    core._only_owner()
    self.key_instrument_allowed[key][instrument] = allowed
    log KeyInstrumentAllowed(key=key, instrument=instrument, allowed=allowed)


@external
def revoke_key(key: address):
    """
    @notice Revokes a trading key at once: none of its signatures settles from now on,
            including orders it signed before. Owner only.
    @param key The trading key.
    """
    core._only_owner()
    self._keys[key] = 0
    log KeyRevoked(key=key)


@external
@view
def trading_key(key: address) -> (uint64, bool, uint256, bool):
    """
    @notice A trading key's scope.
    @param key The key.
    @return (expiry, all_instruments, max_notional, active now)
    """
    record: uint256 = self._keys[key]
    expiry: uint256 = record & KEY_EXPIRY_MASK
    return convert(expiry, uint64), record & KEY_ALL_BIT != 0, record >> KEY_LIMIT_SHIFT, expiry >= block.timestamp and expiry != 0


@internal
@view
def _is_active_key(key: address) -> bool:
    record: uint256 = self._keys[key]
    return record & KEY_EXPIRY_MASK >= block.timestamp and record != 0


@internal
@view
def _signer(digest: bytes32, sig: orders.Signature) -> (address, uint256):
    """
    @dev Who signed `digest`: returns (signer, 0) for the owner and (key, its record) for an
         active trading key; reverts otherwise. An EOA's signature (owner or key) is (v, r, s)
         with low s. v = 0 marks a contract owner's signature (any length, e.g. a Safe's
         concatenated owner signatures): the caller, the wallet's own Settlement, holds it for
         the current item (`contract_signature()`), and the owner checks it through EIP-1271.
         Asking back keeps the bytes out of every apply's arguments: EOA-signed legs, nearly
         all of them, pay nothing for the contract path.
    """
    owner: address = core._owner()
    if sig.v == 0:
        assert core._owner_is_contract(), "wallet: bad signature"
        contract_sig: Bytes[MAX_CONTRACT_SIG] = staticcall IContractSignatureSource(msg.sender).contract_signature()
        ok: bool = False
        ret: Bytes[32] = b""
        ok, ret = raw_call(owner, abi_encode(digest, contract_sig, method_id=method_id("isValidSignature(bytes32,bytes)")), max_outsize=32, is_static_call=True, revert_on_failure=False)
        assert ok and len(ret) == 32 and convert(slice(ret, 0, 4), bytes4) == ERC1271_MAGIC, "wallet: bad signature"
        return owner, 0
    assert sig.v == 27 or sig.v == 28, "wallet: bad signature v"
    # rejects s > n/2 (EIP-2) and a zero recovery
    signer: address = ecdsa._try_recover_vrs(digest, convert(sig.v, uint256), convert(sig.r, uint256), convert(sig.s, uint256))
    if signer == owner:
        return owner, 0
    record: uint256 = self._keys[signer]
    assert record != 0 and signer != empty(address), "wallet: bad signature"
    assert record & KEY_EXPIRY_MASK >= block.timestamp, "wallet: key expired"
    return signer, record


@internal
@view
def _check_key_instrument(key: address, record: uint256, instrument: bytes32):
    if record & KEY_ALL_BIT == 0:
        assert self.key_instrument_allowed[key][instrument], "wallet: key scope"


@internal
@pure
def _check_key_notional(record: uint256, notional: uint256):
    limit: uint256 = record >> KEY_LIMIT_SHIFT
    if limit != NO_KEY_LIMIT:
        assert notional <= limit, "wallet: key max notional"
