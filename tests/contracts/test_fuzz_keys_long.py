"""Trading keys and admin changes (fuzz_machines.py) at length: 60 examples of 40 steps."""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test

from tests.contracts.fuzz_machines import SLOW, KeysAndAdminMachine, fresh_world


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_trading_keys_and_admin_changes_fuzz_long() -> None:
    fresh_world()
    # fewer examples than the base machine: its rules are the base's plus four, and the two
    # long runs share CI's two cores with everything else
    run_state_machine_as_test(KeysAndAdminMachine, settings=SLOW.__class__(SLOW, max_examples=60))
