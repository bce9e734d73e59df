"""The wallets + settlement machine (fuzz_machines.py) at length: 100 examples of 40 steps."""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test

from tests.contracts.fuzz_machines import SLOW, Machine, fresh_world


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~450 s beside the rest of the suite on 2 cores
def test_wallets_and_settlement_fuzz_long() -> None:
    fresh_world()
    run_state_machine_as_test(Machine, settings=SLOW)
