"""The headless participant: joins a room like a browser does, speaks an audio file, reads captions.

It uses only the public interfaces (REST sign-in, WebSocket signalling, WebRTC), so what works for it
works for any client. `babelcall join` is its command line; tests and benchmarks call `join_room`.
"""

from participant.client import JoinError, JoinReport, join_room

__all__ = ["JoinError", "JoinReport", "join_room"]
