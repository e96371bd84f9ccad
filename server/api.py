"""REST endpoints: setting up the server, applying for membership, signing in, administration, rooms.

Every endpoint that reveals a member or a room checks who is asking (`AppContext.require_*`).
Errors are JSON, {"error": {"code": ..., "message": ...}}, raised as `server.errors.ApiError`.
Bodies are JSON objects read by `protocol.wire.parse_json_object` (bounded in size, depth and number
length); text people type goes through `protocol.text.clean_text`.
"""

from __future__ import annotations

import hmac
import logging
import math
import re
from typing import Any

from aiohttp import web

from protocol import LANGUAGES, PROTOCOL_VERSION, Glossary, GlossaryError, UnknownLanguageError
from protocol.errors import ErrorCode
from protocol.text import TextError, clean_text
from protocol.wire import WireError, parse_json_object
from server.context import MEMBER_KEY, AppContext
from server.errors import ApiError, Handler
from server.passwords import HashingBusy
from server.store import EmailTakenError, Member, MemberStatus, RoomKind
from server.turn import ice_servers_for

log = logging.getLogger(__name__)

SESSION_COOKIE = "babelcall_session"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_CHARS = 10
# Far above any passphrase; argon2 reads every byte of what it is given.
MAX_PASSWORD_CHARS = 1_024
MAX_NAME_CHARS = 80
MAX_EMAIL_CHARS = 254
MAX_TEXT_CHARS = 200  # organisations, room titles

routes = web.RouteTableDef()


def bad_request(code: ErrorCode, message: str) -> ApiError:
    return ApiError(400, code, message)


async def _body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (its content type was checked by `security.protection`)."""
    context: AppContext = request.app[AppContext.KEY]
    limit = context.config.max_message_bytes
    too_large = bad_request(ErrorCode.TOO_LARGE, f"request body over {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    raw = bytearray()
    async for chunk in request.content.iter_any():
        raw += chunk
        if len(raw) > limit:
            raise too_large
    try:
        return parse_json_object(bytes(raw), max_bytes=limit)
    except WireError as error:
        if error.code is ErrorCode.BAD_MESSAGE:  # JSON, but not an object
            raise bad_request(ErrorCode.BAD_JSON, "the body must be a JSON object") from None
        raise bad_request(error.code, error.message) from None


def _field_error(error: TextError) -> ApiError:
    return bad_request(ErrorCode.MISSING_FIELD if error.missing else ErrorCode.BAD_FIELD, str(error))


def _text(data: dict[str, Any], name: str, *, max_chars: int = MAX_TEXT_CHARS, required: bool = True) -> str:
    try:
        return clean_text(data.get(name), field=name, max_chars=max_chars, required=required)
    except TextError as error:
        raise _field_error(error) from None


def email_address(value: object, *, field: str = "email") -> str:
    """`value` as an email address (lower case), or TextError."""
    email = clean_text(value, field=field, max_chars=MAX_EMAIL_CHARS).lower()
    if not _EMAIL.match(email):
        raise TextError(field, "is not an email address")
    return email


def _email(data: dict[str, Any]) -> str:
    try:
        return email_address(data.get("email"))
    except TextError as error:
        raise _field_error(error) from None


def _password(data: dict[str, Any], *, new: bool) -> str:
    """The password in the body: any text (a new one at least MIN_PASSWORD_CHARS long)."""
    password = data.get("password")
    if password is None or password == "":
        raise bad_request(ErrorCode.MISSING_FIELD, "password: is required")
    if not isinstance(password, str):
        raise bad_request(ErrorCode.BAD_FIELD, "password: must be a string")
    if new and len(password) < MIN_PASSWORD_CHARS:
        raise bad_request(
            ErrorCode.BAD_FIELD, f"password: must have at least {MIN_PASSWORD_CHARS} characters"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise bad_request(ErrorCode.BAD_FIELD, f"password: is longer than {MAX_PASSWORD_CHARS} characters")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON): not text anyone can type
        raise bad_request(ErrorCode.BAD_FIELD, "password: is not valid Unicode") from None
    return password


def _too_many_attempts(wait_s: float, what: str) -> ApiError:
    return ApiError(
        429,
        ErrorCode.TOO_MANY_ATTEMPTS,
        f"too many {what}: try again in {math.ceil(wait_s / 60)} min",
        headers={"Retry-After": str(math.ceil(wait_s))},
    )


async def _hash(context: AppContext, password: str) -> str:
    try:
        return await context.passwords.hash(password)
    except HashingBusy:
        raise _busy() from None


def _busy() -> ApiError:
    return ApiError(
        503, ErrorCode.SERVER_BUSY, "too many sign-ins at once: try again", headers={"Retry-After": "1"}
    )


def _signed_in(context: AppContext, member: Member, token: str, status: int = 200) -> web.Response:
    response = web.json_response({"member": member.public()}, status=status)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=context.config.session_days * 86_400,
        httponly=True,
        samesite="Strict",
        secure=context.config.secure_cookies,
        path="/",
    )
    return response


@web.middleware
async def identify_member(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        context: AppContext = request.app[AppContext.KEY]
        request[MEMBER_KEY] = await context.store.session_member(token)
    return await handler(request)


@routes.get("/api/info")
async def info(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    return web.json_response(
        {
            "protocol": PROTOCOL_VERSION,
            "languages": [
                {"code": lang.code, "name": lang.name, "native_name": lang.native_name, "rtl": lang.rtl}
                for lang in LANGUAGES.values()
            ],
            "translation_models": context.engine.model_names,
        }
    )


@routes.get("/api/ice")
async def ice_servers(request: web.Request) -> web.Response:
    """STUN and TURN servers for the member's peer connections; TURN credentials expire (server/turn.py),
    so clients ask again before each join."""
    context: AppContext = request.app[AppContext.KEY]
    member = context.require_member(request)
    servers = ice_servers_for(context.config, member.id)
    return web.json_response({"ice_servers": [server.to_dict() for server in servers]})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    config = context.config
    if config.metrics_token:
        expected = f"Bearer {config.metrics_token}"
        if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected.encode()):
            raise ApiError(401, ErrorCode.NOT_AUTHORISED, "metrics need the configured bearer token")
    elif not (config.loopback_only or config.metrics_public):
        # Reachable from other machines: the figures (rooms, participants) are not for everyone.
        raise ApiError(
            401,
            ErrorCode.NOT_AUTHORISED,
            "this server listens beyond loopback: metrics need metrics_token (or metrics_public = true)",
        )
    return web.Response(body=context.metrics.render(), content_type="text/plain", charset="utf-8")


@routes.get("/healthz")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.post("/api/setup")
async def setup(request: web.Request) -> web.Response:
    """The newcomer with the setup link `babelcall serve` printed creates the first administrator."""
    context: AppContext = request.app[AppContext.KEY]
    data = await _body(request)
    token = data.get("token")
    if not isinstance(token, str) or not token:
        raise bad_request(ErrorCode.MISSING_FIELD, "token: the setup link's token is required")
    name = _text(data, "name", max_chars=MAX_NAME_CHARS)
    organisation = _text(data, "organisation", required=False)
    email = _email(data)
    password = _password(data, new=True)
    refused = ApiError(
        403,
        ErrorCode.BAD_SETUP_TOKEN,
        "this setup link is used, expired or unknown: sign in, or restart the server for a new link",
    )
    if not await context.store.setup_token_valid(token):  # before spending a hash on it
        raise refused
    try:
        member = await context.store.complete_setup(
            token,
            email=email,
            name=name,
            organisation=organisation,
            password_hash=await _hash(context, password),
        )
    except EmailTakenError:
        raise ApiError(409, ErrorCode.EMAIL_TAKEN, "an application with this email exists") from None
    if member is None:
        raise refused
    context.setup_token = None
    log.info("administrator %s created with the setup link", member.id)
    return _signed_in(
        context, member, await context.store.start_session(member.id, context.config.session_days), 201
    )


@routes.post("/api/apply")
async def apply(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    address = request.remote or ""
    wait_s = context.application_limits.retry_after(address=address)
    if wait_s is not None:
        log.warning("application refused: too many from %s", address)
        raise _too_many_attempts(wait_s, "applications from this address")
    data = await _body(request)
    name = _text(data, "name", max_chars=MAX_NAME_CHARS)
    organisation = _text(data, "organisation", required=False)
    email = _email(data)
    password = _password(data, new=True)
    context.application_limits.count(address=address)
    try:
        member = await context.store.create_member(
            email=email, name=name, organisation=organisation, password_hash=await _hash(context, password)
        )
    except EmailTakenError:
        raise ApiError(409, ErrorCode.EMAIL_TAKEN, "an application with this email exists") from None
    log.info("application %s received", member.id)
    return web.json_response({"member": member.public()}, status=201)


@routes.post("/api/login")
async def login(request: web.Request) -> web.Response:
    """Every failure answers the same, whether the email is unknown, the password wrong, or the
    application rejected (with the right password): only the password's owner may learn more."""
    context: AppContext = request.app[AppContext.KEY]
    data = await _body(request)
    email = _email(data)
    password = _password(data, new=False)
    address = request.remote or ""
    wait_s = context.signin_limits.retry_after(email=email, address=address)
    if wait_s is not None:
        log.warning("sign-in refused after repeated failures (from %s)", address)
        raise _too_many_attempts(wait_s, "failed sign-ins")
    found = await context.store.credentials(email)
    try:
        verdict = await context.passwords.verify(found[1] if found else None, password)
    except HashingBusy:
        raise _busy() from None
    if found is None or not verdict.correct or found[0].status is MemberStatus.REJECTED:
        context.signin_limits.count(email=email, address=address)
        raise ApiError(401, ErrorCode.BAD_CREDENTIALS, "wrong email or password")
    member = found[0]
    context.signin_limits.forget(email=email)
    if verdict.stale:
        # Hashed by an older scheme (scrypt) or with older parameters: the password is at hand now.
        await context.store.set_password_hash(member.id, await _hash(context, password))
        log.info("password hash of member %s renewed", member.id)
    token = await context.store.start_session(member.id, context.config.session_days)
    return _signed_in(context, member, token)


@routes.post("/api/logout")
async def logout(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await context.store.end_session(token)
    response = web.json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    member = request.get(MEMBER_KEY)
    if member is None:
        raise ApiError(401, ErrorCode.NOT_SIGNED_IN, "sign in first")
    return web.json_response({"member": member.public()})


@routes.get("/api/admin/members")
async def list_members(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    context.require_admin(request)
    status_name = request.query.get("status")
    try:
        status = MemberStatus(status_name) if status_name else None
    except ValueError:
        raise bad_request(
            ErrorCode.BAD_FIELD, f"status: must be one of {[s.value for s in MemberStatus]}"
        ) from None
    return web.json_response({"members": [m.public() for m in await context.store.members(status)]})


@routes.post(r"/api/admin/members/{member_id}/{decision:approve|reject}")
async def decide(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    admin = context.require_admin(request)
    member_id = request.match_info["member_id"]
    if member_id == admin.id:
        raise bad_request(ErrorCode.BAD_FIELD, "administrators cannot change their own membership")
    status = MemberStatus.APPROVED if request.match_info["decision"] == "approve" else MemberStatus.REJECTED
    member = await context.store.decide(member_id, status)
    if member is None:
        raise ApiError(404, ErrorCode.NO_MEMBER, "no such member")
    log.info("member %s %s by administrator %s", member.id, status.value, admin.id)
    if status is not MemberStatus.APPROVED:
        # Their sign-in sessions are gone with the decision; calls they are in end now, not when
        # they next reload.
        await context.calls.membership_ended(member_id)
    return web.json_response({"member": member.public()})


@routes.post("/api/rooms")
async def create_room(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    member = context.require_member(request)
    data = await _body(request)
    kind_name = data.get("kind", RoomKind.CONSULTATION.value)
    if not isinstance(kind_name, str) or kind_name not in {k.value for k in RoomKind}:
        raise bad_request(ErrorCode.BAD_FIELD, f"kind: must be one of {[k.value for k in RoomKind]}")
    kind = RoomKind(kind_name)
    title = _text(data, "title", required=False) or (
        "Consultation" if kind is RoomKind.CONSULTATION else "Case review"
    )
    room = await context.store.create_room(title=title, kind=kind, created_by=member.id)
    return web.json_response({"room": room.public(), "link": f"/r/{room.id}"}, status=201)


@routes.get("/api/rooms")
async def my_rooms(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    member = context.require_member(request)
    rooms = []
    for record in await context.store.rooms_created_by(member.id):
        live = context.calls.room(record.id)
        rooms.append(
            {**record.public(), "live": live is not None, "participants": len(live.seats) if live else 0}
        )
    return web.json_response({"rooms": rooms})


@routes.get("/api/rooms/{room_id}/glossary")
async def get_glossary(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    context.require_member(request)
    room_id = request.match_info["room_id"]
    live = context.calls.room(room_id)
    if live is not None:
        glossary = live.glossary
    else:
        record = await context.store.room(room_id)
        if record is None:
            raise ApiError(404, ErrorCode.NO_ROOM, "no such room")
        glossary = record.glossary
    return web.json_response({"terms": glossary.to_list()})


@routes.put("/api/rooms/{room_id}/glossary")
async def put_glossary(request: web.Request) -> web.Response:
    """The room's host (or an administrator) sets the terms recognition and translation protect."""
    context: AppContext = request.app[AppContext.KEY]
    _, record = await context.require_host(request, "edits its glossary")
    data = await _body(request)
    try:
        glossary = Glossary.from_list(data.get("terms"))
    except (GlossaryError, UnknownLanguageError) as err:
        raise bad_request(ErrorCode.BAD_FIELD, f"terms: {err}") from None
    await context.store.set_glossary(record.id, glossary)
    live = context.calls.room(record.id)
    if live is not None:
        await context.calls.set_glossary(live, glossary)
    return web.json_response({"terms": glossary.to_list()})


@routes.delete("/api/rooms/{room_id}/participants/{participant_id}")
async def remove_participant(request: web.Request) -> web.Response:
    """The room's host (or an administrator) ends someone's part in the call; they cannot join again
    until the call is ended for everyone."""
    context: AppContext = request.app[AppContext.KEY]
    member, record = await context.require_host(request, "removes participants")
    live = context.calls.room(record.id)
    seat = live.seats.get(request.match_info["participant_id"]) if live is not None else None
    if live is None or seat is None:
        raise ApiError(404, ErrorCode.NO_PARTICIPANT, "no such participant in this call")
    if seat.member.id == member.id:
        raise bad_request(ErrorCode.BAD_FIELD, "to leave the call, leave it")
    await context.calls.remove(live, seat, by=member)
    log.info("participant %s removed from room %s", seat.id, record.id)
    return web.json_response({"removed": seat.id})


@routes.post("/api/rooms/{room_id}/participants/{participant_id}/mute")
async def ask_to_mute(request: web.Request) -> web.Response:
    """The room's host (or an administrator) asks someone to mute; their page mutes and says who asked."""
    context: AppContext = request.app[AppContext.KEY]
    member, record = await context.require_host(request, "asks participants to mute")
    live = context.calls.room(record.id)
    seat = live.seats.get(request.match_info["participant_id"]) if live is not None else None
    if seat is None:
        raise ApiError(404, ErrorCode.NO_PARTICIPANT, "no such participant in this call")
    await context.calls.ask_to_mute(seat, by=member)
    return web.json_response({"asked": seat.id})


@routes.delete("/api/rooms/{room_id}")
async def delete_room(request: web.Request) -> web.Response:
    """The room's host (or an administrator) deletes it: a call in it ends for everyone, and its link
    leads nowhere any more."""
    context: AppContext = request.app[AppContext.KEY]
    member, record = await context.require_host(request, "deletes it")
    ended = await context.calls.end(record)
    await context.store.delete_room(record.id)
    log.info("room %s deleted by member %s (%d were in its call)", record.id, member.id, ended)
    return web.json_response({"deleted": record.id})


@routes.post("/api/rooms/{room_id}/end")
async def end_call(request: web.Request) -> web.Response:
    """The room's host (or an administrator) ends the call for everyone in it; removals are lifted."""
    context: AppContext = request.app[AppContext.KEY]
    member, record = await context.require_host(request, "ends its call")
    ended = await context.calls.end(record)
    log.info("call in room %s ended for %d participant(s) by member %s", record.id, ended, member.id)
    return web.json_response({"ended": ended})


@routes.get("/api/rooms/{room_id}")
async def room_details(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    context.require_member(request)
    room_id = request.match_info["room_id"]
    live = context.calls.room(room_id)
    if live is not None:
        return web.json_response({"room": live.state().to_dict()})
    record = await context.store.room(room_id)
    if record is None:
        raise ApiError(404, ErrorCode.NO_ROOM, "no such room")
    return web.json_response({"room": {**record.public(), "participants": []}})
