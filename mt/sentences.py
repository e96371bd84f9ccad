"""Splitting an utterance into sentences before translation, and joining the translations after.

Sentence-level models (OPUS-MT, Argos, NLLB) were trained on single sentences: given three at once they
drop or merge some. The splitter knows the sentence punctuation of the eleven languages: . ! ? … for
the Latin and Cyrillic scripts, ؟ for Arabic, and the full-width 。！？ of Chinese and Japanese, which
need no space after them. Thai marks sentences with spaces only, which also separate phrases, so Thai is
never split. A period after a common abbreviation or a single capital (an initial) does not end a
sentence, nor does one inside a number.
"""

from __future__ import annotations

import re

_CLOSERS = "\"'”’»)]}」』）】〉》"
# Full-width terminators end a sentence wherever they stand; the others only before a space.
_WIDE_END = re.compile(rf"[。！？｡]+[{re.escape(_CLOSERS)}]*")
_END = re.compile(rf"(?:[.!?…؟]+)[{re.escape(_CLOSERS)}]*(?=\s)")
_ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "approx",
        "sr",
        "sra",
        "dra",
        "mme",
        "no",
    }
)
_NO_SENTENCE_SPLIT = frozenset({"th"})
_NO_SPACES = frozenset({"zh", "ja"})


def split_sentences(text: str, language: str) -> list[str]:
    """The sentences of `text` in `language`, stripped, in order; [] for blank text."""
    text = text.strip()
    if not text:
        return []
    if language in _NO_SENTENCE_SPLIT:
        return [text]
    cuts: set[int] = {match.end() for match in _WIDE_END.finditer(text)}
    for match in _END.finditer(text):
        if match.group(0)[0] == "." and _abbreviation_before(text, match.start()):
            continue
        cuts.add(match.end())
    sentences: list[str] = []
    start = 0
    for cut in sorted(cuts):
        piece = text[start:cut].strip()
        if piece:
            sentences.append(piece)
        start = cut
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def join_sentences(sentences: list[str], language: str) -> str:
    """Translated sentences back into one text: Chinese and Japanese put no space between sentences."""
    separator = "" if language in _NO_SPACES else " "
    return separator.join(s.strip() for s in sentences if s.strip())


def _abbreviation_before(text: str, period: int) -> bool:
    word = re.search(r"(\S+)$", text[:period])
    if word is None:
        return False
    token = word.group(1).lstrip("(\"'«“")
    if len(token) == 1 and token.isupper():
        return True  # an initial: "J. Smith"
    return token.casefold() in _ABBREVIATIONS
