"""HTTP and WebSocket API: translates requests to domain calls and back."""
