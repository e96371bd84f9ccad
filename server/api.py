"""REST endpoints: applying for membership, signing in, administration, rooms.

Every endpoint that reveals a member or a room checks who is asking (`AppContext.require_*`).
Errors are JSON: {"error": {"code": ..., "message": ...}}.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
from typing import Any

from aiohttp import web

from protocol import LANGUAGES, PROTOCOL_VERSION, Glossary, GlossaryError, UnknownLanguageError
from server.context import MEMBER_KEY, AppContext
from server.store import EmailTakenError, Member, MemberStatus, RoomKind, RoomRecord
from server.turn import ice_servers_for

log = logging.getLogger(__name__)

SESSION_COOKIE = "babelcall_session"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MIN_PASSWORD = 10

routes = web.RouteTableDef()


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class ApiError(Exception):
    """Raised by a handler; the json_errors middleware answers it as {"error": {code, message}}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class BadRequest(ApiError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(400, code, message)


async def _body(request: web.Request) -> dict[str, Any]:
    context: AppContext = request.app[AppContext.KEY]
    if request.content_length is not None and request.content_length > context.config.max_message_bytes:
        raise BadRequest("too_large", f"request body over {context.config.max_message_bytes} bytes")
    raw = await request.content.read(context.config.max_message_bytes + 1)
    if len(raw) > context.config.max_message_bytes:
        raise BadRequest("too_large", f"request body over {context.config.max_message_bytes} bytes")
    try:
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequest("bad_json", "the body must be a JSON object") from err
    if not isinstance(data, dict):
        raise BadRequest("bad_json", "the body must be a JSON object")
    return data


def _text(data: dict[str, Any], name: str, *, max_len: int = 200, required: bool = True) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise BadRequest("bad_field", f"{name} must be a string")
    value = value.strip()
    if required and not value:
        raise BadRequest("missing_field", f"{name} is required")
    if len(value) > max_len:
        raise BadRequest("bad_field", f"{name} is longer than {max_len} characters")
    return value


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return error(err.status, err.code, err.message)


@web.middleware
async def identify_member(request: web.Request, handler: Any) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        context: AppContext = request.app[AppContext.KEY]
        request[MEMBER_KEY] = await context.store.session_member(token)
    return await handler(request)


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Room links are capabilities: never leak them to other sites through the Referer header.
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    )
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


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
    token = context.config.metrics_token
    if token and not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return error(401, "not_authorised", "metrics need the configured bearer token")
    return web.Response(body=context.metrics.render(), content_type="text/plain", charset="utf-8")


@routes.get("/healthz")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.post("/api/apply")
async def apply(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    data = await _body(request)
    email = _text(data, "email").lower()
    if not _EMAIL.match(email):
        raise BadRequest("bad_field", "email is not an email address")
    password = data.get("password")
    if not isinstance(password, str) or len(password) < _MIN_PASSWORD:
        raise BadRequest("bad_field", f"password must have at least {_MIN_PASSWORD} characters")
    try:
        member = await context.store.apply(
            email=email,
            name=_text(data, "name", max_len=80),
            organisation=_text(data, "organisation", required=False),
            password=password,
        )
    except EmailTakenError:
        return error(409, "email_taken", "an application with this email exists")
    return web.json_response({"member": member.public()}, status=201)


@routes.post("/api/login")
async def login(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    data = await _body(request)
    password = data.get("password")
    if not isinstance(password, str):
        raise BadRequest("missing_field", "password is required")
    email = _text(data, "email").lower()
    address = request.remote or ""
    wait_s = context.signin_limits.retry_after(email, address)
    if wait_s is not None:
        log.warning("sign-in refused after repeated failures (from %s)", address)
        response = error(
            429, "too_many_attempts", f"too many failed sign-ins: try again in {math.ceil(wait_s / 60)} min"
        )
        response.headers["Retry-After"] = str(math.ceil(wait_s))
        return response
    member = await context.store.authenticate(email, password)
    if member is None:
        context.signin_limits.failed(email, address)
        return error(401, "bad_credentials", "wrong email or password")
    context.signin_limits.succeeded(email)
    if member.status is MemberStatus.REJECTED:
        return error(403, "not_approved", "this application was not approved")
    token = await context.store.start_session(member.id, context.config.session_days)
    response = web.json_response({"member": member.public()})
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
        return error(401, "not_signed_in", "sign in first")
    return web.json_response({"member": member.public()})


@routes.get("/api/admin/members")
async def list_members(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    context.require_admin(request)
    status_name = request.query.get("status")
    try:
        status = MemberStatus(status_name) if status_name else None
    except ValueError:
        raise BadRequest("bad_field", f"status must be one of {[s.value for s in MemberStatus]}") from None
    return web.json_response({"members": [m.public() for m in await context.store.members(status)]})


@routes.post(r"/api/admin/members/{member_id}/{decision:approve|reject}")
async def decide(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    admin = context.require_admin(request)
    member_id = request.match_info["member_id"]
    if member_id == admin.id:
        raise BadRequest("bad_field", "administrators cannot change their own membership")
    status = MemberStatus.APPROVED if request.match_info["decision"] == "approve" else MemberStatus.REJECTED
    member = await context.store.decide(member_id, status)
    if member is None:
        return error(404, "no_member", "no such member")
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
    try:
        kind = RoomKind(data.get("kind", RoomKind.CONSULTATION.value))
    except ValueError:
        raise BadRequest("bad_field", f"kind must be one of {[k.value for k in RoomKind]}") from None
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
            return error(404, "no_room", "no such room")
        glossary = record.glossary
    return web.json_response({"terms": glossary.to_list()})


async def _room_of_its_host(request: web.Request, action: str) -> tuple[Member, RoomRecord]:
    """The member asking and the room in the path, if they are its host or an administrator."""
    context: AppContext = request.app[AppContext.KEY]
    member = context.require_member(request)
    record = await context.store.room(request.match_info["room_id"])
    if record is None:
        raise ApiError(404, "no_room", "no such room")
    if member.id != record.created_by and not member.is_admin:
        raise ApiError(403, "not_host", f"only the room's host or an administrator {action}")
    return member, record


@routes.put("/api/rooms/{room_id}/glossary")
async def put_glossary(request: web.Request) -> web.Response:
    """The room's host (or an administrator) sets the terms recognition and translation protect."""
    context: AppContext = request.app[AppContext.KEY]
    _, record = await _room_of_its_host(request, "edits its glossary")
    data = await _body(request)
    try:
        glossary = Glossary.from_list(data.get("terms"))
    except (GlossaryError, UnknownLanguageError) as err:
        raise BadRequest("bad_field", f"terms: {err}") from None
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
    member, record = await _room_of_its_host(request, "removes participants")
    live = context.calls.room(record.id)
    seat = live.seats.get(request.match_info["participant_id"]) if live is not None else None
    if live is None or seat is None:
        return error(404, "no_participant", "no such participant in this call")
    if seat.member.id == member.id:
        raise BadRequest("bad_field", "to leave the call, leave it")
    await context.calls.remove(live, seat, by=member)
    log.info("participant %s removed from room %s", seat.id, record.id)
    return web.json_response({"removed": seat.id})


@routes.post("/api/rooms/{room_id}/participants/{participant_id}/mute")
async def ask_to_mute(request: web.Request) -> web.Response:
    """The room's host (or an administrator) asks someone to mute; their page mutes and says who asked."""
    context: AppContext = request.app[AppContext.KEY]
    member, record = await _room_of_its_host(request, "asks participants to mute")
    live = context.calls.room(record.id)
    seat = live.seats.get(request.match_info["participant_id"]) if live is not None else None
    if seat is None:
        return error(404, "no_participant", "no such participant in this call")
    await context.calls.ask_to_mute(seat, by=member)
    return web.json_response({"asked": seat.id})


@routes.delete("/api/rooms/{room_id}")
async def delete_room(request: web.Request) -> web.Response:
    """The room's host (or an administrator) deletes it: a call in it ends for everyone, and its link
    leads nowhere any more."""
    context: AppContext = request.app[AppContext.KEY]
    member, record = await _room_of_its_host(request, "deletes it")
    ended = await context.calls.end(record)
    await context.store.delete_room(record.id)
    log.info("room %s deleted by member %s (%d were in its call)", record.id, member.id, ended)
    return web.json_response({"deleted": record.id})


@routes.post("/api/rooms/{room_id}/end")
async def end_call(request: web.Request) -> web.Response:
    """The room's host (or an administrator) ends the call for everyone in it; removals are lifted."""
    context: AppContext = request.app[AppContext.KEY]
    member, record = await _room_of_its_host(request, "ends its call")
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
        return error(404, "no_room", "no such room")
    return web.json_response({"room": {**record.public(), "participants": []}})
