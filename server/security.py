"""Cross-site protection and the security headers every response carries.

**Origin.** Every state-changing request (POST, PUT, PATCH, DELETE) and every WebSocket handshake
must come from one of the server's own pages: its `Origin` header must be the server's own origin
(the scheme it was reached with and the request's `Host`; with `cookie_secure`, which means TLS is
terminated by a proxy in front, also `https://` and that `Host`) or one listed in `allowed_origins`
(a proxy that rewrites `Host`). Anything else, `null` included, is refused with 403 `bad_origin`
before the handler runs. `SameSite=Strict` cookies do not cover this: another port or a sibling
subdomain of the same site is "same-site", so a page there rides the session cookie.

A request with no `Origin` at all is let through. Browsers always send `Origin` on WebSocket
handshakes and on POST, PUT, PATCH and DELETE from another origin (Fetch standard), so a request
without one is not a cross-site request a browser made on a member's behalf; it comes from a client
that holds its own session cookie (`babelcall join`, scripts, tests), whom an Origin check could
not stop anyway. The second line of defence holds without `Origin` too: bodies must be
`application/json`, which a cross-site page can only send after a CORS preflight this server never
grants.

**Content type.** A state-changing request with a body must send it as `application/json` (UTF-8),
and one without a body must not name a content type a cross-site form can send (`text/plain`,
`application/x-www-form-urlencoded`, `multipart/form-data`): anything else is 415
`unsupported_media_type` before the handler runs, so a `text/plain` form post cannot act, even an
empty one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from yarl import URL

from protocol.errors import ErrorCode
from server.errors import ApiError, Handler

if TYPE_CHECKING:
    from server.config import Config

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The content types a page of another site can send without a CORS preflight (an HTML form, or
# fetch in no-cors mode): refused even with an empty body, which still reaches the handler.
_FORM_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
SOCKET_PATHS = "/ws/"

_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# Sent only where the server speaks HTTPS (its own TLS, or a proxy's with cookie_secure).
_STRICT_TRANSPORT_SECURITY = "max-age=31536000"


def normalise_origin(text: str) -> str | None:
    """`scheme://host[:port]` in canonical form (lower case, default port dropped), or None if `text`
    is not an http(s) origin (`null`, a path, a bare host)."""
    try:
        url = URL(text.strip())
    except (TypeError, ValueError):
        return None
    if url.scheme not in {"http", "https"} or not url.host or url.raw_path not in {"", "/"}:
        return None
    if url.query_string or url.fragment or url.user is not None:
        return None
    origin = url.origin()
    port = "" if origin.is_default_port() else f":{origin.port}"
    host = f"[{origin.raw_host}]" if ":" in (origin.raw_host or "") else origin.raw_host
    return f"{origin.scheme}://{(host or '').lower()}{port}"


def _own_origins(request: web.Request, config: Config) -> set[str]:
    schemes = {request.scheme} | ({"https"} if config.cookie_secure else set())
    return {origin for scheme in schemes if (origin := normalise_origin(f"{scheme}://{request.host}"))}


def _needs_origin_check(request: web.Request) -> bool:
    return request.method in STATE_CHANGING or request.path.startswith(SOCKET_PATHS)


def _check_origin(request: web.Request, config: Config) -> None:
    sent = request.headers.get(hdrs.ORIGIN)
    if sent is None:
        return
    origin = normalise_origin(sent)
    allowed = _own_origins(request, config) | set(config.allowed_origins)
    if origin is None or origin not in allowed:
        raise ApiError(
            403,
            ErrorCode.BAD_ORIGIN,
            "this request came from another site's page (its Origin is not this server's); "
            "a server behind a proxy lists its public address in allowed_origins",
        )


def _check_content_type(request: web.Request) -> None:
    if request.method not in STATE_CHANGING:
        return
    form_type = hdrs.CONTENT_TYPE in request.headers and request.content_type in _FORM_TYPES
    if not request.body_exists and not form_type:
        return
    charset = (request.charset or "utf-8").lower()
    if request.content_type != "application/json" or charset not in {"utf-8", "utf8"}:
        raise ApiError(
            415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, "request bodies are JSON: Content-Type: application/json"
        )


def protection(config: Config) -> Middleware:
    """The middleware refusing cross-site and non-JSON state-changing requests (module docstring)."""

    @web.middleware
    async def protect(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _needs_origin_check(request):
            _check_origin(request, config)
        _check_content_type(request)
        return await handler(request)

    return protect


def header_setter(config: Config) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An `on_response_prepare` handler: it sees every response the application sends, aiohttp's own
    errors and WebSocket handshakes included, which a middleware would not."""
    https = config.tls_cert is not None or config.cookie_secure

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        # Room links are capabilities: never leak them to other sites through the Referer header.
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Content-Security-Policy", _CONTENT_SECURITY_POLICY)
        if https:
            headers.setdefault("Strict-Transport-Security", _STRICT_TRANSPORT_SECURITY)
        if response.status >= 400 or _private(request):
            headers["Cache-Control"] = "no-store"

    return add_headers


def _private(request: web.Request) -> bool:
    """Answers that depend on who asks, or reveal a member or a room: never cached."""
    return request.path.startswith(("/api/", "/ws/", "/metrics", "/setup"))
