"""The caption event: the one message that carries recognised or translated speech to a listener.

Defined once here. The server builds it, `web/js/captions.js` renders it, the headless participant prints it
as one JSON object per line, and the benchmarks parse it back with `CaptionEvent.from_json`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import MISSING, asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

# Bump on any incompatible change to CaptionEvent or the signalling messages (docs/protocol.md).
# 2: captions carry `kind` (partial, final, settled) instead of `final`, and settled captions name
#    the lines they replace.
PROTOCOL_VERSION = 2


class CaptionKind(StrEnum):
    """The three stages of an utterance's text."""

    PARTIAL = "partial"  # while the speaker talks: may change with every update
    FINAL = "final"  # the first pass at the end of the utterance: fast; a settled caption may replace it
    SETTLED = "settled"  # the second pass, with the speech around it in view: never changes again


class TranslationPath(StrEnum):
    """How the caption's text was produced from the speaker's words."""

    ORIGINAL = "original"  # caption language is the spoken language: the recognised text
    MACHINE = "machine"  # a CTranslate2 translation model (mt/)
    PIVOT = "pivot"  # two machine hops through English
    WHISPER = "whisper"  # Whisper's own speech-to-English translation
    UNTRANSLATED = "untranslated"  # no path to the caption language: original text, marked


class NoteCode(StrEnum):
    """Why a text stays as spoken (or as typed) instead of being in its reader's language. The event's
    `note` says the same in English for logs, exports and `babelcall join`; a page says it in its
    reader's interface language from this code, `source_language` and `target_language`."""

    NO_MODEL = "no_model"  # this server has no translation from the source to the target language
    # The route starts from Whisper's English, which this utterance was recognised without (nobody read
    # a language that needs it when the utterance began): the next one will have it.
    WHISPER_NEXT_SENTENCE = "whisper_next_sentence"
    TRANSLATION_FAILED = "translation_failed"  # the model failed on this text
    REPEATED_SOURCE = "repeated_source"  # the model gave back the speaker's words instead of translating
    FOLLOWS_AT_SENTENCE_END = "follows_at_sentence_end"  # a partial: its translation comes with the final


@dataclass(frozen=True)
class CaptionEvent:
    room: str
    speaker_id: str
    speaker_name: str
    utterance_id: str  # unique within the room; partials and their final share it
    kind: CaptionKind
    source_language: str  # language the speaker spoke
    caption_language: str  # language of `text`
    text: str
    stable_chars: int  # leading characters of `text` that later partials will not change
    path: TranslationPath
    note: str | None  # the caveat in English, e.g. "not translated: no model for fr→ja"
    start_s: float  # utterance start, seconds since the room opened
    end_s: float  # utterance end (or latest audio for a partial), seconds since the room opened
    sent_at: float  # server wall clock (Unix seconds) when the event was sent
    # Settled captions only: the utterance ids of the lines this caption takes the place of, its own
    # first. Two finals heard as one sentence become one settled caption replacing both.
    replaces: tuple[str, ...] = ()
    # Finals and settled captions: how sure the recogniser (and the translation model, for translated
    # text) was, from 0 to 1; `uncertain` when the reader should be warned (docs/protocol.md).
    confidence: float | None = None
    uncertain: bool = False
    model: str | None = None  # model(s) that made the text, "+"-joined along a pivot; None for the original
    # Why the text is not in `target_language` (with `note`); None when it is.
    note_code: NoteCode | None = None
    # The caption language of the readers this event was made for; `caption_language` differs from it
    # only where the text stays as spoken. None from a server before it was added.
    target_language: str | None = None
    # When each stage handled this utterance (Unix seconds): "speech_end", "queued", "recognized",
    # "translated". Latency per stage is the difference; `sent_at` closes the chain.
    timings: dict[str, float] = field(default_factory=dict)
    type: str = "caption"
    version: int = PROTOCOL_VERSION

    @property
    def final(self) -> bool:
        """Whether the text is no longer partial (final or settled)."""
        return self.kind is not CaptionKind.PARTIAL

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = self.path.value
        data["kind"] = self.kind.value
        data["replaces"] = list(self.replaces)
        data["note_code"] = self.note_code.value if self.note_code else None
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaptionEvent:
        if data.get("type") != "caption":
            raise ValueError(f"not a caption event: type={data.get('type')!r}")
        if data.get("version") != PROTOCOL_VERSION:
            raise ValueError(f"caption protocol version {data.get('version')!r}, expected {PROTOCOL_VERSION}")
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = required - data.keys()
        if missing:
            raise ValueError(f"caption event lacks fields: {sorted(missing)}")
        values = {name: data[name] for name in known if name in data}
        try:
            values["path"] = TranslationPath(values["path"])
            values["kind"] = CaptionKind(values["kind"])
        except ValueError as error:
            raise ValueError(f"caption event: {error}") from None
        values["replaces"] = tuple(values.get("replaces", ()))
        values["note_code"] = note_code(values.get("note_code"))
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> CaptionEvent:
        return cls.from_dict(json.loads(text))


def note_code(value: object) -> NoteCode | None:
    """A note code as received: one this version does not know is dropped, since `note` still says it."""
    if value is None:
        return None
    try:
        return NoteCode(value)
    except ValueError:
        return None


def transcript(events: Iterable[CaptionEvent]) -> list[CaptionEvent]:
    """The lines a reader holds once these events (in the order received) have all been applied:
    partials dropped, each settled caption in place of the lines it replaces, lines left without
    words removed. How docs/protocol.md says a client applies them."""
    lines: dict[str, CaptionEvent] = {}
    replaced: set[str] = set()
    for event in events:
        if event.kind is CaptionKind.FINAL and event.utterance_id not in replaced:
            lines[event.utterance_id] = event
        elif event.kind is CaptionKind.SETTLED:
            replaced.update(event.replaces)
            kept: dict[str, CaptionEvent] = {}
            for utterance_id, line in lines.items():
                if utterance_id in event.replaces:
                    kept.setdefault(event.utterance_id, event)
                else:
                    kept[utterance_id] = line
            kept.setdefault(event.utterance_id, event)
            lines = kept
    return [line for line in lines.values() if line.text]
