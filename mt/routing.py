"""Choosing how to turn a speaker's language into a listener's: one model, Whisper, a pivot, or nothing."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protocol.captions import TranslationPath

if TYPE_CHECKING:
    from mt.model import TranslationModel

PIVOT_LANGUAGE = "en"  # the one language every model family and Whisper's translate task share


def covers(source: str, target: str, *, pair: tuple[str, str] | None, languages: Collection[str]) -> bool:
    """The one coverage rule, for loaded models and catalogue entries alike: a pair model (OPUS-MT,
    Argos) translates its one direction; a multilingual model any two distinct languages it holds."""
    if source == target:
        return False
    if pair is not None:
        return (source, target) == pair
    return source in languages and target in languages


@dataclass(frozen=True)
class Hop:
    source: str
    target: str
    model: TranslationModel | None  # None: Whisper's speech-to-English text stands in for this hop


@dataclass(frozen=True)
class Route:
    source: str
    target: str
    path: TranslationPath
    hops: tuple[Hop, ...]  # empty for ORIGINAL and UNTRANSLATED

    @property
    def uses_model(self) -> bool:
        """Whether this route takes a translation model call (the original and Whisper's English do not)."""
        return any(hop.model is not None for hop in self.hops)

    @property
    def uses_whisper(self) -> bool:
        """Whether this route starts from Whisper's speech-to-English text."""
        return any(hop.model is None for hop in self.hops)

    @property
    def model_label(self) -> str | None:
        """Which models produced the text, "+"-joined along the route: "translate-zh_en-1_9+opus-mt-en-fr";
        "whisper" for Whisper's English."""
        names = [hop.model.name if hop.model is not None else "whisper" for hop in self.hops]
        return "+".join(names) if names else None


def find_model(models: Sequence[TranslationModel], source: str, target: str) -> TranslationModel | None:
    """The first model (in the engine's order, which is the operator's preference) covering the pair."""
    return next((m for m in models if m.covers(source, target)), None)


def plan_route(
    models: Sequence[TranslationModel],
    source: str,
    target: str,
    *,
    whisper_english: bool,
    prefer_whisper: bool = False,
) -> Route:
    """The route from `source` to `target`. `whisper_english`: Whisper's English of the utterance is (or
    will be) available. `prefer_whisper`: for this source language Whisper's English is better than a
    text model's (see mt/engine.py), so English — directly, or as a pivot's first hop — comes from it."""
    if source == target:
        return Route(source, target, TranslationPath.ORIGINAL, ())
    whisper_first = whisper_english and prefer_whisper
    if target == PIVOT_LANGUAGE and whisper_first:
        return Route(source, target, TranslationPath.WHISPER, (Hop(source, target, None),))
    direct = find_model(models, source, target)
    if direct is not None:
        return Route(source, target, TranslationPath.MACHINE, (Hop(source, target, direct),))
    if target == PIVOT_LANGUAGE and whisper_english:
        return Route(source, target, TranslationPath.WHISPER, (Hop(source, target, None),))
    if PIVOT_LANGUAGE not in (source, target):
        second = find_model(models, PIVOT_LANGUAGE, target)
        first = None if whisper_first else find_model(models, source, PIVOT_LANGUAGE)
        if second is not None and (first is not None or whisper_english):
            hops = (Hop(source, PIVOT_LANGUAGE, first), Hop(PIVOT_LANGUAGE, target, second))
            return Route(source, target, TranslationPath.PIVOT, hops)
    return Route(source, target, TranslationPath.UNTRANSLATED, ())
