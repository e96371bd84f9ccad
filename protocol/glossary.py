"""A room's glossary: drug names, conditions and people's names that must come through intact.

Recognition uses the terms as hotwords (they bias Whisper towards these spellings); translation
protects them: each term passes through unchanged, or becomes its rendering for the target language
when one is given (e.g. a drug's local brand name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol.languages import UnknownLanguageError, language
from protocol.text import TextError, clean_text

MAX_TERMS = 200
MAX_TERM_CHARS = 80


class GlossaryError(ValueError):
    pass


@dataclass(frozen=True)
class GlossaryTerm:
    term: str
    renderings: Mapping[str, str] = field(default_factory=dict)  # language code -> text in that language

    def in_language(self, code: str) -> str:
        return self.renderings.get(code, self.term)


@dataclass(frozen=True)
class Glossary:
    terms: tuple[GlossaryTerm, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.terms)

    @property
    def words(self) -> list[str]:
        return [t.term for t in self.terms]

    def to_list(self) -> list[dict[str, Any]]:
        return [{"term": t.term, "renderings": dict(t.renderings)} for t in self.terms]

    @classmethod
    def from_list(cls, items: object) -> Glossary:
        """Validate client input: a list of {"term": str, "renderings": {lang: str}} (or plain strings).
        Terms and renderings are user text (`protocol.text.clean_text`); a term may appear once
        (compared with `str.casefold`, so "Metformin" and "metformin" are the same term)."""
        if not isinstance(items, list):
            raise GlossaryError("a glossary is a list of terms")
        if len(items) > MAX_TERMS:
            raise GlossaryError(f"a glossary holds at most {MAX_TERMS} terms")
        terms: list[GlossaryTerm] = []
        seen: set[str] = set()
        for item in items:
            term = _term(item)
            key = term.term.casefold()
            if key in seen:
                raise GlossaryError(f"{term.term!r} is listed twice")
            seen.add(key)
            terms.append(term)
        return cls(tuple(terms))

    @classmethod
    def from_stored(cls, items: list[Any]) -> Glossary:
        """A glossary stored under older, looser rules: the terms today's rules accept, each once
        (the first), so a room saved before them still opens."""
        terms: list[GlossaryTerm] = []
        seen: set[str] = set()
        for item in items[:MAX_TERMS]:
            try:
                term = _term(item)
            except (GlossaryError, UnknownLanguageError):
                continue
            if term.term.casefold() not in seen:
                seen.add(term.term.casefold())
                terms.append(term)
        return cls(tuple(terms))


def _term(item: object) -> GlossaryTerm:
    entry = {"term": item} if isinstance(item, str) else item
    if not isinstance(entry, dict) or not isinstance(entry.get("term"), str):
        raise GlossaryError('each term is a string or {"term": str, "renderings": {...}}')
    try:
        term = clean_text(entry["term"], field="term", max_chars=MAX_TERM_CHARS)
    except TextError as error:
        raise GlossaryError(str(error)) from None
    renderings = entry.get("renderings") or {}
    if not isinstance(renderings, dict):
        raise GlossaryError("renderings map language codes to text")
    checked: dict[str, str] = {}
    for code, text in renderings.items():
        language(code)  # raises UnknownLanguageError
        try:
            checked[code] = clean_text(
                text, field=f"rendering of {term!r} in {code}", max_chars=MAX_TERM_CHARS
            )
        except TextError as error:
            raise GlossaryError(str(error)) from None
    return GlossaryTerm(term, checked)
