"""Chain adapters (web3.py; no ape needed at runtime).

- ``anvil``: a local anvil node as a managed subprocess (free port, readiness polling, stop).
- ``artifacts``: project Vyper contracts compiled with the installed vyper, cached in
  ``.build/vyper/``; the published Uniswap v2 builds from ``node_modules``.
- ``transactions``: ``connect`` and ``Sender`` (local signing, nonce tracking, receipts).
- ``tokens``, ``uniswap``: devnet ERC-20s; Uniswap v2 factory/router/pair helpers.
- ``deploy``: ``deploy_all`` → ``Deployment`` (every address), wallets, option listing.
- ``settlement_abi``: ABI tuples for ``Settlement.settle(Batch)``.
- ``signatures``: owner signature check as the wallet does it (ecrecover or EIP-1271).
"""
