"""Stateful fuzzing of wallets + settlement, short runs of both machines (fuzz_machines.py)."""

from __future__ import annotations

from hypothesis.stateful import run_state_machine_as_test

from tests.contracts.fuzz_machines import (
    FAST,
    OUTCOMES,
    KeysAndAdminMachine,
    Machine,
    fresh_world,
)


def test_wallets_and_settlement_fuzz() -> None:
    """Both machines, short runs; together they must have exercised both outcomes of every
    kind of batch (a single short run may, by its draws, miss one)."""
    fresh_world()
    OUTCOMES.clear()
    run_state_machine_as_test(Machine, settings=FAST)
    fresh_world()
    run_state_machine_as_test(KeysAndAdminMachine, settings=FAST)
    for key in [
        (False, False, True),
        (False, False, False),
        (False, True, True),
        (False, True, False),
        (True, True, True),
        (True, True, False),
    ]:
        assert OUTCOMES[key] > 0, (key, OUTCOMES)
    assert OUTCOMES["expired"] > 0, OUTCOMES
    # key-signed sales both settled and were refused (out of scope, over limit, revoked)
    assert OUTCOMES[("key", True)] > 0 and OUTCOMES[("key", False)] > 0, OUTCOMES
    assert OUTCOMES["feed applied"] > 0, OUTCOMES
