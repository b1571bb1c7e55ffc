"""Reading a whole HTTP body, bounded.

``StreamReader.read(n)`` returns what is buffered *now* (up to ``n`` bytes), not the whole body:
a body that arrives in more than one piece would be cut short. Every body Gatekeeper reads
(requests, tool answers) goes through ``read_body`` instead.
"""

from __future__ import annotations

import aiohttp


async def read_body(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, or its first ``limit + 1`` bytes when it is longer than ``limit`` (so the
    caller can tell "too large" apart from "exactly at the limit")."""
    chunk = await stream.read(limit + 1)
    if not chunk or stream.at_eof():
        return chunk  # the usual case: everything was already buffered
    body = bytearray(chunk)
    while len(body) <= limit:
        chunk = await stream.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)
