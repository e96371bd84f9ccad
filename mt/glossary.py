"""Keeping a room's glossary terms intact through machine translation.

Before translation each occurrence of a term is replaced by a numbered placeholder "[1]", "[2]", ...:
news and Wikipedia text is full of bracketed reference numbers, so SentencePiece vocabularies hold
these pieces and translation models copy them through unchanged. After translation every placeholder
is replaced by the term's rendering in the target language (or the term itself).

Policy when the model drops a placeholder (a weak model, or a random-weight test model): the term's
rendering is appended at the end of the caption, so a protected term is never lost — a drug name out of
place is better than a drug name missing. Placeholders the model invents (numbers we never issued) are
left alone. Protection runs once on the speaker's text and restoration once on the final text, so pivots
through English carry the placeholders through both hops.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from protocol.glossary import Glossary, GlossaryTerm

# Scripts written without spaces between words: a term may sit inside a longer run of letters.
_NO_WORD_SPACES = frozenset({"zh", "ja", "th"})
# Models writing CJK often turn ASCII brackets into full-width ones and add spaces inside.
_PLACEHOLDER = re.compile(r"[\[［【]\s*(\d{1,3})\s*[\]］】]")


def placeholder(index: int) -> str:
    return f"[{index}]"


@dataclass(frozen=True)
class ProtectedText:
    text: str  # the text with placeholders, as the model sees it
    terms: tuple[GlossaryTerm, ...]  # terms[i] is placeholder(i + 1)
    expected: tuple[GlossaryTerm, ...] = ()  # terms the result must contain without a placeholder here

    @property
    def changed(self) -> bool:
        return bool(self.terms or self.expected)


def protect(text: str, glossary: Glossary | None, language: str) -> ProtectedText:
    """Replace each glossary term (or its rendering in `language`) in `text` by a placeholder."""
    if not glossary or not text.strip():
        return ProtectedText(text, ())
    if _PLACEHOLDER.search(text):
        # The speaker's words already look like placeholders: restoring would be ambiguous, so the
        # terms are only guaranteed by appending (see module docstring).
        found = tuple(
            t for t in glossary.terms if (p := _pattern([t], language)) is not None and p.search(text)
        )
        return ProtectedText(text, (), found)
    pattern = _pattern(glossary.terms, language)
    if pattern is None:
        return ProtectedText(text, ())
    by_surface = {s.casefold(): t for t in glossary.terms for s in _surfaces(t, language)}
    terms: list[GlossaryTerm] = []

    def substitute(match: re.Match[str]) -> str:
        term = by_surface[match.group(0).casefold()]
        if term not in terms:
            terms.append(term)
        return placeholder(terms.index(term) + 1)

    return ProtectedText(pattern.sub(substitute, text), tuple(terms))


def expect(protected: ProtectedText, terms: Sequence[GlossaryTerm]) -> ProtectedText:
    """Also require `terms` in the result (Whisper's English must keep what the speaker said)."""
    missing = tuple(t for t in terms if t not in protected.terms and t not in protected.expected)
    return ProtectedText(protected.text, protected.terms, protected.expected + missing)


def restore(translated: str, protected: ProtectedText, target: str) -> str:
    """Put each term back in `target`'s rendering; append any the model dropped."""
    if not protected.changed:
        return translated
    used: set[int] = set()

    def substitute(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1
        if not 0 <= index < len(protected.terms):
            return match.group(0)
        used.add(index)
        return protected.terms[index].in_language(target)

    text = _PLACEHOLDER.sub(substitute, translated)
    dropped = [t for i, t in enumerate(protected.terms) if i not in used]
    for term in protected.expected:
        rendering = term.in_language(target)
        if rendering.casefold() not in text.casefold() and term.term.casefold() not in text.casefold():
            dropped.append(term)
    if dropped:
        text = " ".join([text.rstrip(), *(t.in_language(target) for t in dropped)]).strip()
    return text


def _surfaces(term: GlossaryTerm, language: str) -> list[str]:
    return list(dict.fromkeys([term.term, term.in_language(language)]))


def _pattern(terms: Sequence[GlossaryTerm], language: str) -> re.Pattern[str] | None:
    surfaces = sorted({s for t in terms for s in _surfaces(t, language) if s.strip()}, key=len, reverse=True)
    if not surfaces:
        return None
    alternatives = "|".join(re.escape(s) for s in surfaces)
    if language in _NO_WORD_SPACES:
        return re.compile(alternatives, re.IGNORECASE)
    # Whole words only: "Tylenol" must not match inside "Tylenols" nor "ace" inside "face".
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
