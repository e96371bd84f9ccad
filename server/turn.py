"""Short-lived TURN credentials in coturn's shared-secret scheme (its "TURN REST API").

The server and the TURN server share one secret (`turn_secret`; coturn's `static-auth-secret` with
`use-auth-secret`). A credential is valid for the username `<expiry unix time>:<member id>`, and the
password is base64(HMAC-SHA1(secret, username)): coturn recomputes it from the username alone and
refuses it once the expiry has passed, so no static password ever reaches a browser, and nothing is
stored. The member id in the username lets an operator match relay use in coturn's log to an account
without putting a name or email there.

The server's own media workers get no credentials: the server has an address the TURN server can
reach (a public one, or one on the TURN server's network), so a client's relayed candidate pairs
with the server's host candidate, and the relay only ever carries the client's side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from protocol import IceServer
from server.config import Config


def turn_username(member_id: str, expires_at: int) -> str:
    return f"{expires_at}:{member_id}"


def turn_password(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def ice_servers_for(config: Config, member_id: str, now: float | None = None) -> list[IceServer]:
    """The STUN servers, then the TURN servers with credentials for `member_id` that expire
    `turn_credential_ttl_s` from `now` (default: the current time)."""
    servers = [IceServer(config.ice_servers)] if config.ice_servers else []
    if config.turn_urls:
        issued_at = time.time() if now is None else now
        username = turn_username(member_id, int(issued_at) + config.turn_credential_ttl_s)
        servers.append(IceServer(config.turn_urls, username, turn_password(config.turn_secret, username)))
    return servers
