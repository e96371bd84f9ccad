"""Text that people type and other people read: names, titles, organisations, emails, glossary terms.

Such text is shown to others (in "In this call", the admin page, captions), so it must not be able
to pass for something else: no control characters (NUL, CR/LF, ANSI escapes), no bidirectional
embeddings, overrides or isolates (U+202A-U+202E, U+2066-U+2069: "U+202E" turns a name around),
no invisible formatting characters, no lone surrogates, and at least one visible character.
`clean_text` is the one check; the REST layer and `Glossary.from_list` both use it.
"""

from __future__ import annotations

import unicodedata

# Invisible characters that real text in BabelCall's languages needs: the zero-width (non-)joiner
# shapes Arabic-script and Indic words and joins emoji; the direction marks (LRM, RLM, ALM) only
# settle the direction of neighbouring punctuation and cannot reorder strong text; the Arabic
# number signs (U+0600-U+0605) prefix numbers. Every other format character (category Cf) is refused.
_ALLOWED_FORMAT = frozenset("\u200c\u200d\u200e\u200f\u061c\u0600\u0601\u0602\u0603\u0604\u0605")
# Unicode categories with at least one of which text counts as visible: letters, numbers,
# punctuation, symbols (marks alone, separators and format characters show nothing).
_VISIBLE = frozenset("LNPS")


class TextError(ValueError):
    """Text a field cannot hold; the message names the field and the reason."""

    def __init__(self, field: str, reason: str, *, missing: bool = False) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.missing = missing  # the field was absent or empty, rather than holding bad text


def _refused(char: str) -> str | None:
    """Why `char` may not appear in user text, or None if it may."""
    category = unicodedata.category(char)
    if category == "Cc":
        return f"contains a control character (U+{ord(char):04X})"
    if category == "Cs":
        return "is not valid Unicode (a lone surrogate)"
    if category == "Cf" and char not in _ALLOWED_FORMAT:
        return f"contains an invisible formatting character (U+{ord(char):04X})"
    if category in {"Zl", "Zp"}:
        return f"contains a line break (U+{ord(char):04X})"
    return None


def clean_text(value: object, *, field: str, max_chars: int, required: bool = True) -> str:
    """`value` with surrounding whitespace removed, if it is acceptable user text; else TextError.

    An absent or empty value is "" when not `required` (TextError with `missing` set when it is);
    anything else must be a string of at most `max_chars` characters, free of the characters above,
    with at least one visible character.
    """
    if value is None or value == "":
        if required:
            raise TextError(field, "is required", missing=True)
        return ""
    if not isinstance(value, str):
        raise TextError(field, "must be a string")
    for char in value:
        reason = _refused(char)
        if reason is not None:
            raise TextError(field, reason)
    text = value.strip()
    if not any(unicodedata.category(char)[0] in _VISIBLE for char in text):
        raise TextError(field, "has no visible characters")
    if len(text) > max_chars:
        raise TextError(field, f"is longer than {max_chars} characters")
    return text
