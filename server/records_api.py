"""REST endpoints of consultation records (server/records.py; docs/protocol.md, section 1).

Starting and stopping a record belong to the room's host and administrators; reading and exporting
to the members who were in the call while it was recording, and administrators; deleting to the
room's host and administrators; the audit log to administrators. Every read, export and deletion is
audited before it is answered. Errors are {"error": {"code", "message"}}.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from protocol import Glossary, UnknownLanguageError, language
from protocol.errors import ErrorCode, ProtocolError
from server.context import AppContext
from server.errors import ApiError
from server.record_export import ExportFormat, filename, render, translate_lines
from server.records import AuditEvent, may_manage, may_read
from server.store import Member, StoredRecord

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

_STATUS = {ErrorCode.NO_RECORD: 404, ErrorCode.NO_CALL: 409, ErrorCode.RECORD_RUNNING: 409}


def _refused(error: ProtocolError) -> ApiError:
    return ApiError(_STATUS[error.code], error.code, error.message)


def _public(context: AppContext, record: StoredRecord, member: Member) -> dict[str, Any]:
    return {
        **record.public(),
        "expires_at": context.records.expires_at(record),
        "may_read": may_read(member, record),
        "may_delete": may_manage(member, record),
    }


async def _record(request: web.Request) -> tuple[Member, StoredRecord]:
    context: AppContext = request.app[AppContext.KEY]
    member = context.require_member(request)
    record = await context.records.record(request.match_info["record_id"])
    if record is None:
        raise ApiError(404, ErrorCode.NO_RECORD, "no such record")
    return member, record


async def _readable(request: web.Request) -> tuple[Member, StoredRecord]:
    member, record = await _record(request)
    if not may_read(member, record):
        raise ApiError(
            403,
            ErrorCode.NOT_PARTICIPANT,
            "a record is read by those who were in the call, and administrators",
        )
    return member, record


@routes.post("/api/rooms/{room_id}/record")
async def start_record(request: web.Request) -> web.Response:
    """The host (or an administrator) starts recording the call: everyone in it is asked."""
    context: AppContext = request.app[AppContext.KEY]
    member, room = await context.require_host(request, "starts its record")
    live = context.calls.room(room.id)
    if live is None:
        raise ApiError(409, ErrorCode.NO_CALL, "nobody is in this call")
    try:
        record = await context.records.start(live, member)
    except ProtocolError as error:
        raise _refused(error) from None
    return web.json_response({"record": _public(context, record, member)}, status=201)


@routes.post("/api/rooms/{room_id}/record/stop")
async def stop_record(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    member, room = await context.require_host(request, "stops its record")
    try:
        record = await context.records.stop(room.id, member)
    except ProtocolError as error:
        raise _refused(error) from None
    return web.json_response({"record": _public(context, record, member)})


@routes.get("/api/records")
async def list_records(request: web.Request) -> web.Response:
    """The records a member was in or whose room they host; every record for administrators."""
    context: AppContext = request.app[AppContext.KEY]
    member = context.require_member(request)
    records = await context.records.visible_to(member)
    return web.json_response({"records": [_public(context, record, member) for record in records]})


@routes.get("/api/records/{record_id}")
async def read_record(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    member, record = await _readable(request)
    lines = await context.records.read(record, member.id, AuditEvent.VIEWED)
    return web.json_response(
        {
            "record": _public(context, record, member),
            "lines": [
                {
                    "utterance_id": line.utterance_id,
                    "speaker_id": line.speaker_id,
                    "speaker_name": line.speaker_name,
                    "language": line.language,
                    "text": line.text,
                    "kind": line.kind.value,
                    "start_at": line.start_at,
                    "end_at": line.end_at,
                }
                for line in lines
            ],
        }
    )


@routes.get("/api/records/{record_id}/export")
async def export_record(request: web.Request) -> web.Response:
    """`?format=vtt|srt|txt|json|html&language=xx`: without a language, as spoken; `html` (original
    beside translation) needs one."""
    context: AppContext = request.app[AppContext.KEY]
    member, record = await _readable(request)
    try:
        export_format = ExportFormat(request.query.get("format", ""))
    except ValueError:
        choices = ", ".join(f.value for f in ExportFormat)
        raise ApiError(400, ErrorCode.BAD_FIELD, f"format is one of {choices}") from None
    target = request.query.get("language") or None
    if target is not None:
        try:
            target = language(target).code
        except UnknownLanguageError:
            raise ApiError(400, ErrorCode.UNKNOWN_LANGUAGE, "language: not one of the eleven") from None
    elif export_format is ExportFormat.HTML:
        raise ApiError(400, ErrorCode.MISSING_FIELD, "the bilingual document needs a language")
    lines = await context.records.read(
        record, member.id, AuditEvent.EXPORTED, f"{export_format.value} {target or 'original'}"
    )
    translated = await translate_lines(lines, target, context.engine, await _glossary(context, record))
    return web.Response(
        text=render(export_format, record, translated, target),
        content_type=export_format.content_type,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename(record, export_format, target)}"'},
    )


async def _glossary(context: AppContext, record: StoredRecord) -> Glossary:
    """The room's glossary as it is now: the terms translation protects, as for live captions."""
    live = context.calls.room(record.room_id)
    if live is not None:
        return live.glossary
    room = await context.store.room(record.room_id)
    return room.glossary if room is not None else Glossary()


@routes.delete("/api/records/{record_id}")
async def delete_record(request: web.Request) -> web.Response:
    context: AppContext = request.app[AppContext.KEY]
    member, record = await _record(request)
    if not may_manage(member, record):
        raise ApiError(
            403, ErrorCode.NOT_HOST, "only the room's host or an administrator deletes its records"
        )
    await context.records.delete(record, member.id)
    log.info("record %s deleted by member %s", record.id, member.id)
    return web.json_response({"deleted": record.id})


@routes.get("/api/records/{record_id}/audit")
async def record_audit(request: web.Request) -> web.Response:
    """Administrators: who did what to a record, and when; kept after the record is deleted."""
    context: AppContext = request.app[AppContext.KEY]
    context.require_admin(request)
    entries = await context.records.audit_log(request.match_info["record_id"])
    if not entries:
        raise ApiError(404, ErrorCode.NO_RECORD, "no such record")
    return web.json_response({"entries": [entry.public() for entry in entries]})
