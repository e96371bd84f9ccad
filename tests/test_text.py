"""Text people type and others read (names, titles, organisations, emails, glossary terms): what
`protocol.text.clean_text` refuses, and the glossary that uses it."""

from __future__ import annotations

import pytest

from protocol import Glossary, GlossaryError
from protocol.text import TextError, clean_text

# Each of these lets one participant pass for another in "In this call", or breaks a log line or a
# terminal: a reversed name (RLO), isolates and embeddings, control characters, ANSI escapes,
# CR/LF, NUL, and text that looks empty.
HOSTILE = {
    "NUL": "Dr\x00Morel",
    "right-to-left override": "Dr \u202eleroM",
    "left-to-right embedding": "\u202aDr Morel",
    "pop directional formatting": "Dr Morel\u202c",
    "first strong isolate": "Dr \u2068Morel\u2069",
    "right-to-left isolate": "\u2067Dr Morel",
    "ANSI escape": "\x1b[31mDr Morel\x1b[0m",
    "CSI (C1 control)": "Dr \x9b31mMorel",
    "line feed": "Dr Morel\nAdministrator",
    "carriage return": "Dr Morel\rAdministrator",
    "tab": "Dr\tMorel",
    "line separator": "Dr Morel\u2028Admin",
    "zero-width space inside": "Dr\u200bMorel",
    "byte order mark": "\ufeffDr Morel",
    "lone surrogate": "Dr \ud800 Morel",
    "whitespace only": "   \u3000 ",
    "zero-width only": "\u200c\u200d",
    "direction marks only": "\u200e\u200f",
    "combining mark only": "\u0301",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_text_is_refused_naming_the_field(name: str) -> None:
    with pytest.raises(TextError) as raised:
        clean_text(HOSTILE[name], field="name", max_chars=80)
    assert str(raised.value).startswith("name: ") and not raised.value.missing


@pytest.mark.parametrize(
    "text",
    [
        "Dr Amal Haddad",
        "د. أمل حداد",  # Arabic, right to left on its own
        "Dr أمل\u200f (Beirut)",  # a right-to-left mark settling the parenthesis
        "می\u200cخواهم",  # a zero-width non-joiner shaping Persian script
        "👩\u200d⚕️ Dr Lee",  # an emoji joined with ZWJ
        "นพ. สมชาย",  # Thai, with combining vowels
        "Nguyễn Văn An",
        "İlaç Kırık",
        "张伟医生",
        "\u0600١٢٣",  # an Arabic number sign before digits
    ],
)
def test_real_names_in_every_script_pass_unchanged(text: str) -> None:
    assert clean_text(f"  {text} ", field="name", max_chars=80) == text


def test_absent_empty_too_long_and_wrong_types() -> None:
    for value in (None, ""):
        with pytest.raises(TextError) as raised:
            clean_text(value, field="name", max_chars=10)
        assert raised.value.missing
        assert clean_text(value, field="organisation", max_chars=10, required=False) == ""
    with pytest.raises(TextError, match="name: is longer than 10 characters"):
        clean_text("x" * 11, field="name", max_chars=10)
    for value in (3, ["Dr"], {"a": "b"}, True):
        with pytest.raises(TextError, match="must be a string"):
            clean_text(value, field="name", max_chars=10)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_glossary_refuses_hostile_terms_and_renderings(name: str) -> None:
    with pytest.raises(GlossaryError):
        Glossary.from_list([HOSTILE[name]])
    with pytest.raises(GlossaryError):
        Glossary.from_list([{"term": "metformin", "renderings": {"fr": HOSTILE[name]}}])


def test_a_term_listed_twice_is_refused_whatever_its_case() -> None:
    for duplicate in (["Metformin", "metformin"], ["STRASSE", {"term": "straße"}], ["a", "b", " A "]):
        with pytest.raises(GlossaryError, match="listed twice"):
            Glossary.from_list(duplicate)
    # Turkish dotted and dotless I are different letters: casefold keeps them apart.
    assert Glossary.from_list(["KIRIK", "kırık"]).words == ["KIRIK", "kırık"]


def test_a_stored_glossary_from_before_these_rules_keeps_what_they_accept() -> None:
    stored = [
        "metformin",
        "Metformin",
        "Dr \u202eleroM",
        {"term": "ok", "renderings": {"xx": "?"}},
        "insulin",
    ]
    assert Glossary.from_stored(stored).words == ["metformin", "insulin"]
