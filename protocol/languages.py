"""The eleven languages BabelCall supports, keyed by ISO 639-1 code (also Whisper's code)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1, as Whisper and the web client use it
    name: str  # English name
    native_name: str
    nllb_code: str  # FLORES-200 code used by NLLB-200
    rtl: bool = False


LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in (
        Language("ar", "Arabic", "العربية", "arb_Arab", rtl=True),
        Language("zh", "Chinese", "中文", "zho_Hans"),
        Language("en", "English", "English", "eng_Latn"),
        Language("fr", "French", "Français", "fra_Latn"),
        Language("id", "Indonesian", "Bahasa Indonesia", "ind_Latn"),
        Language("ja", "Japanese", "日本語", "jpn_Jpan"),
        Language("ru", "Russian", "Русский", "rus_Cyrl"),
        Language("es", "Spanish", "Español", "spa_Latn"),
        Language("th", "Thai", "ไทย", "tha_Thai"),
        Language("tr", "Turkish", "Türkçe", "tur_Latn"),
        Language("vi", "Vietnamese", "Tiếng Việt", "vie_Latn"),
    )
}


class UnknownLanguageError(ValueError):
    def __init__(self, code: object) -> None:
        supported = ", ".join(sorted(LANGUAGES))
        super().__init__(f"unknown language {code!r}; supported: {supported}")
        self.code = code


def language(code: object) -> Language:
    """Return the supported language for `code`, or raise UnknownLanguageError."""
    if not isinstance(code, str) or code not in LANGUAGES:
        raise UnknownLanguageError(code)
    return LANGUAGES[code]
