"""Simulated exchanges on loopback that speak real wire formats (Binance spot REST, Deribit
JSON-RPC over HTTP), so that unmodified ccxt classes trade against a seeded market maker."""
