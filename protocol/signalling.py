"""The signalling messages on a room's WebSocket, one dataclass each (docs/protocol.md, section 2).

Client messages are parsed and validated here, once (`parse_client_message`): the server gets a typed
message or a ProtocolError with the code to answer. Server messages are built from these types and
parsed back by clients that speak Python (the headless participant, tests, benchmarks) with
`parse_server_message`. Caption events are `protocol.captions.CaptionEvent`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from protocol.captions import CaptionEvent, NoteCode, TranslationPath, note_code
from protocol.errors import ErrorCode, ProtocolError
from protocol.languages import LANGUAGES, UnknownLanguageError, language
from protocol.wire import parse_json_object

AUTO_LANGUAGE = "auto"  # `speaks`: detect the language of each utterance among the room's languages
MAX_SDP_CHARS = 32_768


class MediaSource(StrEnum):
    """What a publication carries."""

    CAMERA = "camera"  # the participant's microphone and camera: one per participant, captioned
    SCREEN = "screen"  # a shared screen, window or tab, for everyone to see: at most one, not captioned


MAX_CHAT_CHARS = 2_000


class ChineseScript(StrEnum):
    """How a reader of Chinese captions wants them written."""

    SIMPLIFIED = "simplified"
    TRADITIONAL = "traditional"


class _Message:
    """A message of either direction: its JSON object is its fields plus its "type"."""

    type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}  # type: ignore[call-overload]


# ---------------------------------------------------------------- client -> server


@dataclass(frozen=True)
class Join(_Message):
    type: ClassVar[str] = "join"
    speaks: str  # a language code, or AUTO_LANGUAGE
    captions: str
    chinese_script: ChineseScript = ChineseScript.SIMPLIFIED


@dataclass(frozen=True)
class Publish(_Message):
    type: ClassVar[str] = "publish"
    sdp: str  # a sendonly offer: the microphone and/or camera, or the shared screen
    source: MediaSource = MediaSource.CAMERA


@dataclass(frozen=True)
class Unpublish(_Message):
    """Stop sharing the screen (the camera's publication ends with the seat)."""

    type: ClassVar[str] = "unpublish"
    source: MediaSource = MediaSource.SCREEN


@dataclass(frozen=True)
class Subscribe(_Message):
    type: ClassVar[str] = "subscribe"
    publisher_id: str
    sdp: str  # a recvonly offer
    source: MediaSource = MediaSource.CAMERA


@dataclass(frozen=True)
class Chat(_Message):
    """A written message for everyone in the call, translated for each reader like captions."""

    type: ClassVar[str] = "chat"
    text: str


@dataclass(frozen=True)
class Languages(_Message):
    """Change the caption language (and Chinese script) mid-call; the spoken language is fixed."""

    type: ClassVar[str] = "languages"
    captions: str
    chinese_script: ChineseScript = ChineseScript.SIMPLIFIED


@dataclass(frozen=True)
class Leave(_Message):
    type: ClassVar[str] = "leave"


@dataclass(frozen=True)
class RecordConsent(_Message):
    """A participant's answer to the call's record: agree, or decline; declining after agreeing
    withdraws, which pauses the record. Answers can change at any time while the record runs."""

    type: ClassVar[str] = "record_consent"
    agree: bool


ClientMessage = Join | Publish | Unpublish | Subscribe | Languages | Chat | Leave | RecordConsent


def parse_client_message(raw: str | bytes, *, max_bytes: int) -> ClientMessage:
    """The typed message in `raw`, or ProtocolError with the code to answer (docs/protocol.md)."""
    data = parse_json_object(raw, max_bytes=max_bytes)
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, 'a message is a JSON object with a string "type"')
    if kind == Join.type:
        return Join(
            speaks=_language(data, "speaks", allow_auto=True),
            captions=_language(data, "captions"),
            chinese_script=_chinese_script(data),
        )
    if kind == Publish.type:
        return Publish(sdp=_sdp(data), source=_source(data, MediaSource.CAMERA))
    if kind == Unpublish.type:
        source = _source(data, MediaSource.SCREEN)
        if source is not MediaSource.SCREEN:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "the camera's publication ends when you leave")
        return Unpublish(source)
    if kind == Subscribe.type:
        return Subscribe(
            publisher_id=_text(data, "publisher_id", max_chars=64),
            sdp=_sdp(data),
            source=_source(data, MediaSource.CAMERA),
        )
    if kind == Chat.type:
        return Chat(text=_chat_text(data))
    if kind == Languages.type:
        if "speaks" in data:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "to change the spoken language, leave and join again")
        return Languages(captions=_language(data, "captions"), chinese_script=_chinese_script(data))
    if kind == Leave.type:
        return Leave()
    if kind == RecordConsent.type:
        agree = data.get("agree")
        if not isinstance(agree, bool):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, '"agree" must be true or false')
        return RecordConsent(agree)
    raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}")


def _text(data: dict[str, Any], name: str, *, max_chars: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f'"{name}" must be a non-empty string')
    if len(value) > max_chars:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f'"{name}" is longer than {max_chars} characters')
    return value


def _source(data: dict[str, Any], default: MediaSource) -> MediaSource:
    try:
        return MediaSource(data.get("source", default.value))
    except ValueError:
        choices = ", ".join(source.value for source in MediaSource)
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f'"source" is one of {choices}') from None


def _chat_text(data: dict[str, Any]) -> str:
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ProtocolError(ErrorCode.BAD_MESSAGE, '"text" must be a non-empty string')
    if len(text) > MAX_CHAT_CHARS:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"a chat message has at most {MAX_CHAT_CHARS} characters")
    if any(unicodedata.category(char) in {"Cc", "Cf"} and char not in "\n\t" for char in text):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "a chat message holds no control or formatting characters")
    return text.strip()


def _language(data: dict[str, Any], name: str, *, allow_auto: bool = False) -> str:
    value = data.get(name)
    if allow_auto and value == AUTO_LANGUAGE:
        return AUTO_LANGUAGE
    try:
        return language(value).code
    except UnknownLanguageError:
        shown = repr(value[:20]) if isinstance(value, str) else type(value).__name__
        supported = " ".join(sorted(LANGUAGES))
        raise ProtocolError(
            ErrorCode.UNKNOWN_LANGUAGE, f"{name}: unknown language {shown}; supported: {supported}"
        ) from None


def _chinese_script(data: dict[str, Any]) -> ChineseScript:
    value = data.get("chinese_script", ChineseScript.SIMPLIFIED.value)
    try:
        return ChineseScript(value)
    except ValueError:
        choices = ", ".join(script.value for script in ChineseScript)
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f'"chinese_script" is one of {choices}') from None


def _sdp(data: dict[str, Any]) -> str:
    sdp = data.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise ProtocolError(ErrorCode.BAD_SDP, '"sdp" must be an SDP offer starting with "v=0"')
    if len(sdp) > MAX_SDP_CHARS:
        raise ProtocolError(ErrorCode.BAD_SDP, f"SDP longer than {MAX_SDP_CHARS} characters")
    return sdp


# ---------------------------------------------------------------- server -> client


@dataclass(frozen=True)
class ParticipantState:
    """Someone in the call, as every participant sees them."""

    id: str
    name: str
    speaks: str
    captions: str
    publishing: tuple[str, ...] = ()  # the media kinds their camera publication sends: "audio", "video"
    sharing_screen: bool = False  # subscribe with source "screen" to see it

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParticipantState:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            speaks=str(data["speaks"]),
            captions=str(data["captions"]),
            publishing=tuple(str(kind) for kind in data.get("publishing", ())),
            sharing_screen=bool(data.get("sharing_screen", False)),
        )


@dataclass(frozen=True)
class RoomState:
    id: str
    title: str
    kind: str  # "consultation" or "review"
    created_by: str  # the host's member id
    created_at: float
    opened_at: float  # captions' start_s and end_s count from here
    glossary: tuple[dict[str, Any], ...]  # protocol.Glossary.to_list()
    participants: tuple[ParticipantState, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoomState:
        return cls(
            id=str(data["id"]),
            title=str(data["title"]),
            kind=str(data["kind"]),
            created_by=str(data["created_by"]),
            created_at=float(data["created_at"]),
            opened_at=float(data["opened_at"]),
            glossary=tuple(data.get("glossary", ())),
            participants=tuple(ParticipantState.from_dict(p) for p in data.get("participants", ())),
        )


@dataclass(frozen=True)
class Joined(_Message):
    type: ClassVar[str] = "joined"
    participant_id: str
    room: RoomState
    protocol: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Joined:
        return cls(str(data["participant_id"]), RoomState.from_dict(data["room"]), int(data["protocol"]))


@dataclass(frozen=True)
class Published(_Message):
    type: ClassVar[str] = "published"
    sdp: str
    kinds: tuple[str, ...]
    source: MediaSource = MediaSource.CAMERA

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Published:
        return cls(
            str(data["sdp"]),
            tuple(str(kind) for kind in data["kinds"]),
            MediaSource(data.get("source", MediaSource.CAMERA.value)),
        )


@dataclass(frozen=True)
class Subscribed(_Message):
    type: ClassVar[str] = "subscribed"
    publisher_id: str
    sdp: str
    source: MediaSource = MediaSource.CAMERA

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Subscribed:
        return cls(
            str(data["publisher_id"]),
            str(data["sdp"]),
            MediaSource(data.get("source", MediaSource.CAMERA.value)),
        )


@dataclass(frozen=True)
class _ParticipantMessage(_Message):
    participant: ParticipantState

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        return cls(ParticipantState.from_dict(data["participant"]))


@dataclass(frozen=True)
class ParticipantJoined(_ParticipantMessage):
    type: ClassVar[str] = "participant_joined"


@dataclass(frozen=True)
class ParticipantPublished(_ParticipantMessage):
    type: ClassVar[str] = "participant_published"


@dataclass(frozen=True)
class ParticipantUpdated(_ParticipantMessage):
    type: ClassVar[str] = "participant_updated"


@dataclass(frozen=True)
class ParticipantLeft(_Message):
    type: ClassVar[str] = "participant_left"
    participant_id: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParticipantLeft:
        return cls(str(data["participant_id"]))


@dataclass(frozen=True)
class GlossaryUpdated(_Message):
    type: ClassVar[str] = "glossary_updated"
    terms: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GlossaryUpdated:
        return cls(tuple(data.get("terms", ())))


class RecordStatus(StrEnum):
    """Where the call's record stands; words are kept only while it is RECORDING."""

    OFF = "off"  # no record in this call
    ASKING = "asking"  # someone present has not answered yet (a record just started, or a late joiner)
    RECORDING = "recording"  # everyone present has agreed
    PAUSED = "paused"  # someone present declined or withdrew


class ConsentAnswer(StrEnum):
    ASKED = "asked"  # not answered yet
    AGREED = "agreed"
    DECLINED = "declined"  # declined, or withdrew after agreeing


@dataclass(frozen=True)
class RecordState(_Message):
    """The call's record as everyone in it sees it: sent to every participant on every change, and
    after `joined` while a record runs."""

    type: ClassVar[str] = "record_state"
    state: RecordStatus
    record_id: str | None = None
    started_by: str | None = None  # the member id of who started it (the host or an administrator)
    started_at: float | None = None
    consent: dict[str, ConsentAnswer] = field(default_factory=dict)  # participant id -> their answer

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecordState:
        started_at = data.get("started_at")
        return cls(
            state=RecordStatus(data["state"]),
            record_id=None if data.get("record_id") is None else str(data["record_id"]),
            started_by=None if data.get("started_by") is None else str(data["started_by"]),
            started_at=None if started_at is None else float(started_at),
            consent={
                str(pid): ConsentAnswer(answer) for pid, answer in dict(data.get("consent", {})).items()
            },
        )


@dataclass(frozen=True)
class ChatMessage(_Message):
    """A chat message as one reader gets it: in their caption language (`target_language`) where a
    translation exists (`path`, `note` and `note_code` as captions have them), with the words as typed
    in `original`."""

    type: ClassVar[str] = "chat"
    id: str  # unique in the room
    sender_id: str
    sender_name: str
    source_language: str
    language: str  # the language of `text`
    text: str
    original: str
    path: TranslationPath
    note: str | None
    model: str | None
    sent_at: float
    note_code: NoteCode | None = None
    target_language: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatMessage:
        return cls(
            id=str(data["id"]),
            sender_id=str(data["sender_id"]),
            sender_name=str(data["sender_name"]),
            source_language=str(data["source_language"]),
            language=str(data["language"]),
            text=str(data["text"]),
            original=str(data["original"]),
            path=TranslationPath(data["path"]),
            note=data.get("note"),
            model=data.get("model"),
            sent_at=float(data["sent_at"]),
            note_code=note_code(data.get("note_code")),
            target_language=data.get("target_language"),
        )


@dataclass(frozen=True)
class MuteRequested(_Message):
    """The host (or an administrator) asks this participant to mute: the page mutes its microphone
    and says who asked; the participant can unmute."""

    type: ClassVar[str] = "mute_requested"
    by_name: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MuteRequested:
        return cls(str(data["by_name"]))


@dataclass(frozen=True)
class Error(_Message):
    type: ClassVar[str] = "error"
    code: ErrorCode
    message: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Error:
        try:
            code = ErrorCode(data["code"])
        except ValueError:
            code = ErrorCode.INTERNAL_ERROR  # a newer server's code: the message still says what happened
        return cls(code, str(data.get("message", "")))


ServerMessage = (
    Joined
    | Published
    | Subscribed
    | ParticipantJoined
    | ParticipantPublished
    | ParticipantUpdated
    | ParticipantLeft
    | GlossaryUpdated
    | ChatMessage
    | MuteRequested
    | RecordState
    | Error
    | CaptionEvent
)

_SERVER_MESSAGES: dict[str, Any] = {
    kind.type: kind
    for kind in (
        Joined,
        Published,
        Subscribed,
        ParticipantJoined,
        ParticipantPublished,
        ParticipantUpdated,
        ParticipantLeft,
        GlossaryUpdated,
        ChatMessage,
        MuteRequested,
        RecordState,
        Error,
    )
}


def parse_server_message(data: dict[str, Any]) -> ServerMessage | None:
    """A server message as its type; None for a type this client does not know (a newer server may
    add some: clients ignore them). ValueError when a known message lacks its fields."""
    kind = data.get("type")
    if kind == "caption":
        return CaptionEvent.from_dict(data)
    message_type = _SERVER_MESSAGES.get(kind) if isinstance(kind, str) else None
    if message_type is None:
        return None
    try:
        return message_type.from_dict(data)  # type: ignore[no-any-return]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{kind} message lacks or mistypes a field: {error}") from None
