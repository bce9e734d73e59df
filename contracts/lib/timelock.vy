# pragma version ~=0.4.3
"""
@title Timelock for admin powers
@notice Every admin power that can move value, change a payout or block an exit is queued
        first and applies only after `DELAY` seconds (set at deploy: short on the devnet, days
        on a real network), so that an owner who disagrees can withdraw free collateral or
        see its positions through expiry before the change. Queuing, applying and cancelling
        are events. A change is identified by its action and its ABI-encoded arguments.
"""

from snekmate.auth import ownable

uses: ownable

MAX_CHANGE_DATA: constant(uint256) = 160

DELAY: public(immutable(uint256))
# change id -> the time from which it may apply (0: not queued)
change_eta: public(HashMap[bytes32, uint256])


event ChangeQueued:
    id: indexed(bytes32)
    action: indexed(bytes32)
    data: Bytes[MAX_CHANGE_DATA]
    eta: uint256

event ChangeApplied:
    id: indexed(bytes32)
    action: indexed(bytes32)
    data: Bytes[MAX_CHANGE_DATA]

event ChangeCancelled:
    id: indexed(bytes32)


@deploy
def __init__(delay: uint256):
    DELAY = delay


@internal
@pure
def _change_id(action: bytes32, data: Bytes[MAX_CHANGE_DATA]) -> bytes32:
    return keccak256(concat(action, data))


@internal
def _queue(action: bytes32, data: Bytes[MAX_CHANGE_DATA]) -> bytes32:
    ownable._check_owner()
    id: bytes32 = self._change_id(action, data)
    assert self.change_eta[id] == 0, "timelock: already queued"
    eta: uint256 = block.timestamp + DELAY
    self.change_eta[id] = eta
    log ChangeQueued(id=id, action=action, data=data, eta=eta)
    return id


@internal
def _apply(action: bytes32, data: Bytes[MAX_CHANGE_DATA]):
    ownable._check_owner()
    id: bytes32 = self._change_id(action, data)
    eta: uint256 = self.change_eta[id]
    assert eta != 0, "timelock: not queued"
    assert block.timestamp >= eta, "timelock: delay not over"
    self.change_eta[id] = 0
    log ChangeApplied(id=id, action=action, data=data)


@external
def cancel_change(id: bytes32):
    """
    @notice Cancels a queued change. Owner only.
    @param id The change id (from its ChangeQueued event).
    """
    ownable._check_owner()
    assert self.change_eta[id] != 0, "timelock: not queued"
    self.change_eta[id] = 0
    log ChangeCancelled(id=id)
