"""Error codes and WebSocket close codes: every error a client can see, named once.

REST errors are `{"error": {"code", "message"}}` with an HTTP status; signalling errors are
`{"type": "error", "code", "message"}` messages. Clients branch on the code, never on the message,
which is for people and may change.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    # Bad input (REST 400; signalling errors that leave the session open)
    BAD_JSON = "bad_json"  # not JSON, or JSON too deep or with numbers too long to be honest input
    BAD_MESSAGE = "bad_message"  # JSON, but not a message of this protocol
    MISSING_FIELD = "missing_field"
    BAD_FIELD = "bad_field"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # REST bodies are application/json only
    UNKNOWN_LANGUAGE = "unknown_language"
    UNKNOWN_TYPE = "unknown_type"
    CHAT_BUSY = "chat_busy"  # three of this participant's chat messages are still being translated
    # Who is asking (REST 401/403; WebSocket handshake 401/403)
    NOT_SIGNED_IN = "not_signed_in"
    BAD_CREDENTIALS = "bad_credentials"
    NOT_APPROVED = "not_approved"
    NOT_ADMIN = "not_admin"
    NOT_HOST = "not_host"
    NOT_AUTHORISED = "not_authorised"  # /metrics without its token
    BAD_ORIGIN = "bad_origin"  # a state-changing request or WebSocket handshake from another site
    BAD_SETUP_TOKEN = "bad_setup_token"
    TOO_MANY_ATTEMPTS = "too_many_attempts"  # REST 429, with Retry-After
    # What was asked for is not there (REST 404/405/409)
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NO_ROOM = "no_room"
    NO_MEMBER = "no_member"
    NO_PARTICIPANT = "no_participant"
    EMAIL_TAKEN = "email_taken"
    # Consultation records (docs/protocol.md, sections 1 and 2)
    NO_RECORD = "no_record"  # REST 404: no such record; signalling: no record is running in this call
    NO_CALL = "no_call"  # REST 409: a record starts in a live call, and nobody is in this one
    RECORD_RUNNING = "record_running"  # REST 409: this call's record is already running
    NOT_PARTICIPANT = "not_participant"  # REST 403: a record is read by its participants and administrators
    # Signalling
    NOT_JOINED = "not_joined"
    ALREADY_JOINED = "already_joined"
    UNKNOWN_PARTICIPANT = "unknown_participant"
    ROOM_FULL = "room_full"
    BAD_SDP = "bad_sdp"
    NEGOTIATION_FAILED = "negotiation_failed"
    MEDIA_UNAVAILABLE = "media_unavailable"  # the room's media process did not answer: try again
    MEDIA_LOST = "media_lost"  # unprompted: the media process carrying this participant failed
    # Unprompted, each followed by closing the socket with its CloseCode
    REPLACED = "replaced"
    MEMBERSHIP_ENDED = "membership_ended"
    REMOVED = "removed"
    CALL_ENDED = "call_ended"
    SERVER_RESTARTING = "server_restarting"
    # The server's own failure (REST 500): never carries exception text
    INTERNAL_ERROR = "internal_error"
    SERVER_BUSY = "server_busy"  # REST 503, with Retry-After: too many sign-ins waiting for their check


class ProtocolError(ValueError):
    """Something a client sent or asked for that the server answers with an error `code`; the
    message is for people and never carries what the client sent."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CloseCode(IntEnum):
    """WebSocket close codes the server uses. Clients reconnect only after SERVER_RESTARTING and
    after a connection that dropped without a close code of this list (1006)."""

    LEFT = 1000  # the client asked to leave
    SERVER_RESTARTING = 1012  # RFC 6455's "service restart": join again when the server is back
    REPLACED = 4001  # the same member joined from another connection
    MEMBERSHIP_ENDED = 4003
    REMOVED = 4004  # the host or an administrator removed this participant
    CALL_ENDED = 4005  # the host or an administrator ended the call for everyone
