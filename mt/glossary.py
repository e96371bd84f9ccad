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
import unicodedata
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
    text = unicodedata.normalize("NFC", text)
    if _PLACEHOLDER.search(text):
        # The speaker's words already look like placeholders: restoring would be ambiguous, so the
        # terms are only guaranteed by appending (see module docstring).
        found = tuple(t for t in glossary.terms if _occurrences(text, [t], language))
        return ProtectedText(text, (), found)
    occurrences = _occurrences(text, glossary.terms, language)
    if not occurrences:
        return ProtectedText(text, ())
    terms: list[GlossaryTerm] = []
    pieces: list[str] = []
    done = 0
    for start, end, term in occurrences:
        if term not in terms:
            terms.append(term)
        pieces += [text[done:start], placeholder(terms.index(term) + 1)]
        done = end
    pieces.append(text[done:])
    return ProtectedText("".join(pieces), tuple(terms))


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
        if not _occurrences(unicodedata.normalize("NFC", text), [term], target, whole_words=False):
            dropped.append(term)
    if dropped:
        text = " ".join([text.rstrip(), *(t.in_language(target) for t in dropped)]).strip()
    return text


def _surfaces(term: GlossaryTerm, language: str) -> list[str]:
    return list(dict.fromkeys([term.term, term.in_language(language)]))


# Matching is on a folded copy of the text, each folded character remembering where it came from:
# - case folded, with the four Turkish I's (I ı İ i) as one letter, since recognition writes
#   "kırık" for a glossary's "KIRIK" and "ıbuprofen" for "Ibuprofen" (str.casefold and re.IGNORECASE
#   disagree about them, which once cost every reader of another language their final);
# - Unicode NFC first, so a Vietnamese "ệ" typed as e + two combining marks is the same letter;
#   diacritics themselves stay significant (in Vietnamese they tell words apart);
# - Arabic short-vowel marks and the tatweel ignored: writers add them or not.
_TURKISH_I = frozenset("Iıİi")
_IGNORED = frozenset([chr(c) for c in range(0x064B, 0x0653)] + ["\u0670", "\u0640"])
# Arabic writes "and", "the", "with"... joined to the next word: "والباراسيتامول" holds the term.
_ARABIC_PROCLITICS = ("وال", "بال", "كال", "فال", "لل", "ال", "و", "ف", "ب", "ك", "ل")


def _fold(text: str) -> tuple[str, list[int]]:
    """The folded text and, for each of its characters, the index of the original it came from."""
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if char in _IGNORED:
            continue
        replacement = "i" if char in _TURKISH_I else char.casefold()
        folded.append(replacement)
        origin.extend([index] * len(replacement))
    return "".join(folded), origin


def _occurrences(
    text: str, terms: Sequence[GlossaryTerm], language: str, *, whole_words: bool = True
) -> list[tuple[int, int, GlossaryTerm]]:
    """Non-overlapping (start, end, term) spans of `text` holding a term or its rendering in
    `language`, longest surface first where they compete, in text order. `text` is NFC."""
    folded, origin = _fold(text)
    surfaces = sorted(
        dict.fromkeys(
            (_fold(unicodedata.normalize("NFC", surface))[0], index)
            for index, term in enumerate(terms)
            for surface in _surfaces(term, language)
        ),
        key=lambda pair: len(pair[0]),
        reverse=True,
    )
    spans: list[tuple[int, int, GlossaryTerm]] = []
    taken = [False] * len(folded)
    for surface, index in surfaces:
        term = terms[index]
        if not surface.strip():
            continue
        start = folded.find(surface)
        while start >= 0:
            end = start + len(surface)
            if not any(taken[start:end]) and (not whole_words or _stands_alone(folded, start, end, language)):
                taken[start:end] = [True] * len(surface)
                spans.append((origin[start], origin[end - 1] + 1, term))
            start = folded.find(surface, start + 1)
    return sorted(spans, key=lambda span: span[0])


def _stands_alone(folded: str, start: int, end: int, language: str) -> bool:
    """Whether folded[start:end] is a whole word there: in scripts written without spaces any run of
    letters may hold it; elsewhere no letter may touch it, save Arabic's joined little words before
    it. An apostrophe is no letter: "Parol'ü" (Turkish suffix) and "Parol's" hold "Parol"."""
    if language in _NO_WORD_SPACES:
        return True
    left = folded[:start]
    if left and left[-1].isalnum():
        if language != "ar":
            return False
        word_start = len(left) - next((i for i, c in enumerate(reversed(left)) if not c.isalnum()), len(left))
        if left[word_start:] not in _ARABIC_PROCLITICS:
            return False
    return not folded[end : end + 1].isalnum()
