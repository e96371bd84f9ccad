"""Splitting utterances into sentences for sentence-level translation models, in the eleven languages."""

from __future__ import annotations

import pytest

from mt.sentences import join_sentences, split_sentences


@pytest.mark.parametrize(
    ("language", "text", "sentences"),
    [
        ("en", "Good morning. How are you? I'm fine!", ["Good morning.", "How are you?", "I'm fine!"]),
        (
            "en",
            "Dr. Smith saw J. Brown at 3.5 mg, e.g. twice. Then he left",
            ["Dr. Smith saw J. Brown at 3.5 mg, e.g. twice.", "Then he left"],
        ),
        (
            "en",
            'He said "stop." Then left…  And came back.',
            ['He said "stop."', "Then left…", "And came back."],
        ),
        (
            "fr",
            "Bonjour. Où avez-vous mal ? Depuis hier.",
            ["Bonjour.", "Où avez-vous mal ?", "Depuis hier."],
        ),
        ("es", "¿Dónde le duele? Aquí. ¡Mucho!", ["¿Dónde le duele?", "Aquí.", "¡Mucho!"]),
        (
            "zh",
            "你好。我胸口疼！请问您哪里不舒服？好的",
            ["你好。", "我胸口疼！", "请问您哪里不舒服？", "好的"],
        ),
        ("ja", "おはようございます。どこが痛みますか？", ["おはようございます。", "どこが痛みますか？"]),
        ("zh", "他说：“我头疼。”然后走了。", ["他说：“我头疼。”", "然后走了。"]),
        ("ar", "مرحبا. كيف حالك؟ أنا بخير", ["مرحبا.", "كيف حالك؟", "أنا بخير"]),
        ("ru", "Добрый день. Где болит? Здесь.", ["Добрый день.", "Где болит?", "Здесь."]),
        ("tr", "Günaydın. Neresi ağrıyor?", ["Günaydın.", "Neresi ağrıyor?"]),
        ("vi", "Chào bác sĩ. Tôi bị đau ngực.", ["Chào bác sĩ.", "Tôi bị đau ngực."]),
        ("id", "Selamat pagi. Di mana yang sakit?", ["Selamat pagi.", "Di mana yang sakit?"]),
        # Thai separates sentences and phrases alike with spaces: never split.
        ("th", "สวัสดีครับ คุณเจ็บตรงไหน", ["สวัสดีครับ คุณเจ็บตรงไหน"]),
        ("en", "   ", []),
        ("en", "Version 2.0 is out.", ["Version 2.0 is out."]),
    ],
)
def test_split_sentences(language: str, text: str, sentences: list[str]) -> None:
    assert split_sentences(text, language) == sentences


def test_join_puts_spaces_only_where_the_language_uses_them() -> None:
    assert join_sentences(["Good morning.", "How are you?"], "en") == "Good morning. How are you?"
    assert join_sentences(["你好。", "我胸口疼！"], "zh") == "你好。我胸口疼！"
    assert join_sentences(["おはよう。", "", "はい。"], "ja") == "おはよう。はい。"
