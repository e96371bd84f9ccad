"""Telling a translation from a copy of the speaker's words in the speaker's script.

A translation model that cannot translate a sentence often copies it, and Whisper's translate task often
answers in the spoken language instead of English: the speaker's own words in the speaker's script,
which must never reach a reader labelled as a translation. Only copies are caught (output mostly in the
source script, mostly made of the speaker's words), not every odd output. Languages sharing a script
(French into English) cannot be told apart this way.
"""

from __future__ import annotations

import unicodedata

# Unicode character-name prefixes of the scripts the eleven languages are written in.
_SCRIPT_PREFIXES = (
    ("LATIN", "Latn"),
    ("CJK UNIFIED IDEOGRAPH", "Hani"),
    ("CJK COMPATIBILITY IDEOGRAPH", "Hani"),
    ("HIRAGANA", "Kana"),
    ("KATAKANA", "Kana"),
    ("ARABIC", "Arab"),
    ("CYRILLIC", "Cyrl"),
    ("THAI", "Thai"),
    ("HANGUL", "Hang"),
)
_LOGOGRAPHIC = frozenset({"Hani", "Kana"})  # one character is about a word (or syllable), not a letter
_SCRIPTS = {
    "ar": frozenset({"Arab"}),
    "zh": frozenset({"Hani"}),
    "ja": frozenset({"Hani", "Kana"}),
    "ru": frozenset({"Cyrl"}),
    "th": frozenset({"Thai"}),
}
_LATIN = frozenset({"Latn"})


def scripts_of(code: str) -> frozenset[str]:
    """The scripts language `code` is written in (Latin for en, fr, id, es, tr, vi)."""
    return _SCRIPTS.get(code, _LATIN)


def _script(char: str) -> str | None:
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    return next((script for prefix, script in _SCRIPT_PREFIXES if name.startswith(prefix)), "other")


def script_words(text: str) -> list[tuple[str, str]]:
    """(script, word) pairs: a run of letters of one alphabetic script is one word, each CJK character
    or kana one (roughly a word or syllable), so a drug name in Latin letters inside a Chinese sentence
    weighs what one word does."""
    words: list[tuple[str, str]] = []
    previous: str | None = None
    for char in text:
        script = _script(char)
        if script is not None and script == previous and script not in _LOGOGRAPHIC:
            words[-1] = (script, words[-1][1] + char)
        elif script is not None:
            words.append((script, char))
        previous = script
    return words


def repeats_source(output: str, spoken: str, source: str, target: str) -> bool:
    """True when `output`, meant to be `target` text, is mostly the speaker's own words (`spoken`, in
    `source`) in the speaker's script: a copy, not a translation. Never true when the two languages
    share a script."""
    source_scripts, target_scripts = scripts_of(source), scripts_of(target)
    if source_scripts & target_scripts:
        return False
    words = script_words(output)
    in_source = [word.casefold() for script, word in words if script in source_scripts]
    in_target = sum(1 for script, _ in words if script in target_scripts)
    if len(in_source) <= in_target:
        return False
    spoken_words = {word.casefold() for _, word in script_words(spoken)}
    return 2 * sum(word in spoken_words for word in in_source) >= len(in_source)
