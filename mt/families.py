"""The translation model families BabelCall can drive, and how each names a language inside its vocabulary."""

from __future__ import annotations

from enum import StrEnum

from protocol.languages import language


class ModelFamily(StrEnum):
    NLLB = "nllb"  # NLLB-200: one model, FLORES-200 language tokens such as "fra_Latn"
    M2M100 = "m2m100"  # M2M100: one model, fairseq language tokens such as "__fr__"
    MARIAN = "marian"  # OPUS-MT / Marian: one model per language pair, no language tokens
    ARGOS = "argos"  # an Argos Translate package: one pair, the source side's SentencePiece model only
    GENERATOR = "generator"  # decoder-only instruct model: a prompt template names the languages


def language_token(family: ModelFamily, code: str) -> str | None:
    """The vocabulary token that selects language `code` in a multilingual model; None otherwise."""
    if family is ModelFamily.NLLB:
        return language(code).nllb_code
    if family is ModelFamily.M2M100:
        return f"__{language(code).code}__"
    return None
