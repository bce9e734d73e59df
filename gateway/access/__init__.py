"""Who the caller is and what it may do: operator token, SIWE sessions, API keys (HMAC),
trading keys, roles, the policy table, rate limits and replay memory. Shared by every entry
point (HTTP, stream, FIX)."""
