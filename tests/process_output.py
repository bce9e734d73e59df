"""Wait for a child process to print a marker, without polling and without losing output.

Reads the pipe's file descriptor directly: `select` followed by a buffered `readline` can
pull the marker line into Python's buffer while `select` then waits on an empty pipe.
"""

from __future__ import annotations

import os
import selectors
import time
from typing import IO


def wait_for_marker(stream: IO[bytes], marker: bytes, timeout: float) -> bytes:
    """Everything the process printed up to and including `marker`.

    Raises TimeoutError (with the output so far) after `timeout` seconds, RuntimeError if the
    process closes the pipe first.
    """
    descriptor = stream.fileno()
    selector = selectors.DefaultSelector()
    selector.register(descriptor, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen = b""
    try:
        while marker not in seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError(seen.decode(errors="replace")[-4000:])
            chunk = os.read(descriptor, 65536)
            if not chunk:
                raise RuntimeError(seen.decode(errors="replace")[-4000:])
            seen += chunk
    finally:
        selector.close()
    return seen
