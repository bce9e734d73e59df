"""Venue adapters: one per venue kind, all behind the `Venue` protocol, all returning
`gateway.domain` types (no venue format leaves its adapter)."""
