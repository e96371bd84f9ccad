"""The catalogue of installable models: licence-clean first, every pair of the eleven languages reachable
with models a hospital may use, and one coverage rule for catalogue entries and loaded models."""

from __future__ import annotations

import json
from itertools import permutations
from pathlib import Path

from mt_models import build_marian_pair

from mt import load_model
from mt.catalogue import KNOWN_MODELS, find_known, recommended_model, recommended_route
from protocol.languages import LANGUAGES


def test_commercially_usable_models_come_before_nllb() -> None:
    licences = [m.licence for m in KNOWN_MODELS]
    first_nc = licences.index("CC-BY-NC-4.0")
    assert all(licence != "CC-BY-NC-4.0" for licence in licences[:first_nc])
    assert KNOWN_MODELS[0].is_argos and all(m.commercial_use for m in KNOWN_MODELS[:first_nc])
    assert recommended_model("en", "fr").name == "translate-en_fr"  # type: ignore[union-attr]
    assert recommended_model("vi", "en").name == "opus-mt-vi-en"  # type: ignore[union-attr]
    assert recommended_model("vi", "fr").name == "m2m100_418M"  # type: ignore[union-attr]


def test_every_pair_of_the_eleven_languages_has_a_route_of_commercially_usable_pair_models() -> None:
    for source, target in permutations(LANGUAGES, 2):
        route = recommended_route(source, target)
        assert route, f"{source}→{target}"
        assert all(m.commercial_use and m.pair is not None for m in route)
        hops = [m.pair for m in route]
        assert hops in ([(source, target)], [(source, "en"), ("en", target)])
    # Only the hops not installed yet are recommended.
    assert [m.name for m in recommended_route("vi", "fr", frozenset({("vi", "en")})) or []] == [
        "translate-en_fr"
    ]


def test_argos_entries_follow_the_index_names() -> None:
    entry = find_known("translate-zh_en-1_9")
    assert entry is not None and entry.name == "translate-zh_en" and entry.pair == ("zh", "en")
    assert entry.argos_link == "https://argos-net.com/v1/translate-zh_en-1_9.argosmodel"
    assert {m.pair for m in KNOWN_MODELS if m.is_argos} == {
        pair for code in LANGUAGES.keys() - {"en", "vi"} for pair in ((code, "en"), ("en", code))
    }


def test_catalogue_entries_and_loaded_models_share_one_coverage_rule(tmp_path: Path) -> None:
    loaded = load_model(build_marian_pair(tmp_path / "opus-mt-vi-en", "vi", "en"))
    entry = find_known("opus-mt-vi-en")
    assert entry is not None
    for source, target in permutations(LANGUAGES, 2):
        assert loaded.covers(source, target) == entry.covers(source, target), (source, target)


def test_multi_target_opus_mt_entries_carry_their_language_token(tmp_path: Path) -> None:
    entry = find_known("opus-mt-en-vi")
    assert entry is not None and entry.metadata["source_prefix"] == ">>vie<<"
    directory = build_marian_pair(tmp_path / "opus-mt-en-vi", "en", "vi")
    (directory / "babelcall.json").write_text(json.dumps(entry.metadata), encoding="utf-8")
    model = load_model(directory)
    encoded = model._codec.encode(["Good morning."], "en", "vi")  # type: ignore[attr-defined]
    assert encoded.source[0][0] == ">>vie<<" and encoded.source[0][-1] == "</s>"
