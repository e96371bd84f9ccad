"""The typed protocol: every message survives the wire both ways, and no input a client can send makes
the parser (or the server behind it) fail with anything but a documented error code."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import PROTOCOL_VERSION, CaptionEvent, TranslationPath
from protocol.captions import CaptionKind, NoteCode, transcript
from protocol.errors import ErrorCode, ProtocolError
from protocol.signalling import (
    ChatMessage,
    ChineseScript,
    Error,
    GlossaryUpdated,
    Join,
    Joined,
    Languages,
    Leave,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantPublished,
    ParticipantState,
    ParticipantUpdated,
    Publish,
    Published,
    RoomState,
    Subscribe,
    Subscribed,
    parse_client_message,
    parse_server_message,
)

MAX_BYTES = 65_536
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def _over_the_wire(message: Any) -> dict[str, Any]:
    return dict(json.loads(json.dumps(message.to_dict())))


@pytest.mark.parametrize(
    "message",
    [
        Join("auto", "fr"),
        Join("zh", "en", ChineseScript.TRADITIONAL),
        Publish(SDP),
        Subscribe("a" * 32, SDP),
        Languages("ja", ChineseScript.SIMPLIFIED),
        Leave(),
    ],
)
def test_client_messages_parse_back_to_themselves(message: Any) -> None:
    assert parse_client_message(json.dumps(message.to_dict()), max_bytes=MAX_BYTES) == message


def line(kind: CaptionKind, seq: int, text: str, replaces: tuple[int, ...] = ()) -> CaptionEvent:
    replaced = tuple(f"s-{r}" for r in replaces)
    return CaptionEvent(
        "room", "s", "Dr Ana Ruiz", f"s-{seq}", kind, "en", "en", text, len(text),
        TranslationPath.ORIGINAL, None, float(seq), seq + 1.0, 0.0, replaces=replaced,
    )  # fmt: skip


def test_a_transcript_applies_settled_captions_in_place_of_the_lines_they_replace() -> None:
    events = [
        line(CaptionKind.PARTIAL, 0, "I've had a"),
        line(CaptionKind.FINAL, 0, "I've had a pain in my"),
        line(CaptionKind.FINAL, 1, "lower back."),
        line(CaptionKind.FINAL, 2, "Since Monday."),
        line(CaptionKind.FINAL, 3, "Uh."),
        line(CaptionKind.PARTIAL, 4, "It hurts"),
        line(CaptionKind.SETTLED, 0, "I've had a pain in my lower back", (0, 1)),
        line(CaptionKind.SETTLED, 3, "", (3,)),  # noise the first pass wrote words for: removed
        line(CaptionKind.FINAL, 1, "lower back."),  # stale: already replaced
        line(CaptionKind.FINAL, 4, "It hurts at night."),
    ]
    assert [(e.utterance_id, e.kind, e.text) for e in transcript(events)] == [
        ("s-0", CaptionKind.SETTLED, "I've had a pain in my lower back"),
        ("s-2", CaptionKind.FINAL, "Since Monday."),
        ("s-4", CaptionKind.FINAL, "It hurts at night."),
    ]


def test_server_messages_parse_back_to_themselves() -> None:
    person = ParticipantState("b" * 32, "Dr Amal Haddad", "ar", "en", ("audio", "video"))
    room = RoomState(
        "room", "Case review", "review", "host", 1.0, 2.0, ({"term": "x", "renderings": {}},), (person,)
    )
    caption = CaptionEvent(
        room="room",
        speaker_id=person.id,
        speaker_name=person.name,
        utterance_id=f"{person.id}-3",
        kind=CaptionKind.SETTLED,
        source_language="ar",
        caption_language="en",
        text="The scan shows a fracture.",
        stable_chars=26,
        path=TranslationPath.PIVOT,
        note=None,
        start_s=1.0,
        end_s=3.5,
        sent_at=1_800_000_000.0,
        replaces=(f"{person.id}-3", f"{person.id}-4"),
        confidence=0.82,
        uncertain=False,
        model="opus-mt-ar-en+opus-mt-en-fr",
    )
    untranslated = replace(
        caption,
        caption_language="ar",
        text="الصورة تظهر كسرا.",
        path=TranslationPath.UNTRANSLATED,
        note="not translated: no model for ar→ja",
        note_code=NoteCode.NO_MODEL,
        target_language="ja",
        model=None,
    )
    chat = ChatMessage(
        "m-1", person.id, person.name, "ar", "ar", "مرحبا", "مرحبا", TranslationPath.UNTRANSLATED,
        "not translated: no model for ar→ja", None, 1_800_000_000.0, NoteCode.NO_MODEL, "ja",
    )  # fmt: skip
    for message in (
        Joined(person.id, room, PROTOCOL_VERSION),
        Published(SDP, ("audio",)),
        Subscribed(person.id, SDP),
        ParticipantJoined(person),
        ParticipantPublished(person),
        ParticipantUpdated(person),
        ParticipantLeft(person.id),
        GlossaryUpdated(({"term": "x", "renderings": {"fr": "y"}},)),
        Error(ErrorCode.ROOM_FULL, "full"),
        caption,
        untranslated,
        chat,
    ):
        assert parse_server_message(_over_the_wire(message)) == message
    # A reason a newer server knows and this version does not: its English note still says it.
    newer = {**untranslated.to_dict(), "note_code": "future_reason"}
    assert parse_server_message(newer) == replace(untranslated, note_code=None)
    # A newer server's message type is ignored; a known one without its fields is an error.
    assert parse_server_message({"type": "hologram"}) is None
    with pytest.raises(ValueError):
        parse_server_message({"type": "joined"})


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{oops", ErrorCode.BAD_JSON),
        ("[" * 20_000, ErrorCode.BAD_JSON),
        ('{"type": "join", "speaks": ' + "9" * 5_000 + "}", ErrorCode.BAD_JSON),
        ('{"type": "join", "speaks": NaN}', ErrorCode.BAD_JSON),
        ("[]", ErrorCode.BAD_MESSAGE),
        ('{"type": 7}', ErrorCode.BAD_MESSAGE),
        ('{"type": "dance"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "join", "speaks": "xx", "captions": "en"}', ErrorCode.UNKNOWN_LANGUAGE),
        ('{"type": "join", "speaks": "en", "captions": "auto"}', ErrorCode.UNKNOWN_LANGUAGE),
        ('{"type": "join", "speaks": "en", "captions": "en", "chinese_script": "x"}', ErrorCode.BAD_MESSAGE),
        ('{"type": "publish", "sdp": "hello"}', ErrorCode.BAD_SDP),
        ('{"type": "publish", "sdp": "v=0' + "x" * 40_000 + '"}', ErrorCode.BAD_SDP),
        ('{"type": "subscribe", "publisher_id": "", "sdp": "v=0"}', ErrorCode.BAD_MESSAGE),
        ('{"type": "languages", "captions": "fr", "speaks": "en"}', ErrorCode.BAD_MESSAGE),
        ('{"type": "join", "pad": "' + "x" * 70_000 + '"}', ErrorCode.TOO_LARGE),
    ],
)
def test_bad_client_messages_get_their_error_code(raw: str, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse_client_message(raw, max_bytes=MAX_BYTES)
    assert raised.value.code is code
    assert len(raised.value.message) < 200  # a message for people, never an echo of the input


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
_field_values = st.one_of(
    _json,
    st.sampled_from(["en", "fr", "auto", "zh", "", "v=0", SDP, "simplified", "traditional", "a" * 32]),
)
_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["join", "publish", "subscribe", "languages", "leave", "dance"]) | _json},
    optional={
        name: _field_values for name in ("speaks", "captions", "chinese_script", "sdp", "publisher_id")
    },
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=_messages)
def test_any_message_is_parsed_or_refused_with_a_documented_code(message: dict[str, Any]) -> None:
    try:
        parsed = parse_client_message(json.dumps(message), max_bytes=MAX_BYTES)
    except ProtocolError as error:
        assert error.code in ErrorCode
        assert error.code is not ErrorCode.INTERNAL_ERROR
    else:
        assert parsed.type == message["type"]


@settings(max_examples=1000, deadline=None)
@given(raw=st.binary(max_size=300) | st.text(max_size=300))
def test_any_bytes_are_parsed_or_refused_with_a_documented_code(raw: bytes | str) -> None:
    try:
        parse_client_message(raw, max_bytes=MAX_BYTES)
    except ProtocolError as error:
        assert error.code in {
            ErrorCode.BAD_JSON,
            ErrorCode.BAD_MESSAGE,
            ErrorCode.UNKNOWN_TYPE,
            ErrorCode.UNKNOWN_LANGUAGE,
            ErrorCode.BAD_SDP,
            ErrorCode.TOO_LARGE,
        }
