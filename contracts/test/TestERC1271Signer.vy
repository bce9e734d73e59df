# pragma version ~=0.4.3
"""
@title TestERC1271Signer
@notice A contract account (EIP-1271) that accepts a digest if its `signer` EOA signed it
        (65-byte r || s || v, low s), or if the digest was pre-approved. It can own a
        MarginWallet and deposit into it. Tests only.
"""

from snekmate.utils import ecdsa
from ethereum.ercs import IERC20

MAGIC: constant(bytes4) = 0x1626ba7e

signer: public(address)
approved: public(HashMap[bytes32, bool])

event DigestApproved:
    digest: indexed(bytes32)


@deploy
def __init__(signer_: address):
    """
    @notice Creates the account controlled by `signer_`.
    @param signer_ The EOA whose ECDSA signatures this account accepts.
    """
    self.signer = signer_


@external
def approve_digest(digest: bytes32):
    """
    @notice Pre-approves a digest (any signature is then accepted for it).
    @param digest The EIP-712 digest.
    """
    assert msg.sender == self.signer, "not signer"
    self.approved[digest] = True
    log DigestApproved(digest=digest)


@external
@view
def isValidSignature(digest: bytes32, signature: Bytes[65]) -> bytes4:
    """
    @notice EIP-1271 check.
    @param digest The signed digest.
    @param signature The signature.
    @return bytes4 The magic value 0x1626ba7e when valid, else 0xffffffff.
    """
    if self.approved[digest]:
        return MAGIC
    if len(signature) == 65 and ecdsa._recover_sig(digest, signature) == self.signer:
        return MAGIC
    return 0xffffffff


@external
def call(target: address, data: Bytes[1024]) -> Bytes[256]:
    """
    @notice Lets the signer act as this account (owner calls on its wallet, approvals).
    @param target The contract to call.
    @param data The calldata.
    @return Bytes The return data.
    """
    assert msg.sender == self.signer, "not signer"
    return raw_call(target, data, max_outsize=256)
