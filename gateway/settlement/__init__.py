"""Settlement: EIP-712 encoding (``eip712``), batch building, sending, reconciliation, audit."""
