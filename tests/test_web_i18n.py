"""The web client's catalogues: one per language BabelCall captions, each with exactly the English
catalogue's keys and placeholders, and every key the page and its modules use."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from protocol import LANGUAGES

WEB = Path(__file__).resolve().parents[1] / "web"
CATALOGUES = WEB / "i18n"
ENGLISH: dict[str, str] = json.loads((CATALOGUES / "en.json").read_text(encoding="utf-8"))
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def test_there_is_a_catalogue_for_every_language_and_no_other() -> None:
    assert sorted(path.stem for path in CATALOGUES.glob("*.json")) == sorted(LANGUAGES)
    declared = re.search(r"INTERFACE_LANGUAGES = \[([^\]]*)\]", (WEB / "js" / "i18n.js").read_text())
    assert declared is not None
    assert sorted(re.findall(r'"(\w+)"', declared.group(1))) == sorted(LANGUAGES)


@pytest.mark.parametrize("code", sorted(LANGUAGES))
def test_each_catalogue_has_every_english_key_and_no_extra(code: str) -> None:
    catalogue: dict[str, str] = json.loads((CATALOGUES / f"{code}.json").read_text(encoding="utf-8"))
    assert sorted(set(ENGLISH) - set(catalogue)) == [], "missing"
    assert sorted(set(catalogue) - set(ENGLISH)) == [], "not in the English catalogue"
    for key, text in catalogue.items():
        assert isinstance(text, str) and text.strip(), key
        assert placeholders(text) == placeholders(ENGLISH[key]), key


def keys_used_by_the_client() -> set[str]:
    page = (WEB / "index.html").read_text(encoding="utf-8")
    used = set(re.findall(r'data-i18n(?:-[a-z-]+)?="([^"]+)"', page))
    for module in (WEB / "js").rglob("*.js"):
        source = module.read_text(encoding="utf-8")
        used |= set(re.findall(r'\b(?:t|tNodes|notice|signedOut)\("([a-zA-Z]+\.[a-zA-Z_.]+)"', source))
        prefixes = "errors|connection|call|captions|devices|chat|screen|host|record|records|lobby|people"
        used |= set(re.findall(rf'"((?:{prefixes})\.[a-zA-Z_]+)"', source))
    # Keys built from a device kind and a problem (media.js: deviceProblem).
    problems = ("denied", "in_use", "not_found", "insecure", "other")
    used |= {f"devices.{kind}.{problem}" for kind in ("audio", "video") for problem in problems}
    used |= {f"devices.advice.{problem}" for problem in problems}
    return used


def test_every_key_the_client_uses_is_in_the_english_catalogue() -> None:
    used = keys_used_by_the_client()
    assert len(used) > 100  # the scan found the page's and the modules' keys
    assert sorted(used - set(ENGLISH)) == []


# A button whose visible label is short ("Remove") is named for assistive technology with whom or what
# it acts on; the name must contain the visible label (WCAG 2.5.3, label in name), so that a person
# who speaks the label to voice control reaches the button, in every language.
LABELLED_BUTTONS = [
    ("people.remove", "people.removeNamed"),
    ("host.askToMute", "host.askToMuteNamed"),
    ("lobby.deleteRoom", "lobby.deleteRoomNamed"),
    ("records.view", "records.viewNamed"),
    ("records.delete", "records.deleteNamed"),
]


@pytest.mark.parametrize("code", sorted(LANGUAGES))
def test_a_buttons_accessible_name_contains_its_visible_label(code: str) -> None:
    catalogue: dict[str, str] = json.loads((CATALOGUES / f"{code}.json").read_text(encoding="utf-8"))
    for visible, named in LABELLED_BUTTONS:
        assert catalogue[visible].casefold() in catalogue[named].casefold(), (visible, named)
