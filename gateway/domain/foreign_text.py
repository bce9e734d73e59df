"""Text from outside the gateway (a venue's error message, a status it reports) made fit to
store and show: PostgreSQL's `text` and `jsonb` refuse NUL, and a control character in a
reason only garbles a log line or a terminal. Each becomes a space; the length is bounded
so that a venue answering with a whole HTML page does not end up in every order row."""

from __future__ import annotations

# C0 controls and DEL, tab and newline included: a reason is one line
CONTROL_CHARACTERS = {code: " " for code in (*range(0x20), 0x7F)}
# what an API field that is stored as it was sent must match instead (pydantic `pattern`)
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"


def printable(text: str, limit: int = 500) -> str:
    """`text` without control characters, cut to `limit` characters (an ellipsis marks a
    cut)."""
    clean = text.translate(CONTROL_CHARACTERS)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"
