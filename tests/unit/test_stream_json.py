"""Stream messages are compact JSON text that parses back to what was sent, big integers too."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.api.stream import _send

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=15,
)


class Socket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(text)


@given(values)
def test_what_is_sent_parses_back_to_the_payload(payload: Any) -> None:
    socket = Socket()
    asyncio.run(_send(socket, {"type": "response", "value": payload}))  # type: ignore[arg-type]
    (text,) = socket.sent
    assert json.loads(text) == {"type": "response", "value": payload}
