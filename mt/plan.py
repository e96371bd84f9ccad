"""A room's translation plan for one spoken language: what each caption language gets, and how.

`TranslationEngine.plan(source, caption_languages)` decides once (per speaker language and room change)
what server/ would otherwise re-derive per utterance: each target's route with and without Whisper's
English, whether recognition must produce Whisper's English at all, which targets a partial caption can
be translated into, the model label of each translation, and the note of every caption that stays as
spoken. Every "not translated" text is written here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mt.routing import Route
from protocol.captions import NoteCode, TranslationPath
from protocol.languages import language


@dataclass(frozen=True)
class Note:
    """Why a text stays as spoken: `code` for the reader's page, `text` in English for logs and exports."""

    code: NoteCode
    text: str


FOLLOWS_AT_SENTENCE_END = Note(NoteCode.FOLLOWS_AT_SENTENCE_END, "translation follows when the sentence ends")
# Below this mean token log probability a translation is marked uncertain (Whisper's own limit for text).
MT_LOG_PROB_MIN = -1.0


@dataclass(frozen=True)
class Translation:
    text: str
    path: TranslationPath
    model: str | None  # model name(s) used, "+"-joined for pivots; "whisper" for Whisper's English
    note: Note | None  # why the text is not a translation; None when it is one
    # The translation models' mean token log probability, summed over a pivot's hops (the chance both
    # are right); None where no translation model made the text.
    logprob: float | None = None
    # The text was made from Whisper's English of the utterance (path WHISPER, or a pivot whose first
    # hop it was), not from the transcription: how sure recognition was is Whisper's English's score.
    from_whisper_english: bool = False

    @property
    def uncertain(self) -> bool:
        """The model itself doubted its output: on the Argos zh→en package, TICO-19 medical sentences
        scored -0.23 to -0.82 and the same characters scrambled -0.73 to -1.59."""
        return self.logprob is not None and self.logprob < MT_LOG_PROB_MIN


def no_model_note(source: str, target: str) -> Note:
    return Note(NoteCode.NO_MODEL, f"not translated: no model for {source}→{target}")


def whisper_missing_note(source: str, target: str) -> Note:
    """The route needs Whisper's English, which this utterance was recognised without (no one read
    English when it began): the next one will have it."""
    return Note(
        NoteCode.WHISPER_NEXT_SENTENCE,
        f"not translated: {source}→{target} needs Whisper's English, which starts with the next sentence",
    )


def failed_note(label: str | None, source: str, target: str) -> Note:
    return Note(NoteCode.TRANSLATION_FAILED, f"not translated: {label} failed for {source}→{target}")


def copied_note(label: str | None, target: str) -> Note:
    """The model's output repeats the speaker's words instead of giving them in `target`."""
    return Note(NoteCode.REPEATED_SOURCE, f"not translated: {label} did not produce {language(target).name}")


@dataclass(frozen=True)
class TargetPlan:
    """One caption language's routes: with Whisper's English of the utterance, and without it."""

    with_whisper: Route
    without_whisper: Route

    def route(self, whisper_english: bool) -> Route:
        return self.with_whisper if whisper_english else self.without_whisper

    def note(self, whisper_english: bool, *, spoken: bool = True) -> Note | None:
        """Why this target stays as spoken (or as typed: `spoken` False, where Whisper's English never
        comes); None when it is translated."""
        route = self.route(whisper_english)
        if route.path is not TranslationPath.UNTRANSLATED:
            return None
        whisper_would_serve = self.with_whisper.path is not TranslationPath.UNTRANSLATED
        if spoken and not whisper_english and whisper_would_serve:
            return whisper_missing_note(route.source, route.target)
        return no_model_note(route.source, route.target)

    def model_label(self, whisper_english: bool) -> str | None:
        """Which models make this target's text ("translate-zh_en-1_9+opus-mt-en-fr"); None untranslated."""
        return self.route(whisper_english).model_label


@dataclass(frozen=True)
class TranslationPlan:
    source: str
    targets: Mapping[str, TargetPlan]  # every caption language except the spoken one
    original_read: bool  # someone reads the spoken language itself

    @property
    def whisper_english(self) -> bool:
        """Recognition should also produce Whisper's English: some target's route starts from it (Whisper
        costs a second decode, so only then)."""
        return any(plan.with_whisper.uses_whisper for plan in self.targets.values())

    def routes(self, whisper_english: bool) -> dict[str, Route]:
        return {target: plan.route(whisper_english) for target, plan in self.targets.items()}

    def needs_model(self, whisper_english: bool) -> bool:
        """Whether translating an utterance takes any model call."""
        return any(plan.route(whisper_english).uses_model for plan in self.targets.values())

    @property
    def partial_targets(self) -> frozenset[str]:
        """Targets a partial caption is translated into: by a model, without Whisper's English (which
        comes with the final only)."""
        return frozenset(t for t, plan in self.targets.items() if plan.without_whisper.uses_model)

    def as_spoken(self, text: str) -> dict[str, Translation]:
        """A partial caption for every reader it is not translated for: the spoken language itself, and
        each target no model serves without Whisper, saying whether its translation comes later."""
        shown: dict[str, Translation] = {}
        if self.original_read:
            shown[self.source] = Translation(text, TranslationPath.ORIGINAL, None, None)
        for target, plan in self.targets.items():
            if target in self.partial_targets:
                continue
            later = plan.with_whisper.path is not TranslationPath.UNTRANSLATED
            note = FOLLOWS_AT_SENTENCE_END if later else no_model_note(self.source, target)
            shown[target] = Translation(text, TranslationPath.UNTRANSLATED, None, note)
        return shown
