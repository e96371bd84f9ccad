"""The one way the server answers an HTTP request with an error: `{"error": {"code", "message"}}`.

Handlers raise `ApiError` (a `protocol.errors.ErrorCode`, an HTTP status, a message for people);
the `errors` middleware renders it with `error_response`, and turns aiohttp's own HTTP exceptions
(no such route, method not allowed, ...) and unhandled exceptions into the same shape, so every
error a handler or the router makes is JSON with a code. (A missing static file is the exception:
aiohttp's file response answers it with an empty 404.) Every response, errors included, gets the
security headers from `security.header_setter`.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus

from aiohttp import hdrs, web

from protocol.errors import ErrorCode

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An error answered to the client as `status` {"error": {"code": code, "message": message}}."""

    def __init__(
        self, status: int, code: ErrorCode, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(error: ApiError) -> web.Response:
    return web.json_response(
        {"error": {"code": error.code.value, "message": error.message}},
        status=error.status,
        headers=error.headers,
    )


# aiohttp's own HTTP errors, by status: the router's 404 and 405, a body over client_max_size, a
# WebSocket route asked for without an upgrade.
_AIOHTTP_CODES = {
    400: ErrorCode.BAD_MESSAGE,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}
# Headers of aiohttp's exceptions worth keeping (405 names the methods allowed).
_KEPT_HEADERS = (hdrs.ALLOW, hdrs.RETRY_AFTER)


def _from_aiohttp(exception: web.HTTPException) -> ApiError:
    status = exception.status
    if status >= 500:
        return ApiError(500, ErrorCode.INTERNAL_ERROR, "the server failed")
    code = _AIOHTTP_CODES.get(status, ErrorCode.BAD_MESSAGE)
    headers = {name: exception.headers[name] for name in _KEPT_HEADERS if name in exception.headers}
    return ApiError(status, code, HTTPStatus(status).phrase.lower(), headers=headers)


def _where(error: BaseException) -> str:
    """The innermost frame an exception came from: enough to find the bug, without its message (an
    exception's text can carry what a user sent)."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "unknown place"
    frame = frames[-1]
    return f"{frame.filename}:{frame.lineno} in {frame.name}"


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error)
    except web.HTTPException as exception:
        if exception.status < 400:
            raise  # redirects and the like are answers, not errors
        return error_response(_from_aiohttp(exception))
    except Exception as error:
        log.error(
            "%s %s failed: unhandled %s at %s",
            request.method,
            request.match_info.route.resource.canonical if request.match_info.route.resource else "?",
            type(error).__name__,
            _where(error),
        )
        return error_response(ApiError(500, ErrorCode.INTERNAL_ERROR, "the server failed"))
