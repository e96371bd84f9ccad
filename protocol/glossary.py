"""A room's glossary: drug names, conditions and people's names that must come through intact.

Recognition uses the terms as hotwords (they bias Whisper towards these spellings); translation
protects them: each term passes through unchanged, or becomes its rendering for the target language
when one is given (e.g. a drug's local brand name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol.languages import language

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
        """Validate client input: a list of {"term": str, "renderings": {lang: str}} (or plain strings)."""
        if not isinstance(items, list):
            raise GlossaryError("a glossary is a list of terms")
        if len(items) > MAX_TERMS:
            raise GlossaryError(f"a glossary holds at most {MAX_TERMS} terms")
        terms: list[GlossaryTerm] = []
        for item in items:
            entry = {"term": item} if isinstance(item, str) else item
            if not isinstance(entry, dict) or not isinstance(entry.get("term"), str):
                raise GlossaryError('each term is a string or {"term": str, "renderings": {...}}')
            term = entry["term"].strip()
            if not term or len(term) > MAX_TERM_CHARS:
                raise GlossaryError(f"a term has 1 to {MAX_TERM_CHARS} characters")
            renderings = entry.get("renderings") or {}
            if not isinstance(renderings, dict):
                raise GlossaryError("renderings map language codes to text")
            checked: dict[str, str] = {}
            for code, text in renderings.items():
                language(code)  # raises UnknownLanguageError
                if not isinstance(text, str) or not text.strip() or len(text) > MAX_TERM_CHARS:
                    raise GlossaryError(
                        f"rendering of {term!r} in {code} must have 1 to {MAX_TERM_CHARS} characters"
                    )
                checked[code] = text.strip()
            terms.append(GlossaryTerm(term, checked))
        return cls(tuple(terms))
