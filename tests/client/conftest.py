"""The client tests speak to the shared devnet gateway (`devnet`, in tests/conftest.py) only
as clients do: HTTP, the stream, the chain."""
