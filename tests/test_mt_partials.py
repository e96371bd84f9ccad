"""PartialTranslationPolicy: partial captions are translated at a controlled rate."""

from __future__ import annotations

import pytest

from mt import PartialTranslationPolicy


def test_translates_when_the_stable_part_grew_and_the_interval_passed() -> None:
    policy = PartialTranslationPolicy(min_interval_s=0.8)
    assert policy.should_translate("u1", "Good", now=10.0)
    assert not policy.should_translate("u1", "Good morning", now=10.5)  # grew, but too soon
    assert not policy.should_translate("u1", "Good", now=11.0)  # late enough, but nothing new
    assert policy.should_translate("u1", "Good morning", now=11.0)
    assert not policy.should_translate("u1", "Good morning", now=20.0)


def test_empty_stable_text_is_never_translated() -> None:
    policy = PartialTranslationPolicy()
    assert not policy.should_translate("u1", "  ", now=0.0)
    assert len(policy) == 0


def test_utterances_are_independent_and_forget_resets() -> None:
    policy = PartialTranslationPolicy(min_interval_s=1.0)
    assert policy.should_translate("a", "Bonjour", now=0.0)
    assert policy.should_translate("b", "Hola", now=0.1)
    policy.forget("a")  # the final arrived
    assert policy.should_translate("a", "Bonjour", now=0.2)
    policy.forget("never-seen")


def test_memory_is_bounded_oldest_first() -> None:
    policy = PartialTranslationPolicy(min_interval_s=0.0, max_keys=3)
    for i in range(5):
        assert policy.should_translate(f"u{i}", "text", now=float(i))
    assert len(policy) == 3
    assert policy.should_translate("u0", "text", now=9.0)  # forgotten, so new again
    assert not policy.should_translate("u4", "text", now=9.0)


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        PartialTranslationPolicy(min_interval_s=-1)
    with pytest.raises(ValueError):
        PartialTranslationPolicy(max_keys=0)
