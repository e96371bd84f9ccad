"""The ICE servers a client uses for its peer connections, as `GET /api/ice` hands them out.

Each entry has the shape of the browser's `RTCIceServer` dictionary, so a web client passes the list
to `new RTCPeerConnection({iceServers})` as it is; the headless participant turns it into aiortc's
`RTCIceServer`. TURN entries carry a short-lived username and credential (server/turn.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class IceServerError(ValueError):
    """An `ice_servers` list that is not of the documented shape."""


@dataclass(frozen=True)
class IceServer:
    urls: tuple[str, ...]  # stun:, stuns:, turn: or turns: URLs sharing the credentials below
    username: str | None = None  # TURN only
    credential: str | None = None  # TURN only

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            entry["username"] = self.username
        if self.credential is not None:
            entry["credential"] = self.credential
        return entry

    @classmethod
    def from_dict(cls, data: Any) -> IceServer:
        if not isinstance(data, dict):
            raise IceServerError("an ICE server must be an object")
        urls = data.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not urls or not all(isinstance(url, str) for url in urls):
            raise IceServerError("an ICE server's urls must be a non-empty list of strings")
        username, credential = data.get("username"), data.get("credential")
        if not isinstance(username, str | None) or not isinstance(credential, str | None):
            raise IceServerError("an ICE server's username and credential must be strings")
        return cls(tuple(urls), username, credential)


def ice_servers_from_json(body: Any) -> list[IceServer]:
    """The servers in a `GET /api/ice` response body; IceServerError if it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("ice_servers"), list):
        raise IceServerError('expected {"ice_servers": [...]}')
    return [IceServer.from_dict(entry) for entry in body["ice_servers"]]
