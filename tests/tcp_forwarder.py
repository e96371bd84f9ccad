"""A TCP forwarder, as a hospital's web proxy: `python tcp_forwarder.py LISTEN_HOST LISTEN_PORT TARGET_HOST
TARGET_PORT`. Prints "forwarding" once it listens. The relay tests run it between networks that
have no route to each other, so signalling (HTTP and WebSocket) passes while media cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65_536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def main(listen_host: str, listen_port: int, target_host: str, target_port: int) -> None:
    async def forward(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            target_reader, target_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, target_writer), _pipe(target_reader, client_writer))

    server = await asyncio.start_server(forward, listen_host, listen_port)
    print("forwarding", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    listen_host, listen_port, target_host, target_port = sys.argv[1:5]
    asyncio.run(main(listen_host, int(listen_port), target_host, int(target_port)))
