"""The pipe between the server and a media worker: length-prefixed messages, each a JSON header and an
optional binary body (decoded audio travels as raw float32 samples, never as JSON).

    [header bytes: u32 big-endian][body bytes: u32 big-endian][header: UTF-8 JSON object][body]
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

_PREFIX = struct.Struct("!II")
# Generous bounds that still catch a corrupted stream before it allocates gigabytes: an SDP answer is a
# few kB and an audio body a fraction of a second of samples.
MAX_HEADER_BYTES = 1 << 20
MAX_BODY_BYTES = 1 << 24


class ChannelError(RuntimeError):
    """The other side wrote something that is not a message of this format."""


def encode_message(header: dict[str, Any], body: bytes = b"") -> bytes:
    data = json.dumps(header, separators=(",", ":")).encode()
    return _PREFIX.pack(len(data), len(body)) + data + body


async def read_message(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes] | None:
    """The next message, or None when the other side closed the pipe between messages."""
    try:
        prefix = await reader.readexactly(_PREFIX.size)
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise ChannelError("the pipe closed inside a message") from error
        return None
    header_size, body_size = _PREFIX.unpack(prefix)
    if header_size > MAX_HEADER_BYTES or body_size > MAX_BODY_BYTES:
        raise ChannelError(f"message too large ({header_size} + {body_size} bytes)")
    try:
        header = json.loads(await reader.readexactly(header_size))
        body = await reader.readexactly(body_size) if body_size else b""
    except asyncio.IncompleteReadError as error:
        raise ChannelError("the pipe closed inside a message") from error
    except ValueError as error:
        raise ChannelError(f"unreadable message header: {error}") from error
    if not isinstance(header, dict):
        raise ChannelError("a message header is a JSON object")
    return header, body
